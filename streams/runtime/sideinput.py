"""Side inputs: every partition of a topic read into this process (like a GlobalTable).

Used for lookups every worker needs whole: the identity evidence (to resolve
customer keys) and the product catalogue (category and brand). Read from the
earliest offset at start and kept up to date between batches; nothing is
committed: a restart, or another worker, reads the topic again, so every topic
read as a side input is kept forever (``retention: forever`` in its topic file;
tests/integration/test_side_inputs_kept.py holds every stage to it).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streams.core import metrics
from streams.core.codec import Codec
from streams.core.errors import InvalidRecord, is_record_fault
from streams.core.kafka import Contiguous, consumer_config
from streams.core.settings import Settings

log = logging.getLogger(__name__)

# Side inputs are lookups (erasure requests, the catalogue, journeys for a global
# model, scores): half a second more latency is harmless, and the embedded broker
# spends CPU on every parked fetch: at the stages' 50 ms, a dozen idle side inputs
# kept it busy.
SIDE_INPUT_FETCH_WAIT_MS = 500


class SideInput:
    """Applies ``apply(record)`` to every record of ``topic``, in offset order per partition.

    Undecodable records, and records whose ``apply`` raises, are skipped with a
    log line and a count (``journeybus_side_input_skipped_total``): the stage that
    owns the topic dead-letters what is invalid; a side input only reads.
    """

    def __init__(
        self,
        topic: str,
        apply: Callable[[dict[str, Any]], None],
        codec: Codec,
        settings: Settings,
        bootstrap: str,
    ) -> None:
        self.topic = topic
        self.apply = apply
        self.codec = codec.for_topic(topic)
        conf = consumer_config(
            f"journeybus-sideinput-{uuid.uuid4().hex[:12]}",
            settings,
            bootstrap,
            **{"enable.partition.eof": False, "fetch.wait.max.ms": SIDE_INPUT_FETCH_WAIT_MS},
        )
        self.consumer = Consumer(conf)
        meta = self.consumer.list_topics(topic, timeout=30).topics[topic]
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        )
        self.applied = 0
        self.contiguous = Contiguous(f"side input {topic}")

    def poll(self, max_records: int = 10_000, timeout_s: float = 0.0) -> int:
        """Apply what has arrived; returns how many records were applied."""
        count = 0
        msgs = []
        for msg in self.consumer.consume(max_records, timeout=timeout_s):
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("side input %s: %s", self.topic, msg.error())
                continue
            msgs.append(msg)
        for msg in self.contiguous.filter(self.consumer, msgs):  # in order, no holes
            try:
                self.apply(self.codec.decode(msg.value(), msg.partition(), msg.offset()))
                count += 1
            except InvalidRecord as exc:
                metrics.SIDE_INPUT_SKIPPED.labels(self.topic, exc.reason).inc()
                log.warning("side input %s skips a record: %s", self.topic, exc)
            except Exception as exc:
                if not is_record_fault(exc):
                    raise
                # One record must not stop every stage that reads this topic.
                metrics.SIDE_INPUT_SKIPPED.labels(self.topic, "internal_error").inc()
                log.error(
                    "side input %s skips %d@%d: applying it raised %s",
                    self.topic,
                    msg.partition(),
                    msg.offset(),
                    type(exc).__name__,
                    exc_info=exc,
                )
        self.applied += count
        return count

    def catch_up(self, quiet_polls: int = 2, timeout_s: float = 120.0) -> int:
        """Read up to the end each partition had when called, then until nothing new
        arrives for ``quiet_polls`` polls of half a second.

        A stage restores its side inputs before its first batch, so that it does
        not process events with a lookup table missing what it knew before. Quiet
        polls alone are not enough: the first fetches of a new consumer can take
        longer than they last (found by the activation agents' kill test, whose
        restarted worker once read an empty catalogue).
        """
        deadline = time.monotonic() + timeout_s
        ends = self._ends()
        quiet = applied = 0
        while time.monotonic() < deadline and (quiet < quiet_polls or not self._reached(ends)):
            count = self.poll(timeout_s=0.5)
            applied += count
            quiet = quiet + 1 if count == 0 else 0
        return applied

    def _ends(self) -> dict[int, int]:
        """The end now (high watermark) of each assigned partition holding records."""
        ends = {}
        for tp in self.consumer.assignment():
            low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
            if high > low:
                ends[tp.partition] = high
        return ends

    def _reached(self, ends: dict[int, int]) -> bool:
        positions = self.consumer.position([TopicPartition(self.topic, p) for p in ends])
        return all(tp.offset >= ends[tp.partition] for tp in positions)

    def close(self) -> None:
        self.consumer.close()
