"""confluent-kafka producers and consumers configured for journeybus.

Producers are idempotent (acks=all, no duplicates from internal retries),
except against the embedded broker (see ``producer_config``). Consumers never
auto-commit: each component commits (or stores) offsets only after its output
is safe, and starts from ``earliest`` because the embedded broker's "latest"
offset is wrong (BROKER-NOTES.md).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from streams.core import metrics
from streams.core.broker import resolve_bootstrap
from streams.core.errors import StopRequested
from streams.core.settings import Settings

log = logging.getLogger(__name__)


def producer_config(
    settings: Settings, bootstrap: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """librdkafka producer settings: acks from all replicas, batched, idempotent.

    Against the embedded broker (Tansu) the producer is not idempotent unless
    ``JOURNEYBUS__KAFKA__IDEMPOTENCE=true``. That was decided on losses in the
    PostgreSQL source kill test blamed on Tansu's idempotence; their real cause was
    the source reading its outbox in text order of transaction ids (fixed), and with
    that fixed the test passed 20 of 20 loaded runs with idempotence on. It stays off
    until measured across the whole suite. Without it, one request in flight per
    connection keeps each partition in order, and a retry may write a record
    twice, which the pipeline's deterministic ids make harmless (at least once).
    """
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
        return AdminClient(dict(conf)).list_topics(timeout=10).cluster_id
    except KafkaException:
        return None


def is_embedded_broker(conf: dict[str, Any]) -> bool:
    """True when ``conf`` may point at the embedded Tansu broker: a loopback address
    (the only one it binds to) whose cluster id is Tansu's, or could not be read.

    Unknown counts as embedded: an idempotent producer is what loses records on
    it, and a machine too busy to answer a metadata request in time made the
    answer "not embedded" (and the PostgreSQL source idempotent, and 318 of its
    acknowledged events lost) in one loaded test run. Against a real cluster on
    loopback that cannot be reached the cost is at least once instead of
    idempotent, which deterministic ids make harmless."""
    hosts = [a.rsplit(":", 1)[0] for a in str(conf["bootstrap.servers"]).split(",")]
    if not all(h in ("127.0.0.1", "localhost", "[::1]") for h in hosts):
        return False
    cluster = _cluster_id(tuple(sorted((k, str(v)) for k, v in conf.items())))
    return cluster in (EMBEDDED_CLUSTER_ID, None)


def consumer_config(
    group_id: str, settings: Settings, bootstrap: str | None = None, **overrides: Any
) -> dict[str, Any]:
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


def make_producer(settings: Settings, bootstrap: str | None = None, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, bootstrap, **overrides))


def make_consumer(
    group_id: str, settings: Settings, bootstrap: str | None = None, **overrides: Any
) -> Consumer:
    return Consumer(consumer_config(group_id, settings, bootstrap, **overrides))


def produce_waiting(
    producer: Producer, topic: str, value: bytes | None, key: bytes | None, **kwargs: Any
) -> None:
    """``producer.produce``, waiting while its local queue is full (deliveries drain it)."""
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:  # local queue full: let deliveries drain
            producer.poll(0.05)


def flush_until(
    producer: Producer, timeout_s: float, stop: threading.Event | None, what: str
) -> int:
    """``producer.flush(timeout_s)``, given up once ``stop`` is set (a broker that is
    gone would hold a stopping process for the whole timeout): StopRequested if
    records were still unacknowledged then (``what`` names them), else how many are
    still unacknowledged."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = producer.flush(max(0.0, min(0.5, deadline - time.monotonic())))
        if remaining and stop is not None and stop.is_set():
            raise StopRequested(
                f"stopping with {remaining} {what} not acknowledged (broker unreachable?); "
                "nothing committed, the batch will be replayed"
            )
        if not remaining or time.monotonic() >= deadline:
            return remaining


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

    for (topic, partition), pinfo in partition_stats(stats).items():
        high, position = pinfo.get("hi_offset", -1), pinfo.get("app_offset", -1)
        if (topic, partition) in assigned and high >= 0 and position >= 0:
            metrics.CONSUMER_LAG.labels(stage, topic, str(partition)).set(max(0, high - position))


