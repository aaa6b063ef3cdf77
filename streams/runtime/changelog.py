"""State changelogs: a stateful stage's state follows its partition to any worker.

Every change a partition's store commits (``PartitionStore.changes``) is also a
record of the partition's changelog topic (``schemas/topics/state-changelogs.yaml``):
key = state key, value = its JSON (None deletes it), the due time in a header;
after a batch's changes, a checkpoint record carries the input offset (and the
input's log id) the state is complete up to. The runner commits in a fixed
order: outputs acknowledged → changelog acknowledged → store + offset.

A worker assigned a partition reads its changelog from the position its local
file holds (from the beginning without one) to the end and applies every
change a checkpoint completes; changes after the last checkpoint are a batch
whose commit did not finish (its input is processed again), so they are not
applied and the keys they touched are written again with the restored values,
which makes them harmless to any later restore. A local file that holds state
its changelog lacks (a changelog created after the state, or a broker that lost
its log) is written to the changelog whole.

Guarantee: a restored store equals the one that committed the checkpoint it
resumes from, so the input is read on from that checkpoint, never from 0.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from streams.core import metrics
from streams.core.catalog import Catalog, ChangelogSpec
from streams.core.errors import FatalError, Retriable
from streams.core.kafka import consumer_config, flush_until, produce_waiting
from streams.core.settings import Settings
from streams.runtime.state import PartitionStore

log = logging.getLogger(__name__)

CHECKPOINT_KEY = b"\x00checkpoint"
DUE_HEADER = "due"
RESTORE_CHUNK = 50_000  # changes applied per store transaction while restoring
QUIET_END_S = 3.0  # nothing fetched this long, at or past the high watermark: the end
Entry = tuple[bytes, bytes | None, int | None]  # key, value (None: deleted), due time


@dataclass
class Restored:
    """What restoring one partition did."""

    records: int = 0  # changelog records read
    applied: int = 0  # changes a checkpoint completed, applied to the store
    rewritten: int = 0  # keys written again: an unfinished commit's, or a seeded store's
    seconds: float = 0.0
    next_offset: int | None = None  # the input offset the restored state resumes from


class Changelogs:
    """The changelog topics of one stage: created, written at commit, read at assignment."""

    def __init__(
        self,
        stage: str,
        inputs: Iterable[str],
        catalog: Catalog,
        settings: Settings,
        bootstrap: str,
        producer: Producer,
    ) -> None:
        self.stage = stage
        self.specs: dict[str, ChangelogSpec] = {t: catalog.changelog(stage, t) for t in inputs}
        self.settings = settings
        self.bootstrap = bootstrap
        self.producer = producer
        self._errors: list[str] = []
        self.ensured = False  # the topics were checked or created

    def topic(self, input_topic: str) -> str:
        return self.specs[input_topic].name

    def ensure_topics(self, timeout_s: float = 30.0) -> None:
        """Create the changelog topics that do not exist yet, each with its input's
        partition count (partition N's state in partition N)."""
        admin = AdminClient(self.settings.kafka.confluent_config(self.bootstrap))
        meta = admin.list_topics(timeout=timeout_s).topics
        for topic, spec in self.specs.items():
            have, want = meta.get(spec.name), meta.get(topic)
            if (
                have is not None
                and want is not None
                and len(have.partitions) < len(want.partitions)
            ):
                raise FatalError(
                    f"{self.stage}: changelog {spec.name} has {len(have.partitions)} partitions "
                    f"for the {len(want.partitions)} of {topic}: it was created by something "
                    "else (a producer asking for it, where topics are auto-created); delete it "
                    "and restart the stage, which creates it with the input's partitions"
                )
        todo = [
            NewTopic(
                spec.name,
                num_partitions=len(meta[topic].partitions),
                replication_factor=self.settings.kafka.replication_factor,
                config={
                    "cleanup.policy": spec.cleanup_policy,
                    "retention.ms": str(spec.retention_ms),
                },
            )
            for topic, spec in self.specs.items()
            if spec.name not in meta and topic in meta
        ]
        if not todo:
            self.ensured = True
            return
        todo_parts = {t.topic: t.num_partitions for t in todo}
        for name, future in admin.create_topics(todo, request_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
                log.info(
                    "%s: created changelog %s (%d partitions)", self.stage, name, todo_parts[name]
                )
            except Exception as exc:  # KafkaException: raced with another worker
                err = exc.args[0] if exc.args else None
                if getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    continue
                raise Retriable(f"creating changelog {name}: {exc}") from exc
        self.ensured = True

    # -- writing --------------------------------------------------------------------------
    def produce(
        self,
        tp: tuple[str, int],
        entries: Iterable[Entry],
        next_offset: int,
        log_id: str | None,
        positions: dict[tuple[str, int], int],
    ) -> None:
        """Queue ``entries`` and a checkpoint (``next_offset`` of ``log_id``) on the
        changelog partition of ``tp``; the checkpoint's delivery sets ``positions[tp]``
        to the changelog offset after it. ``flush`` waits for them."""
        topic, partition = self.topic(tp[0]), tp[1]
        for key, value, due in entries:
            headers = [(DUE_HEADER, str(due).encode())] if due is not None else None
            self._send(topic, partition, key, value, headers, self._delivered)

        def checkpointed(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                positions[tp] = msg.offset() + 1
            else:
                self._errors.append(f"{msg.topic()}: {err}")

        marker = orjson.dumps({"next_offset": next_offset, "log": log_id})
        self._send(topic, partition, CHECKPOINT_KEY, marker, None, checkpointed)

    def _send(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> None:
        produce_waiting(
            self.producer,
            topic,
            value,
            key,
            partition=partition,
            headers=headers,
            on_delivery=on_delivery,
        )

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def flush(self, stop: threading.Event | None = None, timeout_s: float = 60.0) -> None:
        """Wait for every queued changelog record; FatalError if one was not acknowledged
        (the stores must not commit: the batch is processed again), StopRequested if
        ``stop`` was set while some were still waiting."""
        remaining = flush_until(self.producer, timeout_s, stop, f"{self.stage} changelog records")
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise FatalError(
                f"{self.stage}: {remaining} changelog records not acknowledged, "
                f"errors: {errors[:5]}; not committing, the batch will be replayed"
            )

    # -- restoring ------------------------------------------------------------------------
    def restore(
        self, tp: tuple[str, int], store: PartitionStore, changelog_log: str | None
    ) -> Restored:
        """``restore_all`` for one partition."""
        return self.restore_all([(tp, store, changelog_log)])[tp]

    def restore_all(
        self, parts: list[tuple[tuple[str, int], PartitionStore, str | None]]
    ) -> dict[tuple[str, int], Restored]:
        """Bring each store up to the last checkpoint of its partition's changelog (whose
        log id is given, None if the broker could not say), see the module docstring.
        The partitions are read together, by one consumer."""
        started = time.monotonic()
        restorers = {tp: _PartitionRestore(self, tp, store, clog) for tp, store, clog in parts}
        by_changelog = {(self.topic(tp[0]), tp[1]): r for tp, r in restorers.items()}
        starts = {key: r.start for key, r in by_changelog.items()}
        for msg in self._read(starts):
            by_changelog[(msg.topic(), msg.partition())].take(msg)
        return {tp: r.finish(started) for tp, r in restorers.items()}

    def rewrite(
        self,
        tp: tuple[str, int],
        store: PartitionStore,
        entries: Iterable[Entry],
        changelog_log: str | None,
        deleted: set[bytes] | None = None,
    ) -> int:
        """Write ``entries`` (and, for the keys in ``deleted`` the store lacks, deletions)
        with a checkpoint of the store's offset; record the changelog position."""
        entries = list(entries)
        if deleted:
            present = {key for key, _, _ in entries}
            entries += [(key, None, None) for key in sorted(deleted - present)]
        positions: dict[tuple[str, int], int] = {}
        next_offset = store.next_offset()
        self.produce(tp, entries, next_offset or 0, store.log_id(), positions)
        self.flush()
        store.restore([], next_offset, None, (changelog_log, positions[tp]))
        return len(entries)

    @staticmethod
    def _past_end(consumer: Consumer, key: tuple[str, int]) -> bool:
        """Whether the consumer's position is at or past the partition's high watermark
        (librdkafka signals the end only at the very offset, and a position beyond a
        log that is shorter than expected never reaches it)."""
        tp = TopicPartition(*key)
        try:
            _, high = consumer.get_watermark_offsets(tp, timeout=5)
        except KafkaException as exc:  # a partition the broker does not have: nothing in it
            log.warning("changelog %s/%d: %s; nothing to restore", tp.topic, tp.partition, exc)
            return True
        (position,) = consumer.position([tp])
        return position.offset < 0 or position.offset >= high

    def _read(self, starts: dict[tuple[str, int], int]) -> Iterable[Message]:
        """The records of changelog partitions, each from its start to its end (the
        consumer's end-of-partition event: the embedded broker's high watermark is
        short by its last batch, but a fetch position past it means all was read)."""
        if not starts:
            return
        consumer = Consumer(
            consumer_config(
                f"journeybus-restore-{uuid.uuid4().hex[:12]}",
                self.settings,
                self.bootstrap,
                **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
            )
        )
        try:
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
            pending = set(starts)
            deadline = time.monotonic() + self.settings.kafka.restore_timeout_s
            heard = time.monotonic()
            while pending and time.monotonic() < deadline:
                msgs = consumer.consume(10_000, timeout=0.5)
                for msg in msgs:
                    err = msg.error()
                    if err is None:
                        yield msg
                    elif err.code() == KafkaError._PARTITION_EOF:
                        pending.discard((msg.topic(), msg.partition()))
                    elif err.fatal():
                        raise FatalError(f"{self.stage}: restoring {msg.topic()}: {err}")
                    else:
                        log.warning("%s: restoring %s: %s", self.stage, msg.topic(), err)
                if msgs:
                    heard = time.monotonic()
                elif time.monotonic() - heard > QUIET_END_S:
                    # no end-of-partition event at a position past the end
                    pending = {k for k in pending if not self._past_end(consumer, k)}
            if pending:
                raise Retriable(f"{self.stage}: restoring {sorted(pending)} did not reach the end")
        finally:
            consumer.close()


class _PartitionRestore:
    """One partition's restore: changes buffered until the checkpoint that completes them."""

    def __init__(
        self,
        changelogs: Changelogs,
        tp: tuple[str, int],
        store: PartitionStore,
        changelog_log: str | None,
    ) -> None:
        self.changelogs, self.tp, self.store, self.changelog_log = (
            changelogs,
            tp,
            store,
            changelog_log,
        )
        held = store.changelog_position()
        # read from the file's position if it is known to be one in this changelog, else
        # all of it (an unknown log on either side: reading all is slower, never wrong)
        known = held is not None and held[0] is not None and held[0] == changelog_log
        self.start = held[1] if known and held is not None else 0
        self.clear = not known  # the changelog, not the file, says what the state is
        self.chunk: list[Entry] = []
        self.tail: list[Entry] = []  # changes after the last checkpoint
        self.checkpoint: dict | None = None
        self.position = self.start
        self.done = Restored()

    def take(self, msg: Message) -> None:
        self.done.records += 1
        if msg.key() == CHECKPOINT_KEY:
            self.checkpoint = orjson.loads(msg.value())
            self.chunk += self.tail
            self.tail = []
            self.position = msg.offset() + 1
            if len(self.chunk) >= RESTORE_CHUNK:
                self._apply()
            return
        due = dict(msg.headers() or ()).get(DUE_HEADER)
        self.tail.append((msg.key(), msg.value(), int(due) if due is not None else None))

    def _apply(self) -> None:
        assert self.checkpoint is not None
        self.store.restore(
            self.chunk,
            self.checkpoint["next_offset"],
            self.checkpoint.get("log"),
            (self.changelog_log, self.position),
            clear=self.clear,
        )
        self.done.applied += len(self.chunk)
        self.chunk, self.clear = [], False

    def finish(self, started: float) -> Restored:
        store, done, clog = self.store, self.done, self.changelog_log
        if self.checkpoint is not None and (
            self.chunk or self.clear or self.position != self.start
        ):
            self._apply()
        elif self.checkpoint is None and self.clear and store.next_offset() is not None:
            # state the changelog does not have: the changelog gets all of it
            done.rewritten = self.changelogs.rewrite(self.tp, store, store.entries(), clog)
        if self.tail:  # an unfinished commit's changes: overwrite them with what was restored
            keys = {key for key, _, _ in self.tail}
            entries = (e for e in store.entries() if e[0] in keys)
            done.rewritten += self.changelogs.rewrite(self.tp, store, entries, clog, keys)
        done.seconds = time.monotonic() - started
        done.next_offset = store.next_offset()
        if done.records:
            metrics.STATE_RESTORED.labels(self.changelogs.stage).inc(done.applied)
            log.info(
                "%s: restored %s/%d from %s@%d: %d records, %d changes applied, %d keys "
                "rewritten, in %.2f s; input resumes at %s",
                self.changelogs.stage,
                self.tp[0],
                self.tp[1],
                self.changelogs.topic(self.tp[0]),
                self.start,
                done.records,
                done.applied,
                done.rewritten,
                done.seconds,
                done.next_offset,
            )
        return done
