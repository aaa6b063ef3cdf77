"""The Faust app factory for journeybus: a team's agent module starts here.

    from streams.faust.app import bus_app

    app = bus_app("crm-high-value-alerts")

    @app.agent(app.bus.customer_scores)
    async def alert(scores):
        async for score in scores:          # a streams.faust.models.CustomerScore
            ...

``bus_app`` reads the journeybus settings from the environment (the same
``KAFKA_BOOTSTRAP_SERVERS``, ``JOURNEYBUS__KAFKA__SASL_*``/``SSL_*`` and
``SCHEMA_REGISTRY_URL`` as every journeybus process; without them the embedded
broker ``journeybus up`` runs) and configures Faust as measured against the embedded
broker (``JOURNEYBUS__FAUST__*``, BROKER-NOTES.md). A Faust module is an application
of its own, so this factory, like ``streams.app``, reads the settings.

Guarantee: at least once. Faust commits a source offset after the agent handled the
event and after flushing its producer, never past a message still in flight (the
``journeybus://`` transport corrects Faust there, ``streams.faust.transport``), so a
crash re-delivers what was not committed (and an agent's outputs may be sent twice:
give them deterministic ids). aiokafka's
idempotent producer fails on the embedded broker and Faust's exactly-once needs
transactions it does not have, so neither is used.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import faust

from streams.core.broker import resolve_bootstrap
from streams.core.codec import Codec, make_codec
from streams.core.settings import KafkaSettings, Settings, get_settings
from streams.faust import stackdump
from streams.faust.deadletter import DeadLetters
from streams.faust.topics import BusTopics
from streams.faust.transport import SCHEME

# aiokafka logs at INFO per connection and rebalance, and when left at DEBUG under a
# quieter worker it built a log record per message (BROKER-NOTES.md: 1.6x together
# with the producer settings below)
QUIET_LOGGERS = ("aiokafka",)
PRODUCER_MAX_BATCH_BYTES = 1_048_576


def broker_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """Faust credentials for the cluster's security settings (None for PLAINTEXT)."""
    protocol = kafka.security_protocol.upper()
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=kafka.ssl_ca_location)
    if protocol.startswith("SASL"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=password,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def faust_options(app_id: str, settings: Settings, bootstrap: str) -> dict[str, Any]:
    """The Faust settings of a journeybus app (each may be overridden by ``bus_app``)."""
    conf = settings.faust
    return {
        "broker": [f"{SCHEME}://{server.strip()}" for server in bootstrap.split(",")],
        "broker_credentials": broker_credentials(settings.kafka),
        "broker_session_timeout": conf.session_timeout_s,
        "broker_heartbeat_interval": conf.heartbeat_interval_s,
        "producer_linger": conf.producer_linger_s,
        "producer_max_batch_size": PRODUCER_MAX_BATCH_BYTES,
        "consumer_auto_offset_reset": conf.auto_offset_reset,
        "processing_guarantee": "at_least_once",
        "store": conf.store,
        "datadir": str(settings.runtime_dir / "faust" / app_id),
        "topic_replication_factor": settings.kafka.replication_factor,
        # the leader-election topic is unused by these apps and one more topic to create
        "topic_disable_leader": True,
        "web_enabled": False,
    }


class BusApp(faust.App):
    """A Faust app on the bus: Faust's app with the runtime's codec (``codec``), every
    catalogue topic (``bus``) and the runtime's dead letters (``dead_letters``)."""

    def __init__(
        self,
        app_id: str,
        *,
        settings: Settings,
        bootstrap: str,
        codec: Codec | None = None,
        **options: Any,
    ) -> None:
        super().__init__(app_id, **options)
        self.settings = settings
        # the cluster's bootstrap servers, for side inputs and tools beside Faust
        self.bootstrap = bootstrap
        # read by streams.faust.transport when the worker's consumer is created
        self.journeybus_fetch_max_wait_ms = settings.faust.fetch_max_wait_ms
        self.codec = codec or make_codec(settings)
        self.bus = BusTopics(self)
        self.dead_letters = DeadLetters(self, app_id)
        self.on_worker_init.connect(quiet_loggers)
        self._outputs: list[faust.types.TopicT] = []

    def output_topic(
        self,
        name: str,
        *,
        value_type: type[faust.Record],
        partitions: int,
        value_serializer: str = "json",
    ) -> faust.types.TopicT:
        """A topic this app owns and writes (not in the catalogue: a team's own),
        string keys, JSON values by default; created when the app starts (before
        its agents run: the embedded broker would auto-create it with 4 partitions)."""
        topic = self.topic(
            name,
            key_type=str,
            key_serializer="raw",
            value_type=value_type,
            value_serializer=value_serializer,
            partitions=partitions,
        )
        self._outputs.append(topic)
        return topic

    async def on_start(self) -> None:
        await super().on_start()
        stackdump.install(self)
        for topic in self._outputs:
            await topic.maybe_declare()


def quiet_loggers(app: faust.App, **_: Any) -> None:
    """Raise the noisy client loggers to WARNING (connected to ``on_worker_init``)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))


def bus_app(
    app_id: str,
    *,
    settings: Settings | None = None,
    bootstrap: str | None = None,
    **overrides: Any,
) -> BusApp:
    """A Faust app named ``app_id`` (its consumer group and table prefix) on the bus.

    ``settings`` defaults to the environment's; ``bootstrap`` to the configured
    cluster or the running embedded broker (``BrokerUnavailable`` when neither);
    ``overrides`` are Faust settings that replace the defaults (``faust_options``).
    """
    settings = settings or get_settings()
    bootstrap = bootstrap or resolve_bootstrap(settings)
    options = {**faust_options(app_id, settings, bootstrap), **overrides}
    # Faust creates only the last directory of its datadir
    Path(options["datadir"]).parent.mkdir(parents=True, exist_ok=True)
    return BusApp(app_id, settings=settings, bootstrap=bootstrap, **options)
