"""Topic administration, built from the catalogue (schemas/topics/*.yaml).

Topics are always created explicitly: the embedded broker would auto-create a
missing topic with 4 partitions on first produce (BROKER-NOTES.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.core.catalog import TopicSpec
from streams.core.errors import Retriable


@dataclass
class CreateResult:
    created: list[str]
    existing: list[str]


def admin_client(conf: dict) -> AdminClient:
    return AdminClient(conf)


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """Kafka topic configuration of a spec (the embedded broker stores, not applies, these)."""
    return {"retention.ms": str(spec.retention_ms), "cleanup.policy": spec.cleanup_policy}


def create_topics(
    admin: AdminClient,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = 1,
    partitions: int | None = None,
    timeout_s: float = 30.0,
) -> CreateResult:
    """Create every topic that does not exist yet; existing topics are left as they are.

    ``partitions`` overrides the catalogue's counts (tests use fewer). Idempotent.
    """
    specs = list(specs)
    existing_names = set(admin.list_topics(timeout=timeout_s).topics)
    todo = [s for s in specs if s.name not in existing_names]
    result = CreateResult(
        created=[], existing=sorted(s.name for s in specs if s.name in existing_names)
    )
    if not todo:
        return result
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=partitions or s.partitions,
                replication_factor=replication_factor,
                config=topic_config(s),
            )
            for s in todo
        ],
        request_timeout=timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            result.created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if err.name() == "TOPIC_ALREADY_EXISTS":  # raced with another creator
                result.existing.append(name)
            elif err.retriable():
                raise Retriable(f"creating {name}: {err}") from exc
            else:
                raise
    result.created.sort()
    return result


def list_topic_partitions(admin: AdminClient, timeout_s: float = 10.0) -> dict[str, int]:
    """Topic name → partition count, as the cluster reports them (internal topics excluded)."""
    meta = admin.list_topics(timeout=timeout_s)
    return {
        name: len(t.partitions)
        for name, t in sorted(meta.topics.items())
        if not name.startswith("__")
    }
