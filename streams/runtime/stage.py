"""The batched stage runner: consume a batch, process it, produce, then commit.

A ``Stage`` holds the decisions (pure code in each concern's ``logic.py``);
``StageRunner`` does the plumbing every stage shares:

- consumes its input topics in a consumer group, in batches (confluent-kafka
  ``consume(n)``: Faust's per-event path is the throughput ceiling here, see
  bench/RESULTS.md);
- decodes each batch; undecodable records and records a stage rejects with
  ``InvalidRecord`` go to ``<topic>.dlq`` with the reason, the original bytes
  and topic/partition/offset, under a rate limit that halts a misconfigured
  stage;
- produces the outputs with an idempotent producer and waits for the broker's
  acknowledgement of every one of them;
- only then commits: for a stateful stage, the partition's state changes and a
  checkpoint go to its changelog topic and are acknowledged (``streams.runtime.changelog``),
  then the state and its next input offset are written in one SQLite
  transaction (``streams.runtime.state``), which is where it resumes from, never the
  group's offset; the group offset is committed too, for lag monitoring and for
  stateless stages;
- restores a partition's state from its changelog when it is assigned one whose
  local state is missing or behind (another worker had it), before processing.

Guarantees: at-least-once output (a crash between produce and commit re-sends
the batch's outputs, with the same deterministic ids); effectively-once state;
per-partition order is kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streams.core import metrics
from streams.core.codec import Codec
from streams.core.errors import (
    FatalError,
    InvalidRecord,
    OutputRejected,
    Retriable,
    StopRequested,
    internal_error,
    is_record_fault,
)
from streams.core.kafka import (
    BrokerWatch,
    Contiguous,
    flush_until,
    log_ids,
    make_consumer,
    make_producer,
    observe_lag,
    partition_stats,
    produce_waiting,
    resume_partition,
)
from streams.core.settings import Settings
from streams.core.topics import ERASURE
from streams.runtime.changelog import Changelogs, Restored
from streams.runtime.deadletter import (
    DeadLetterPolicy,
    DeadLetterRateExceeded,
    dead_letter_for_message,
    dead_letter_topic,
)
from streams.runtime.erasures import ErasureList
from streams.runtime.sideinput import SideInput
from streams.runtime.state import PartitionStore

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]
# Stages on the path from a source to a queryable touchpoint (normalise, journeys; the
# sink too) keep the consumers' short default wait (streams.core.kafka). Off it (attribution,
# scoring, profiles): half a second. With the side inputs' 500 ms too, the idle stack's
# embedded broker went from 47% of a core to 30%.
OFF_PATH_FETCH_WAIT_MS = 500
ERASURES_APPLIED = "erasures_applied"  # store meta: how many erasure requests it applied


@dataclass
class Output:
    topic: str
    key: str | None
    record: dict[str, Any]
    partition: int | None = None  # None: by key (the default partitioner)
    value: bytes | None = None  # the encoded record, once encoded
    dead: str | None = None  # a dead letter's reason (counted when produced)


@dataclass
class BatchContext:
    """What a stage's batch produces: outputs, dead letters, and each record's outcome.

    Outcomes (processed or dead-lettered) reach the dead-letter policy when the
    runner settles a partition's work, so that work it redoes (``mark`` /
    ``restore``) is counted once.
    """

    stage: str
    policy: DeadLetterPolicy
    now_ms: int
    outputs: list[Output] = field(default_factory=list)
    outcomes: list[bool] = field(default_factory=list)

    def emit(
        self, topic: str, key: str | None, record: dict[str, Any], partition: int | None = None
    ) -> None:
        self.outputs.append(Output(topic, key, record, partition))

    def ok(self) -> None:
        """Count a record as processed successfully (for the dead-letter rate)."""
        self.outcomes.append(True)

    def dead_letter(self, msg: Message, error: InvalidRecord, event_id: str | None = None) -> None:
        self.outcomes.append(False)
        record = dead_letter_for_message(self.stage, msg, error, self.now_ms, event_id)
        self.outputs.append(Output(dead_letter_topic(msg.topic()), None, record, dead=error.reason))

    def mark(self) -> tuple[int, int]:
        """A point to ``restore`` to: what was emitted and counted so far."""
        return len(self.outputs), len(self.outcomes)

    def restore(self, mark: tuple[int, int]) -> None:
        """Forget what was emitted and counted since ``mark``."""
        del self.outputs[mark[0] :]
        del self.outcomes[mark[1] :]

    def settle(self) -> tuple[int, int]:
        """Hand the outcomes to the dead-letter policy (which halts a stage whose
        records mostly fail); returns how many were processed and dead-lettered."""
        processed = sum(self.outcomes)
        failed = len(self.outcomes) - processed
        self.outcomes.clear()
        self.policy.record_many(processed, failed)
        return processed, failed


class Stage:
    """A processing step. Subclasses set ``name``/``inputs`` and implement ``process``."""

    name: str = "stage"
    inputs: tuple[str, ...] = ()
    stateful: bool = False
    # How long the broker may hold a fetch that finds nothing: the latency a caught-up
    # stage adds per hop. The embedded broker answers a parked fetch only when the
    # wait ends, and each one costs it CPU. None: the consumers' default.
    fetch_wait_ms: int | None = None
    # librdkafka's prefetch queue per partition set (its default is 65536): small for a
    # stage, whose batches are small; a sink loading a backlog wants it full
    prefetch_kbytes: int = 8192
    # how long the runner gathers a batch after the first record (a sink's; 0: no wait)
    linger_ms: float = 0.0

    def process(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: PartitionStore | None,
        ctx: BatchContext,
    ) -> None:
        raise NotImplementedError

    def tick(self, tp: TopicPartitionKey, store: PartitionStore | None, ctx: BatchContext) -> None:
        """Called after each batch of a partition and when idle (timers, expiry)."""

    side_inputs: list[Any] = []  # ``SideInput``s, set by ``attach_side_inputs``
    erasure_input: Any = None  # the ``cust.erasure.v1`` side input, set by ``attach_erasures``
    _erasures: ErasureList | None = None

    @property
    def erasures(self) -> ErasureList:
        """Every erasure request read so far (empty until ``attach_erasures``)."""
        if self._erasures is None:
            self._erasures = ErasureList()
        return self._erasures

    def attach_erasures(self, codec: Codec, settings: Settings, bootstrap: str) -> None:
        """Read every erasure request, before the other side inputs are restored, and
        keep reading them before each batch; ``on_erasure`` runs for each new one."""

        self.erasures.on_request.append(self.on_erasure)
        self.erasure_input = SideInput(ERASURE, self.erasures.add, codec, settings, bootstrap)
        self.erasure_input.catch_up()

    def on_erasure(self, request: dict[str, Any]) -> None:
        """Drop what this process holds in memory about a forgotten customer; default:
        nothing. (State in partition stores goes through ``forget``.)"""

    def forget(self, store: PartitionStore, request: dict[str, Any]) -> None:
        """Delete a forgotten customer's state from one partition's store (a stateful
        stage); the runner calls it once per request and store, committed with it."""

    def erasure_subject(self, record: dict[str, Any]) -> tuple[str | None, int | None] | None:
        """(customer key, received time in ms) of an input record, for the runner to
        skip records of forgotten customers; None: the record names no customer."""
        return None

    def poll_side_inputs(self) -> None:
        """Refresh the side inputs before a batch (override to act on what changed)."""
        if self.erasure_input is not None:
            self.erasure_input.poll()
        for side in self.side_inputs:
            side.poll()

    def after_batch(
        self,
        ctx: BatchContext,
        assignment: set[TopicPartitionKey],
        caught_up: Callable[[], set[TopicPartitionKey]],
    ) -> None:
        """Called after every batch and idle poll, before produce and commit (e.g. to
        publish progress; ``caught_up()`` names the partitions with nothing left to
        read); default: nothing."""

    def ready(self) -> tuple[bool, str]:
        """For ``/ready``, besides the runner's own checks; default: ready."""
        return True, "ok"

    def revoked(self, tp: TopicPartitionKey) -> None:
        """Forget what this process holds in memory about a partition it gave up (another
        worker may own it, and change its state, before it comes back); default: nothing."""

    def discard(self) -> None:
        """Drop in-memory effects of a batch the runner undoes and processes again (its
        state store changes are rolled back); default: nothing."""

    def close(self) -> None:
        """Release what the stage holds: its side-input consumers."""
        for side in self.side_inputs:
            side.close()
        self.side_inputs = []
        if self.erasure_input is not None:
            self.erasure_input.close()
            self.erasure_input = None


