"""Dead-letter tooling: ``journeybus dlq list`` and ``journeybus dlq replay``.

Dead letters are read from the ``*.dlq`` topics themselves (the sink's
``dead_letters`` table is a copy), from the beginning, once.

Replay sends each selected dead letter's original input back to its source
topic so that the pipeline processes it again, after the fix that makes it
valid:

- ``avro`` originals (a stage could not process a record of a topic) go back
  byte for byte, with their key, to that topic;
- ``json`` originals (a source could not turn its input into a record) are
  validated against the source topic's schema, as a source would, and
  published when they fit now; input that is not in the topic's JSON form
  (a Segment call the collector refused) needs its source: it is counted as
  not replayable here, and so is input still invalid.

Nothing is deleted: topics are append-only. Replaying is safe to repeat: the
pipeline's ids come from event ids, so a replayed event processed twice is one
touchpoint and one row; a dead letter that fails again has the same dead-letter
id.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.core.catalog import DLQ_SUFFIX, Catalog, record_key
from streams.core.codec import Codec
from streams.core.errors import InvalidRecord
from streams.core.jsonavro import from_json
from streams.core.kafka import make_producer
from streams.core.settings import Settings


@dataclass
class DeadLetter:
    """One dead letter and the topic it was read from."""

    dlq_topic: str
    record: dict[str, Any]

    @property
    def reason(self) -> str:
        return self.record["error_type"]


def dlq_topics(catalog: Catalog, topic: str | None = None) -> list[str]:
    """The dead-letter topics to read: all of the catalogue's, or ``topic``'s
    (a source topic or its ``.dlq``)."""
    if topic:
        return [topic if topic.endswith(DLQ_SUFFIX) else topic + DLQ_SUFFIX]
    return sorted(t for t in catalog.topics if t.endswith(DLQ_SUFFIX))


def read_dead_letters(
    settings: Settings,
    bootstrap: str,
    codec: Codec,
    topics: Iterable[str],
    reason: str | None = None,
    quiet_s: float = 1.0,
) -> list[DeadLetter]:
    """Every dead letter of ``topics`` (optionally of one ``reason``), oldest first per
    partition. Reads until every partition is at its end and nothing came for
    ``quiet_s`` (the embedded broker's end offsets can be short by a batch)."""
    conf = settings.kafka.confluent_config(bootstrap)
    consumer = Consumer(
        {**conf, "group.id": f"journeybus-dlq-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    letters: list[DeadLetter] = []
    try:
        metadata = consumer.list_topics(timeout=30).topics
        parts = [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics
            if t in metadata
            for p in metadata[t].partitions
        ]
        if not parts:
            return []
        ends = {
            (p.topic, p.partition): consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts
        }
        positions = dict.fromkeys(ends, 0)
        consumer.assign(parts)
        last = time.monotonic()
        while any(positions[k] < ends[k] for k in ends) or time.monotonic() - last < quiet_s:
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error():
                    continue
                last = time.monotonic()
                positions[(msg.topic(), msg.partition())] = msg.offset() + 1
                record = codec.decode(msg.topic(), msg.value())
                if reason is None or record["error_type"] == reason:
                    letters.append(DeadLetter(msg.topic(), record))
    finally:
        consumer.close()
    return letters


def summarise(letters: Iterable[DeadLetter]) -> list[tuple[str, str, int]]:
    """(dead-letter topic, reason, count), most frequent first."""
    counts = Counter((d.dlq_topic, d.reason) for d in letters)
    return sorted(((t, r, n) for (t, r), n in counts.items()), key=lambda x: (-x[2], x[0], x[1]))


@dataclass
class ReplayResult:
    replayed: Counter = field(default_factory=Counter)  # (source topic, reason) -> count
    not_replayable: Counter = field(default_factory=Counter)  # (source topic, why) -> count

    @property
    def total(self) -> int:
        return sum(self.replayed.values())


def _catalog_topic(catalog: Catalog, topic: str) -> str | None:
    """The catalogue topic a (possibly prefixed) topic name is, if any."""
    return next((t for t in catalog.topics if topic.endswith(t)), None)


def replay_message(
    catalog: Catalog, codec: Codec, letter: dict[str, Any]
) -> tuple[str, bytes | None, bytes]:
    """(topic, key, value) to publish for a dead letter; InvalidRecord if it cannot be."""
    topic = letter["source_topic"]
    original = letter["original"]
    if letter["original_format"] == "avro":
        return topic, letter["source_key"], original
    spec_name = _catalog_topic(catalog, topic)
    if spec_name is None:
        raise InvalidRecord("unknown_topic", f"{topic} is not a catalogue topic")
    try:
        value = orjson.loads(original)
    except orjson.JSONDecodeError:
        raise InvalidRecord("not_json", "the original is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidRecord("schema_violation", "the original is not a JSON object")
    topic_codec = codec.for_topic(spec_name)
    record = from_json(topic_codec.revision.raw, value)  # raises InvalidRecord
    key = record_key(catalog.topics[spec_name], record)
    return topic, key.encode() if key is not None else None, topic_codec.encode(record)


def replay(
    settings: Settings,
    bootstrap: str,
    codec: Codec,
    catalog: Catalog,
    letters: Iterable[DeadLetter],
    dry_run: bool = False,
) -> ReplayResult:
    """Publish the originals of ``letters`` back to their source topics (see the module
    docstring); waits for the broker's acknowledgement of every one."""
    result = ReplayResult()
    producer = None if dry_run else make_producer(settings, bootstrap)
    errors: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))

    for letter in letters:
        source = letter.record["source_topic"]
        try:
            topic, key, value = replay_message(catalog, codec, letter.record)
        except InvalidRecord as exc:
            result.not_replayable[(source, exc.reason)] += 1
            continue
        if producer is not None:
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
        result.replayed[(source, letter.reason)] += 1
    if producer is not None:
        remaining = producer.flush(60)
        if remaining or errors:
            raise RuntimeError(
                f"the broker did not acknowledge {remaining} replayed records: {errors[:3]}"
            )
    return result
