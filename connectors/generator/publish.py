"""Publish a generated population to the raw topics, as the real sources would."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Producer

from connectors.generator.population import RawEvent
from connectors.pii import protect_revision
from streams.core.codec import Codec
from streams.core.errors import FatalError


def produce_event(
    event: RawEvent, codec: Codec, producer: Producer, on_delivery, now_received: bool = True
) -> None:
    """Produce one event keyed as its source would key it (no flush), with its PII
    protected as a source protects it (``connectors.pii``; the record changes).

    With ``now_received`` its received time is now, as a live source stamps it.
    """
    record = event.record
    if now_received:
        now = int(time.time() * 1000)
        for name in ("received_at", "captured_at"):
            if name in record:
                record[name] = now
    protect_revision(codec.for_topic(event.topic).revision, record)
    value = codec.encode(event.topic, record)
    while True:
        try:
            producer.produce(event.topic, value, event.key.encode(), on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def publish_events(
    events: Iterable[RawEvent],
    codec: Codec,
    producer: Producer,
    rate: float | None = None,
    now_received: bool = True,
) -> int:
    """Produce every event (keyed as its source would key it); returns how many.

    ``rate`` paces publishing at that many events per second (None: as fast as
    possible). With ``now_received`` the events' received time is the publish
    time, as a live collector would stamp it.
    """
    errors: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))

    started = time.monotonic()
    count = 0
    for event in events:
        produce_event(event, codec, producer, delivered, now_received)
        count += 1
        if rate:
            ahead = count / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            producer.poll(0)
    if producer.flush(60) or errors:
        raise FatalError(f"generator: not every event was acknowledged: {errors[:3]}")
    return count