def log_ids(
    settings: Settings, bootstrap: str, topics: list[str], owner: str, timeout_s: float = 10.0
) -> dict[str, str]:
    """Which log each of ``topics`` is: ``<cluster id>/<topic id>``.

    A topic id is made when the topic is created: a broker that restarted
    without its log (memory storage, a wiped directory) or a topic deleted and
    created again gives its topics new ids, so an offset stored with another id
    is an offset in another log. Topics the broker does not describe are left
    out, and all of them when the broker cannot be asked (logged as ``owner``'s):
    the caller keeps its offsets for them and asks again at its next assignment.
    """
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka.confluent_config(bootstrap))
    try:
        cluster = admin.list_topics(timeout=timeout_s).cluster_id
        futures = admin.describe_topics(TopicCollection(sorted(set(topics))))
    except KafkaException as exc:
        log.warning("%s: which log %s is could not be read: %s", owner, ", ".join(topics), exc)
        return {}
    ids = {}
    for topic, future in futures.items():
        try:
            description = future.result(timeout=timeout_s)
        except KafkaException:
            continue
        if description.topic_id is not None:
            ids[topic] = f"{cluster}/{description.topic_id}"
    return ids


def resume_from(
    stored: int | None, known: str | None, current: str | None
) -> tuple[int | None, bool]:
    """Where a consumer that keeps its own offsets resumes a partition, and whether its
    stored offset must be rewritten for the current log (``log_ids``).

    The offset stored with the consumer's state (or rows), when it is an offset in
    the log the broker has now; None (the log's beginning) when it was stored
    against another log: reading on from it would skip the new log's first
    records. An offset stored before logs were identified is taken as this log's.
    """
    if current is None or known == current:
        return stored, False
    if stored is not None and known is not None:
        return None, True
    return stored, True


def resume_partition(
    owner: str,
    topic: str,
    partition: int,
    stored: int | None,
    known: str | None,
    current: str | None,
) -> tuple[int | None, bool]:
    """``resume_from`` for one partition of ``owner``, said loudly
    (``report_log_change``) when the log changed under a stored offset."""
    offset, rewrite = resume_from(stored, known, current)
    if rewrite and offset is None and known is not None and current is not None:
        report_log_change(owner, topic, partition, known, current)
    return offset, rewrite


def report_log_change(owner: str, topic: str, partition: int, known: str, current: str) -> None:
    """Say, loudly, that a consumer found another log than its offsets are for."""

    metrics.LOG_CHANGES.labels(owner, topic).inc()
    log.error(
        "%s: %s/%d is another log than its offset was stored against (%s, now %s): the "
        "broker lost its log or the topic was created again. Reading the new log from "
        "its beginning; what was built from the old one is kept.",
        owner,
        topic,
        partition,
        known,
        current,
    )


def brokers_up(stats: dict[str, Any]) -> bool:
    """Whether librdkafka's statistics show a connection to a broker that is up (not
    the bootstrap address, which librdkafka lists as a broker of its own)."""
    return any(
        info.get("state") == "UP"
        for info in stats.get("brokers", {}).values()
        if info.get("nodeid", -1) >= 0
    )


class BrokerWatch:
    """Whether the broker is reachable, from the librdkafka statistics of one or more
    clients of a process.

    Unreachable only when no client has shown a broker up for ``grace_s``: a
    connection the broker closed is opened again by the next request, and for the
    moment in between no broker is up (a collector that answered 503 then refused
    good batches while the broker was there). ``None`` until statistics arrive.
    """

    def __init__(self, grace_s: float = 3.0) -> None:
        self.grace_s = grace_s
        self._since: float | None = None  # the last time a broker was up, or first seen

    def observe(self, stats: dict[str, Any]) -> None:
        """Take one statistics report (the ``stats_cb`` JSON, decoded)."""
        if brokers_up(stats) or self._since is None:
            self._since = time.monotonic()

    @property
    def up(self) -> bool | None:
        if self._since is None:
            return None
        return time.monotonic() - self._since < self.grace_s