class BatchSink(Protocol):
    """What the runner needs of a sink (``connectors.base.Sink`` implements it): it
    writes each batch, with the batch's input offsets, in one transaction of its own
    system, and resumes from the offsets stored there (exactly once into it)."""

    def topics(self) -> list[str]: ...

    def setup(self) -> None: ...

    def bind(
        self,
        erasures: ErasureList,
        policy: DeadLetterPolicy,
        publish: Callable[[list[Output]], None],
    ) -> None: ...

    def stored_offsets(self) -> dict[TopicPartitionKey, tuple[int, str | None]]: ...

    def store_offsets(
        self, offsets: dict[TopicPartitionKey, int], logs: dict[str, str]
    ) -> None: ...

    def prepare(self, batch: list[Message], ctx: BatchContext) -> Any: ...

    def write(
        self, prepared: Any, offsets: dict[TopicPartitionKey, int], logs: dict[str, str]
    ) -> None: ...

    def writing(self) -> bool: ...

    def wait_written(self) -> None: ...

    def idle(self) -> None: ...

    def on_erasure(self, request: dict[str, Any]) -> None: ...

    def ready(self) -> tuple[bool, str]: ...

    def close(self) -> None: ...


class SinkStage(Stage):
    """A sink on the runner: the runner consumes, hands each batch to ``prepare``
    (decoding; dead letters through the batch context), produces the dead letters
    and waits for their acknowledgement, then calls ``write`` with the batch's next
    offsets (rows and offsets in one transaction of the sink's system). The
    offsets it resumes from are the ones the sink stored, never the group's.
    Between batches, ``idle`` (e.g. publishing a read snapshot)."""

    def __init__(self, sink: BatchSink, name: str, linger_ms: float = 0.0) -> None:
        self.sink = sink
        self.name = name
        self.inputs = tuple(sink.topics())
        self.linger_ms = linger_ms  # gather a batch this long (and while a write is in flight)
        self.prefetch_kbytes = 65536

    def on_erasure(self, request: dict[str, Any]) -> None:
        self.sink.on_erasure(request)

    def ready(self) -> tuple[bool, str]:
        return self.sink.ready()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.sink.close()


