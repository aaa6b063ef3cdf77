"""confluent-kafka producers and consumers configured for journeybus.

Producers are idempotent (acks=all, no duplicates from internal retries;
confluent-kafka's idempotence works on the embedded broker, aiokafka's does
not). Consumers never auto-commit: each component commits (or stores) offsets
only after its output is safe, and starts from ``earliest`` because the
embedded broker's "latest" offset is wrong (BROKER-NOTES.md).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer

from streams.broker import resolve_bootstrap
from streams.settings import Settings, get_settings


def producer_config(
    settings: Settings | None = None, bootstrap: str | None = None, **overrides: Any
) -> dict[str, Any]:
    settings = settings or get_settings()
    conf = settings.kafka.confluent_config(bootstrap or resolve_bootstrap(settings))
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_048_576,
            "compression.type": "none",
        }
    )
    conf.update(overrides)
    return conf


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