class Contiguous:
    """Hands on a consumer's records only in offset order without holes, waiting for
    records the broker has not shown yet.

    The embedded broker (Tansu over S3) stores each batch as an object: when two
    producers write one partition at once, a fetch can return a later batch
    before an earlier one is visible (measured: a stage jumped 8 offsets that
    were readable a moment later). A consumer that went on would never read them.
    So at a jump the partition is sought back to the first missing offset and
    what came after it is dropped, to be fetched again; a jump still there after
    ``patience_s`` is an offset the broker will never serve (a write it failed
    and the producer sent again) and is passed, logged and counted.
    Journeybus topics are neither compacted nor transactional, so against Apache
    Kafka a jump never happens and this costs one comparison per partition and
    batch.
    """

    def __init__(self, owner: str, patience_s: float = 10.0) -> None:
        self.owner = owner
        self.patience_s = patience_s
        self.next: dict[tuple[str, int], int] = {}  # the offset each partition must give
        self._waiting: dict[tuple[str, int], tuple[int, float]] = {}  # missing, since when

    def expect(self, topic: str, partition: int, offset: int) -> None:
        """The next record of a partition must be ``offset`` (at assignment)."""
        self.next[(topic, partition)] = offset

    def forget(self, topic: str, partition: int) -> None:
        self.next.pop((topic, partition), None)
        self._waiting.pop((topic, partition), None)

    def filter(self, consumer: Any, msgs: list[Any]) -> list[Any]:
        """The records of ``msgs`` (in consume order) that continue their partitions
        without a hole; a partition with a hole is sought back to it."""
        if not msgs:
            return msgs
        by_tp: dict[tuple[str, int], list[Any]] = {}
        for msg in msgs:
            by_tp.setdefault((msg.topic(), msg.partition()), []).append(msg)
        kept: set[int] = set()
        changed = False
        for tp, records in by_tp.items():
            keep, blocked = self._contiguous(tp, records)
            kept.update(id(r) for r in keep)
            changed |= len(keep) < len(records)
            if blocked:
                consumer.seek(TopicPartition(tp[0], tp[1], self.next[tp]))
        return [m for m in msgs if id(m) in kept] if changed else msgs

    def _contiguous(self, tp: tuple[str, int], records: list[Any]) -> tuple[list[Any], bool]:
        """The records that continue ``tp`` from its next offset, and whether a hole
        stopped them (the partition must be sought back to ``self.next[tp]``)."""
        expected = self.next.get(tp)
        kept = []
        for record in records:
            offset = record.offset()
            if expected is not None and offset < expected:
                continue  # handed on already (fetched before a seek took effect)
            if expected is not None and offset > expected:
                if not self._patience_over(tp, expected):
                    self.next[tp] = expected
                    return kept, True
                self._passed_hole(tp, expected, offset)
            kept.append(record)
            expected = offset + 1
        if expected is not None:
            self.next[tp] = expected
        self._waiting.pop(tp, None)
        return kept, False

    def _patience_over(self, tp: tuple[str, int], missing: int) -> bool:
        now = time.monotonic()
        waiting = self._waiting.get(tp)
        if waiting is None or waiting[0] != missing:
            self._waiting[tp] = waiting = (missing, now)
        return now - waiting[1] >= self.patience_s

    def _passed_hole(self, tp: tuple[str, int], missing: int, found: int) -> None:
        """A hole that never filled: the broker will not serve those offsets."""

        self._waiting.pop(tp, None)
        metrics.OFFSETS_SKIPPED.labels(self.owner, tp[0]).inc(found - missing)
        log.warning(
            "%s: offsets %d to %d of %s/%d did not come in %.0f s; going on without them",
            self.owner,
            missing,
            found - 1,
            tp[0],
            tp[1],
            self.patience_s,
        )