class RecordProcessor:
    """One partition's records through a stage, without Kafka: decode, skip what was
    erased, process, tick, encode the outputs; each failure its record's own.

    The runner hands it what it consumed and produces what it returns in the
    ``BatchContext``; the property tests (``tests/fuzz``) drive it directly.
    """

    def __init__(self, stage: Stage, codec: Codec) -> None:
        self.stage = stage
        self.codec = codec

    def process_partition(
        self,
        tp: TopicPartitionKey,
        msgs: list[Message],
        store: PartitionStore | None,
        ctx: BatchContext,
    ) -> tuple[int, int]:
        """Decode, process and tick one partition's records, and encode their outputs;
        returns how many records were processed and how many dead-lettered.

        The common case is one call of ``process`` for all of them. If anything
        raises that a record may be to blame for (``is_record_fault``), the
        partition's uncommitted state and outputs are undone and the records are
        processed one at a time: each one that raises is dead-lettered with
        reason ``internal_error`` (the exception's type and message, the stage,
        its topic/partition/offset) and the others go on. A timer (``tick``)
        that raises is skipped for this batch, logged and counted.
        """
        if store is not None:
            self._apply_erasures(store)
        items = self._without_erased(self._decode(tp[0], msgs, ctx), ctx)
        mark = ctx.mark()
        try:
            self.stage.process(tp, items, store, ctx)
            self.stage.tick(tp, store, ctx)
            self._encode(ctx, mark, store)
        except Exception as exc:
            if not is_record_fault(exc):
                raise
            self._isolate(tp, items, store, ctx, mark)
        return ctx.settle()

    def tick_idle(self, tp: TopicPartitionKey, store: PartitionStore, ctx: BatchContext) -> bool:
        """Timers of a partition without new records; True if erasures were applied."""
        mark = ctx.mark()
        erased = self._apply_erasures(store)
        try:
            self.stage.tick(tp, store, ctx)
            self._encode(ctx, mark, store)
        except Exception as exc:
            if not is_record_fault(exc):
                raise
            self._timer_failed(tp, exc)
            self._undo(store, ctx, mark)
        return erased

    def _isolate(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: PartitionStore | None,
        ctx: BatchContext,
        mark: tuple[int, int],
    ) -> None:
        """Process ``items`` again one by one, dead-lettering those that raise."""
        good: list[tuple[Message, dict[str, Any]]] = []
        failed: list[tuple[tuple[Message, dict[str, Any]], BaseException]] = []
        self._undo(store, ctx, mark)
        for item in items:
            try:
                self._process_items(tp, [item], store, ctx)
                good.append(item)
            except Exception as exc:
                if not is_record_fault(exc):
                    raise
                failed.append((item, exc))
                # Its partial effects are in the partition's uncommitted state: undo
                # everything and redo the records that went through (they must again).
                self._undo(store, ctx, mark)
                self._process_items(tp, good, store, ctx)
        before_tick = ctx.mark()
        try:
            self.stage.tick(tp, store, ctx)
            self._encode(ctx, before_tick, store)
        except Exception as exc:
            if not is_record_fault(exc):
                raise
            self._timer_failed(tp, exc)
            self._undo(store, ctx, mark)
            self._process_items(tp, good, store, ctx)
        for (msg, record), exc in failed:
            metrics.STAGE_ERRORS.labels(self.stage.name, "record").inc()
            log.error(
                "%s: a record of %s/%d@%d raised %s; dead-lettered as internal_error",
                self.stage.name,
                msg.topic(),
                msg.partition(),
                msg.offset(),
                type(exc).__name__,
                exc_info=exc,
            )
            event_id = record.get("event_id")
            ctx.dead_letter(
                msg,
                internal_error(exc, f"stage {self.stage.name}"),
                event_id=event_id if isinstance(event_id, str) else None,
            )

    def _process_items(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: PartitionStore | None,
        ctx: BatchContext,
    ) -> None:
        mark = ctx.mark()
        if items:
            self.stage.process(tp, items, store, ctx)
        self._encode(ctx, mark, store)

    def _undo(self, store: PartitionStore | None, ctx: BatchContext, mark: tuple[int, int]) -> None:
        """Back to the partition's last commit (and the batch's ``mark``): its erasure
        requests applied again, the stage's in-memory effects of the batch dropped."""
        ctx.restore(mark)
        self.stage.discard()
        if store is not None:
            store.rollback()
            self._apply_erasures(store)

    def _timer_failed(self, tp: TopicPartitionKey, exc: BaseException) -> None:
        metrics.STAGE_ERRORS.labels(self.stage.name, "timer").inc()
        log.error(
            "%s: the timers of %s/%d raised %s; skipped for this batch",
            self.stage.name,
            tp[0],
            tp[1],
            type(exc).__name__,
            exc_info=exc,
        )

    def _encode(
        self, ctx: BatchContext, mark: tuple[int, int], store: PartitionStore | None = None
    ) -> None:
        """Encode the outputs emitted since ``mark`` and serialise the state put since:
        an output that does not fit its schema (``OutputRejected``), or state that
        cannot be stored (``StateRejected``), is blamed on the record that produced it."""
        for out in ctx.outputs[mark[0] :]:
            if out.value is None:
                try:
                    out.value = self.codec.for_topic(out.topic).encode(out.record)
                except Exception as exc:
                    if not is_record_fault(exc):
                        raise
                    raise OutputRejected(out.topic, exc) from exc
        if store is not None:
            store.seal()

    def _decode(
        self, topic: str, msgs: list[Message], ctx: BatchContext
    ) -> list[tuple[Message, dict[str, Any]]]:
        codec = self.codec.for_topic(topic)
        items = []
        for msg in msgs:
            try:
                items.append((msg, codec.decode(msg.value(), msg.partition(), msg.offset())))
            except Exception as exc:
                if not is_record_fault(exc):
                    raise
                ctx.dead_letter(msg, internal_error(exc, "decoding"))
        return items

    def _without_erased(
        self, items: list[tuple[Message, dict[str, Any]]], ctx: BatchContext
    ) -> list[tuple[Message, dict[str, Any]]]:
        """Skip (and count) input of forgotten customers received before their erasure,
        or at any time if they opted out."""
        erasures = self.stage.erasures
        if not erasures.keys:
            return items
        kept = []
        subject = self.stage.erasure_subject
        for msg, record in items:
            named = subject(record)
            if named is not None and erasures.hides(*named):
                metrics.EVENTS_SUPPRESSED.labels(self.stage.name, "erased").inc()
                ctx.ok()
            else:
                kept.append((msg, record))
        return kept

    def _apply_erasures(self, store: PartitionStore) -> bool:
        """Apply the erasure requests this partition's store has not applied yet
        (committed with the store); True if there were any."""
        erasures = self.stage.erasures
        if not len(erasures):  # the common case: no store read on the hot path
            return False
        applied = store.meta(ERASURES_APPLIED)
        if applied >= len(erasures):
            return False
        for request in erasures.since(applied):
            self.stage.forget(store, request)
        store.set_meta(ERASURES_APPLIED, len(erasures))
        store.scrub_at_commit()
        return True


