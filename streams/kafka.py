"""confluent-kafka producers and consumers configured for journeybus.

Producers are idempotent (acks=all, no duplicates from internal retries),
except against the embedded broker (see ``producer_config``). Consumers never
auto-commit: each component commits (or stores) offsets only after its output
is safe, and starts from ``earliest`` because the embedded broker's "latest"
offset is wrong (BROKER-NOTES.md).
"""

from __future__ import annotations

import functools
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from streams.broker import resolve_bootstrap
from streams.settings import Settings, get_settings


def producer_config(
    settings: Settings | None = None, bootstrap: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """librdkafka producer settings: acks from all replicas, batched, idempotent.

    Against the embedded broker (Tansu) the producer is not idempotent unless
    ``JOURNEYBUS__KAFKA__IDEMPOTENCE=true``: Tansu acknowledged records of an
    idempotent producer that a reader then never found, after another producer
    process had been killed and restarted (2 of 19 runs of the PostgreSQL source
    kill test; 0 of 28 without idempotence). Without it, one request in flight per
    connection keeps each partition in order, and a retry may write a record
    twice, which the pipeline's deterministic ids make harmless (at least once).
    """
    settings = settings or get_settings()
    bootstrap = bootstrap or resolve_bootstrap(settings)
    conf = settings.kafka.confluent_config(bootstrap)
    idempotent = settings.kafka.idempotence
    if idempotent is None:
        idempotent = not is_embedded_broker(conf)
    conf.update(
        {
            "enable.idempotence": idempotent,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_048_576,
            "compression.type": "none",
        }
    )
    if not idempotent:
        conf["max.in.flight.requests.per.connection"] = 1
    conf.update(overrides)
    return conf


EMBEDDED_CLUSTER_ID = "tansu_cluster"


@functools.lru_cache(maxsize=64)
def _cluster_id(conf: tuple[tuple[str, str], ...]) -> str | None:
    from confluent_kafka.admin import AdminClient

    try:
        return AdminClient(dict(conf)).list_topics(timeout=5).cluster_id
    except KafkaException:
        return None


def is_embedded_broker(conf: dict[str, Any]) -> bool:
    """True when ``conf`` points at the embedded Tansu broker: a loopback address
    (the only one it binds to) whose cluster id says so; asked once per process."""
    hosts = [a.rsplit(":", 1)[0] for a in str(conf["bootstrap.servers"]).split(",")]
    if not all(h in ("127.0.0.1", "localhost", "[::1]") for h in hosts):
        return False
    return _cluster_id(tuple(sorted((k, str(v)) for k, v in conf.items()))) == EMBEDDED_CLUSTER_ID


def consumer_config(
    group_id: str, settings: Settings | None = None, bootstrap: str | None = None, **overrides: Any
) -> dict[str, Any]:
    settings = settings or get_settings()
    conf = settings.kafka.confluent_config(bootstrap or resolve_bootstrap(settings))
    conf.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.kafka.session_timeout_ms,
            "heartbeat.interval.ms": settings.kafka.heartbeat_interval_ms,
            # The embedded broker does not answer a parked fetch early: the wait is
            # the caught-up latency (500 ms -> p50 200 ms; 10 ms -> 5 ms).
            "fetch.wait.max.ms": 50,
        }
    )
    conf.update(overrides)
    return conf


def make_producer(
    settings: Settings | None = None, bootstrap: str | None = None, **overrides: Any
) -> Producer:
    return Producer(producer_config(settings, bootstrap, **overrides))


def make_consumer(
    group_id: str, settings: Settings | None = None, bootstrap: str | None = None, **overrides: Any
) -> Consumer:
    return Consumer(consumer_config(group_id, settings, bootstrap, **overrides))


def partition_stats(stats: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """librdkafka's per-partition statistics, by (topic, partition)."""
    return {
        (topic, int(partition)): pinfo
        for topic, info in stats.get("topics", {}).items()
        for partition, pinfo in info.get("partitions", {}).items()
        if partition != "-1"
    }


def observe_lag(stage: str, stats: dict[str, Any], assigned: set[tuple[str, int]]) -> None:
    """Set ``journeybus_consumer_lag`` of ``assigned`` partitions: high watermark minus
    the application's position (approximate on the embedded broker, whose high
    watermark can be short by the last batch)."""
    from streams import metrics

    for (topic, partition), pinfo in partition_stats(stats).items():
        high, position = pinfo.get("hi_offset", -1), pinfo.get("app_offset", -1)
        if (topic, partition) in assigned and high >= 0 and position >= 0:
            metrics.CONSUMER_LAG.labels(stage, topic, str(partition)).set(max(0, high - position))