class StageRunner:
    """Runs one ``Stage`` in this process until ``stop`` is set (see module docstring)."""

    def __init__(
        self,
        stage: Stage,
        settings: Settings,
        bootstrap: str,
        codec: Codec,
        *,
        state_dir: Path | None = None,
        max_batch: int = 2000,
        poll_timeout_s: float = 0.1,
        group_id: str | None = None,
        dlq_window: int = 1000,
        idle_s: float = 1.0,
        dlq_max_ratio: float = 0.5,
    ) -> None:
        self.stage = stage
        self.codec = codec
        self.settings = settings
        self.bootstrap = bootstrap
        self.records = RecordProcessor(stage, codec)
        self.max_batch = max_batch
        self.poll_timeout_s = poll_timeout_s
        self.state_dir = (state_dir or settings.runtime_dir / "state") / stage.name
        self.policy = DeadLetterPolicy(stage.name, window=dlq_window, max_ratio=dlq_max_ratio)
        self.consumer: Consumer = make_consumer(
            group_id or f"journeybus-{stage.name}",
            settings,
            bootstrap,
            **{
                "client.id": f"journeybus-{stage.name}",
                # a bounded prefetch queue, and librdkafka's per-partition statistics
                # (records fetched but not consumed yet) for caught_up()
                "queued.max.messages.kbytes": stage.prefetch_kbytes,
                "statistics.interval.ms": 500,
                "stats_cb": self._on_stats,
                **(
                    {}
                    if stage.fetch_wait_ms is None
                    else {"fetch.wait.max.ms": stage.fetch_wait_ms}
                ),
            },
        )
        self.producer = make_producer(
            settings,
            bootstrap,
            **{
                "client.id": f"journeybus-{stage.name}",
                # a flush waiting on a lost broker serves these, not the consumer's
                "statistics.interval.ms": 1000,
                "stats_cb": self._on_producer_stats,
            },
        )
        self.stores: dict[TopicPartitionKey, PartitionStore] = {}
        self._delivery_errors: list[str] = []
        self._stop = threading.Event()  # run()'s; a stop gives up waiting on the broker
        self._abandoned = False  # stopped with outputs unacknowledged
        self.assigned = False  # for readiness: the group gave this runner partitions
        self.assignment: set[TopicPartitionKey] = set()
        self.idle_s = idle_s
        self._last_record: dict[TopicPartitionKey, float] = {}
        # per partition from librdkafka's statistics: (queued records, fetch position,
        # high watermark), and when they were served
        self._fetch_state: dict[TopicPartitionKey, tuple[int, int, int]] = {}
        self._stats_at = 0.0
        self._assigned_at = time.monotonic()
        self._last_tick = 0.0
        self.processed = 0
        self.halted: str | None = None  # why the dead-letter rate halted the stage
        self.broker = BrokerWatch()  # reachable? from its clients' statistics
        self.contiguous = Contiguous(stage.name)  # records handed on in order, no holes
        self.changelogs: Changelogs | None = None
        self.sink: BatchSink | None = stage.sink if isinstance(stage, SinkStage) else None
        self.logs: dict[str, str] = {}  # log ids of the inputs and changelogs, at assignment
        self._logs_asked = 0.0
        self.restored: dict[TopicPartitionKey, Restored] = {}  # the last restore of each
        if stage.stateful:
            self.changelogs = Changelogs(
                stage.name, stage.inputs, codec.catalog, settings, bootstrap, self.producer
            )

    # -- assignment ----------------------------------------------------------------
    def _store_path(self, tp: TopicPartitionKey) -> Path:
        return self.state_dir / f"{tp[0]}-{tp[1]}.sqlite"

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned = True
        self._assigned_at = time.monotonic()
        self.assignment |= {(p.topic, p.partition) for p in partitions}
        if self.changelogs is not None:
            changelogs = self.changelogs
            if not changelogs.ensured:  # a runner driven without ``run`` (benchmarks)
                changelogs.ensure_topics()
            topics = {p.topic for p in partitions}
            logs = log_ids(
                self.settings,
                self.bootstrap,
                [*topics, *(changelogs.topic(t) for t in topics)],
                self.stage.name,
            )
            self.logs.update(logs)
            for part in partitions:
                key = (part.topic, part.partition)
                self.stores[key] = self.stores.get(key) or PartitionStore(self._store_path(key))
            # their state as the last owners committed it, wherever that ran
            self.restored.update(
                changelogs.restore_all(
                    [
                        (key, self.stores[key], logs.get(changelogs.topic(key[0])))
                        for key in ((p.topic, p.partition) for p in partitions)
                    ]
                )
            )
            for part in partitions:
                key = (part.topic, part.partition)
                store = self.stores[key]
                # Resume from the offset committed with the state, not the group's,
                # if it is an offset in this log.
                stored = resume_offset(self.stage.name, store, part, logs.get(part.topic))
                part.offset = stored if stored is not None else OFFSET_BEGINNING
                if stored is not None:
                    self.contiguous.expect(part.topic, part.partition, stored)
            consumer.assign(partitions)
        elif self.sink is not None:
            self._resume_sink(self.sink, consumer, partitions)
        metrics.ASSIGNED_PARTITIONS.labels(self.stage.name).set(
            len(self.stores) if self.stage.stateful else len(self.assignment)
        )
        log.info(
            "%s assigned %s",
            self.stage.name,
            [f"{p.topic}/{p.partition}@{p.offset}" for p in partitions],
        )

    def _resume_sink(
        self, sink: BatchSink, consumer: Consumer, partitions: list[TopicPartition]
    ) -> None:
        """Resume each partition from the offset the sink stored with its rows, if it is
        an offset in the log the broker has now (``streams.core.kafka.resume_from``); a log
        that changed is read from its beginning, the rows kept, recorded at once."""
        sink.wait_written()  # the stored offsets must include the write in flight
        self.logs.update(
            log_ids(self.settings, self.bootstrap, list(self.stage.inputs), self.stage.name)
        )
        stored = sink.stored_offsets()
        rewrites: dict[TopicPartitionKey, int] = {}
        for part in partitions:
            key = (part.topic, part.partition)
            offset, known = stored.get(key, (None, None))
            offset, rewrite = resume_partition(
                self.stage.name,
                part.topic,
                part.partition,
                offset,
                known,
                self.logs.get(part.topic),
            )
            if rewrite:  # only for a log the broker named
                rewrites[key] = offset or 0
            part.offset = offset if offset is not None else OFFSET_BEGINNING
            if offset is not None:
                self.contiguous.expect(part.topic, part.partition, offset)
        if rewrites:
            sink.store_offsets(rewrites, self.logs)
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assignment -= {(p.topic, p.partition) for p in partitions}
        for part in partitions:
            self.contiguous.forget(part.topic, part.partition)
            self.stage.revoked((part.topic, part.partition))
        for part in partitions:
            store = self.stores.pop((part.topic, part.partition), None)
            if store:
                store.close()
        metrics.ASSIGNED_PARTITIONS.labels(self.stage.name).set(len(self.stores))

    # -- the loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set, or until the dead-letter rate halts the
        stage: then it stays halted (``halted`` says why; ``/ready`` reports it) and the
        other stages of the process go on. Other errors end the process."""
        self._stop = stop
        try:
            if self.changelogs is not None and not self._ensure_changelogs(self.changelogs, stop):
                return  # stopped before the broker answered
            self.consumer.subscribe(
                list(self.stage.inputs),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            while not stop.is_set():
                self.run_once()
        except DeadLetterRateExceeded as exc:
            self.halted = str(exc)  # logged by the policy; nothing of the batch committed
        except StopRequested as exc:
            self._abandoned = True
            log.warning("%s: %s", self.stage.name, exc)
        finally:
            self.close()

    def _log_of(self, topic: str) -> str | None:
        """The log id of ``topic`` (asked again, at most every 10 s, while unknown: a
        position stored without it cannot be trusted by the next restore)."""
        if topic not in self.logs and time.monotonic() - self._logs_asked > 10.0:
            self._logs_asked = time.monotonic()
            self.logs.update(log_ids(self.settings, self.bootstrap, [topic], self.stage.name))
        return self.logs.get(topic)

    def _ensure_changelogs(self, changelogs: Changelogs, stop: threading.Event) -> bool:
        """Create the stage's changelog topics, waiting for a broker that is not there
        (yet); False if stopped first."""
        while not stop.is_set():
            try:
                changelogs.ensure_topics()
                return True
            except (KafkaException, Retriable) as exc:
                log.warning("%s: changelog topics: %s; retrying", self.stage.name, exc)
                stop.wait(1.0)
        return False

    def run_once(self) -> int:
        """Consume, process, produce and commit one batch; returns its size."""
        self.stage.poll_side_inputs()
        arrived = [m for m in self._arrived() if not self._is_error(m)]
        batch = self.contiguous.filter(self.consumer, arrived)  # never past a hole
        started = time.perf_counter()
        ctx = self._context()
        next_offsets: dict[TopicPartitionKey, int] = {}
        erased = False
        prepared: Any = None
        if batch and self.sink is not None:
            for msg in batch:
                next_offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
            for topic, count in Counter(m.topic() for m in batch).items():
                metrics.EVENTS_IN.labels(self.stage.name, topic).inc(count)
            prepared = self.sink.prepare(batch, ctx)
            ctx.outcomes += [True] * (len(batch) - len(ctx.outcomes))  # the rest were fine
            ctx.settle()
        elif batch:
            by_partition: dict[TopicPartitionKey, list[Message]] = defaultdict(list)
            for msg in batch:
                by_partition[(msg.topic(), msg.partition())].append(msg)
            now = time.monotonic()
            for tp, msgs in by_partition.items():
                self._last_record[tp] = now
                metrics.EVENTS_IN.labels(self.stage.name, tp[0]).inc(len(msgs))
                store = self.stores.get(tp) if self.stage.stateful else None
                if self.stage.stateful and store is None:
                    continue  # revoked while consuming; the new owner replays it
                self.records.process_partition(tp, msgs, store, ctx)
                next_offsets[tp] = msgs[-1].offset() + 1
        elif self.sink is not None:
            self.sink.idle()
        elif self.stores and time.monotonic() - self._last_tick > 1.0:
            self._last_tick = time.monotonic()
            for tp, store in list(self.stores.items()):
                erased |= self.records.tick_idle(tp, store, ctx)
        self.stage.after_batch(ctx, self.assignment, self.caught_up)
        if batch or ctx.outputs or erased:
            self._produce_and_commit(ctx, next_offsets, prepared)
        if batch:
            metrics.BATCH_SIZE.labels(self.stage.name).observe(len(batch))
            metrics.BATCH_SECONDS.labels(self.stage.name).observe(time.perf_counter() - started)
            ts_type, ts = batch[-1].timestamp()
            if ts_type and ts > 0:
                metrics.PROCESSING_LATENCY.labels(self.stage.name).observe(
                    max(0.0, time.time() - ts / 1000)
                )
            self.processed += len(batch)
        return len(batch)

    def _arrived(self) -> list[Message]:
        """Up to ``max_batch`` records, returned as soon as any are there.

        ``consume(n, timeout)`` waits for ``n`` records or the whole timeout, so
        below ``n`` records per timeout every record waited for it at each hop.
        Here only an empty queue is waited on (``poll_timeout_s``), for its first
        record; the rest is what is already fetched. Under load the queue refills
        while a batch is processed, so batches still grow with the rate.
        """
        started = time.monotonic()
        messages = self.consumer.consume(self.max_batch, timeout=0)
        if not messages:
            first = self.consumer.poll(self.poll_timeout_s)
            if first is None:
                return []
            messages = [first, *self.consumer.consume(self.max_batch - 1, timeout=0)]
        if self.stage.linger_ms and self.sink is not None:
            deadline = started + self.stage.linger_ms / 1000
            messages += self._linger(self.sink, deadline, self.max_batch - len(messages))
        return messages

    def _linger(self, sink: BatchSink, deadline: float, room: int) -> list[Message]:
        """More records for a sink's batch: until ``deadline`` (the sink's linger after
        the runner began gathering) passed and its previous write has finished, or the
        batch is full. Records that arrive while a write is in flight would wait for it
        anyway; taking them makes batches grow under load, and a write's cost is mostly
        per statement, not per row."""
        more: list[Message] = []
        while len(more) < room:
            left = deadline - time.monotonic()
            if left <= 0 and not sink.writing():
                break
            got = self.consumer.consume(
                min(5000, room - len(more)), timeout=min(left, 0.05) if left > 0 else 0.01
            )
            if not got and left <= 0:
                continue  # the write in flight: wait for it, gathering
            more += got
        return more

    def _on_stats(self, text: str) -> None:
        """librdkafka statistics: records prefetched per partition, consumer lag."""
        stats = orjson.loads(text)
        self.broker.observe(stats)
        parts = partition_stats(stats)
        self._fetch_state = {
            key: (
                pinfo.get("fetchq_cnt", 1),
                pinfo.get("next_offset", -1),
                pinfo.get("hi_offset", -1),
            )
            for key, pinfo in parts.items()
        }
        self._stats_at = time.monotonic()
        observe_lag(self.stage.name, stats, self.assignment)

    def _on_producer_stats(self, text: str) -> None:
        self.broker.observe(orjson.loads(text))

    def caught_up(self) -> set[TopicPartitionKey]:
        """Assigned partitions with nothing left to read.

        Both of: no record came from it for ``idle_s``, and librdkafka's statistics,
        served since then, show nothing of it queued and its fetch position at its
        high watermark. The fetch position, not the application's: a partition
        whose records were all consumed before a restart delivers nothing after
        it, so the application never has a position there. (The embedded broker's
        high watermark can be short by the last batch, BROKER-NOTES.md; a fetch
        position past it still means everything was fetched.)
        """
        now = time.monotonic()
        done = set()
        for key in self.assignment:
            last = self._last_record.get(key, self._assigned_at)
            if now - last < self.idle_s or self._stats_at <= last:
                continue
            queued, next_offset, high = self._fetch_state.get(key, (1, -1, -1))
            if queued == 0 and high >= 0 and next_offset >= high:
                done.add(key)
        return done

    def _context(self) -> BatchContext:
        return BatchContext(self.stage.name, self.policy, int(time.time() * 1000))

    def _is_error(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return False
        if err.code() == KafkaError._PARTITION_EOF:
            return True
        if err.fatal():
            raise FatalError(f"{self.stage.name}: consumer error {err}")
        log.warning("%s: consumer error %s", self.stage.name, err)
        return True

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err}")

    def publish(self, outputs: list[Output]) -> None:
        """Produce ``outputs`` and wait for the broker's acknowledgement of every one;
        FatalError if one was refused, StopRequested if a stop came first (nothing may
        commit: the batch is replayed)."""
        produce_outputs(self.producer, self.codec, outputs, self.stage.name, self._delivered)
        try:
            remaining = flush_until(self.producer, 60, self._stop, f"{self.stage.name} outputs")
            if remaining or self._delivery_errors:
                errors, self._delivery_errors = self._delivery_errors, []
                raise FatalError(
                    f"{self.stage.name}: {remaining} outputs not acknowledged, "
                    f"errors: {errors[:5]}; not committing, the batch will be replayed"
                )
        except BaseException:  # StopRequested too: nothing of the batch may commit
            for store in self.stores.values():
                store.rollback()
            raise

    def _produce_and_commit(
        self, ctx: BatchContext, next_offsets: dict[TopicPartitionKey, int], prepared: Any = None
    ) -> None:
        self.publish(ctx.outputs)
        if self.changelogs is not None:
            self._commit_state(self.changelogs, next_offsets)
        if self.sink is not None and prepared is not None:
            self.sink.write(prepared, next_offsets, self.logs)  # rows + offsets, one transaction
        if next_offsets:
            self.consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                asynchronous=True,
            )

    def _commit_state(
        self, changelogs: Changelogs, next_offsets: dict[TopicPartitionKey, int]
    ) -> None:
        """Changelog first (acknowledged), then each store with its next offset and the
        changelog position; a partition without new input commits its timers' changes
        (ticks, erasures) at the offset it had."""
        todo: dict[TopicPartitionKey, int] = {}
        for tp, store in self.stores.items():
            offset = next_offsets.get(tp)
            if offset is None and store.has_changes():
                offset = store.next_offset()
            if offset is not None:
                todo[tp] = offset
        if not todo:
            return
        positions: dict[TopicPartitionKey, int] = {}
        try:
            for tp, offset in todo.items():
                store = self.stores[tp]
                changelogs.produce(tp, store.changes(), offset, store.log_id(), positions)
            changelogs.flush(self._stop)
        except BaseException:
            for store in self.stores.values():
                store.rollback()
            raise
        for tp, offset in todo.items():
            clog = self._log_of(changelogs.topic(tp[0]))
            self.stores[tp].commit(offset, changelog=(clog, positions[tp]))

    def close(self) -> None:
        try:
            self.producer.flush(0 if self._abandoned else 10)
            self.consumer.close()
            self.stage.close()
        finally:
            for store in self.stores.values():
                store.close()
            self.stores.clear()
            # librdkafka has no producer close: dropping the references destroys it. A
            # closed runner's producer kept alive would reconnect to a broker that came
            # back with an empty log and, asking for its topics' metadata, have the
            # embedded broker create them (4 partitions) before their stage does.
            if self.changelogs is not None:
                self.changelogs.producer = None  # type: ignore[assignment]
            self.producer = None  # type: ignore[assignment]


def produce_outputs(
    producer: Producer,
    codec: Codec,
    outputs: list[Output],
    owner: str,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    """Queue ``outputs`` on ``producer`` (encoded unless they are), counted as ``owner``'s
    outputs and dead letters; the caller flushes and checks the deliveries."""
    by_topic: dict[str, list[Output]] = defaultdict(list)
    for out in outputs:
        by_topic[out.topic].append(out)
    for topic, outs in by_topic.items():
        topic_codec = codec.for_topic(topic)
        for out in outs:
            # outputs of records are encoded already; after_batch's are not
            value = out.value if out.value is not None else topic_codec.encode(out.record)
            if out.dead is not None:
                metrics.DEAD_LETTERS.labels(owner, topic, out.dead).inc()
            key = out.key.encode() if out.key else None
            extra = {} if out.partition is None else {"partition": out.partition}
            produce_waiting(producer, topic, value, key, on_delivery=on_delivery, **extra)
        metrics.EVENTS_OUT.labels(owner, topic).inc(len(outs))


def resume_offset(
    owner: str, store: PartitionStore, part: TopicPartition, current: str | None
) -> int | None:
    """Where a stateful consumer resumes ``part`` (``streams.core.kafka.resume_from``): the
    offset stored with its state if it is an offset in the log the broker has now,
    else None (its beginning), the state kept. The change is recorded at once, so a
    crash before the next commit does not go back to the old offset."""
    stored, known = store.next_offset(), store.log_id()
    offset, rewrite = resume_partition(owner, part.topic, part.partition, stored, known, current)
    if rewrite:  # only for a log the broker named (current is not None)
        store.start_log(current, offset or 0)
    return offset


def runners_ready(runners: list[StageRunner]) -> tuple[bool, str]:
    """For ``/ready``: ready when every runner has been assigned partitions and is
    consuming, and its stage says it is ready; not while one is halted by its
    dead-letter rate (the reason says why) or the broker is unreachable."""
    halted = [f"{r.stage.name} halted: {r.halted}" for r in runners if r.halted]
    if halted:
        return False, "; ".join(halted)
    if any(r.broker.up is False for r in runners):
        return False, "broker unreachable"
    for runner in runners:
        ok, why = runner.stage.ready()
        if not ok:
            return False, f"{runner.stage.name}: {why}"
    waiting = [r.stage.name for r in runners if not r.assigned]
    if waiting:
        return False, f"waiting for partition assignment: {', '.join(waiting)}"
    return True, "ok"


def run_sink(
    sink: BatchSink,
    name: str,
    stop: threading.Event,
    settings: Settings,
    bootstrap: str,
    codec: Codec,
    *,
    group_id: str,
    max_batch: int,
    linger_ms: float,
    serve: Callable[[Callable[[], tuple[bool, str]]], None] | None = None,
) -> StageRunner:
    """Run ``sink`` on a runner until ``stop`` (see ``SinkStage``): every erasure request
    read first, then batches. Halted by its dead-letter rate, it stays up, not ready,
    until stopped (a restart would only read the same records). ``serve`` is handed
    the readiness check (to serve /ready)."""
    sink.setup()
    stage = SinkStage(sink, name, linger_ms)
    runner = StageRunner(stage, settings, bootstrap, codec, group_id=group_id, max_batch=max_batch)
    sink.bind(stage.erasures, runner.policy, runner.publish)
    stage.attach_erasures(codec, settings, bootstrap)  # after bind: the sink's filter sees them
    if serve is not None:
        serve(lambda: runners_ready([runner]))
    runner.run(stop)
    if runner.halted:
        stop.wait()
    return runner


def run_stages(runners: Iterable[StageRunner], stop: threading.Event) -> None:
    """Run several stages in threads of this process until ``stop`` or one fails.

    A stage halted by its dead-letter rate does not end the process: it stays up,
    not ready, until stopped (a restart would only replay the same records)."""
    errors: list[BaseException] = []

    def guard(runner: StageRunner) -> None:
        try:
            runner.run(stop)
        except BaseException as exc:
            log.exception("stage %s failed", runner.stage.name)
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=guard, args=(r,), name=r.stage.name, daemon=True) for r in runners
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    stop.wait()
