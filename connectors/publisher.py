"""Validate, encode and publish source records; dead-letter what does not fit.

Shared by every source: polling sources call ``publish_until_acked`` (blocking),
the HTTP collector calls ``submit`` and awaits the returned future, so that it
answers its client only after the broker acknowledged.

Key: the destination topic's key field (``key.field``, else ``key.fallback``,
from ``schemas/topics``), so a source keys by customer without knowing it.
Dead letters go to ``<topic>.dlq`` with the original input (``original_format``
``json``) and are acknowledged like the records: a batch counts as published
only when both are on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Producer

from connectors.pii import protect_revision
from connectors.record import SourceRecord
from connectors.settings import ConnectorSettings
from streams.core import metrics
from streams.core.catalog import Catalog, record_key
from streams.core.codec import Codec, make_codec
from streams.core.errors import InvalidRecord, Retriable
from streams.core.jsonavro import from_json
from streams.core.kafka import BrokerWatch, make_producer, produce_waiting
from streams.core.settings import Settings
from streams.runtime.deadletter import dead_letter_record, dead_letter_topic

log = logging.getLogger(__name__)


@dataclass
class Outgoing:
    """One message ready to produce: a record, or the dead letter of an input."""

    topic: str  # physical topic (prefix applied)
    key: bytes | None
    value: bytes
    event_id: str | None
    dead: InvalidRecord | None = None
    source: str = ""  # the topic the input was for (its dead letter's ``topic`` is the .dlq)


@dataclass
class Delivery:
    """Acknowledgements of one submitted batch (filled in by producer callbacks)."""

    expected: int
    accepted: int = 0
    dead_lettered: int = 0
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def ok(self) -> bool:
        return self.done.is_set() and not self.errors


class Publisher:
    """Turns ``SourceRecord``s into acknowledged messages for one connector."""

    def __init__(
        self,
        connector: str,
        conf: ConnectorSettings,
        settings: Settings,
        bootstrap: str | None = None,
        codec: Codec | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.connector = connector
        self.conf = conf
        self.codec = codec or make_codec(settings)
        self.catalog: Catalog = self.codec.catalog
        self.producer = producer or make_producer(
            settings,
            bootstrap,
            **{
                "client.id": f"journeybus-{connector}",
                "statistics.interval.ms": 1000,  # for broker
                "stats_cb": self._on_stats,
            },
        )
        self.broker = BrokerWatch()  # reachable? from the producer's statistics
        self._poller: threading.Thread | None = None
        self._closing = threading.Event()

    def _on_stats(self, text: str) -> None:
        self.broker.observe(orjson.loads(text))

    # -- validation ------------------------------------------------------------------
    def prepare(self, record: SourceRecord, default_topic: str) -> Outgoing:
        """The message for ``record``: encoded, or its dead letter when invalid."""
        topic = record.topic or default_topic
        error = record.error
        value = record.value
        event_id = value.get("event_id") if isinstance(value, dict) else None
        if error is None:
            try:
                return self._encode(topic, value, record.typed)
            except InvalidRecord as exc:
                error = exc
        original = record.original
        if original is None:
            original = orjson.dumps(value, default=str) if value is not None else b""
        return self._dead_letter(topic, error, original, event_id)

    def _encode(self, topic: str, value: dict[str, Any] | None, typed: bool) -> Outgoing:
        if not isinstance(value, dict):
            raise InvalidRecord("schema_violation", "a record must be a JSON object")
        codec = self.codec.for_topic(topic)
        # The encoder is strict (unknown, missing and mistyped fields raise), so a value
        # already in Avro form skips the slower plain-JSON conversion.
        record = value if typed else from_json(codec.revision.raw, value)
        protect_revision(codec.revision, record)  # PII at ingestion
        if not record.get("event_id"):  # ids downstream and retry dedupe derive from it
            raise InvalidRecord("missing_id", "the event has no event_id")
        key = record_key(codec.topic, record)
        if key is None:
            raise InvalidRecord(
                "missing_id", f"no {codec.topic.key.get('field')} to key the record by"
            )
        physical = self.conf.topic_prefix + topic
        return Outgoing(
            physical, key.encode(), codec.encode(record), record["event_id"], source=physical
        )

    def _dead_letter(
        self, topic: str, error: InvalidRecord, original: bytes, event_id: str | None
    ) -> Outgoing:
        dlq = dead_letter_topic(topic)
        letter = dead_letter_record(
            stage=self.connector,
            source_topic=self.conf.topic_prefix + topic,
            error=error,
            original=original,
            original_format="json",
            event_id=event_id if isinstance(event_id, str) else None,
        )
        return Outgoing(
            self.conf.topic_prefix + dlq,
            None,
            self.codec.encode(dlq, letter),
            letter["event_id"],
            dead=error,
            source=self.conf.topic_prefix + topic,
        )

    # -- producing -------------------------------------------------------------------
    def submit(self, outgoing: Sequence[Outgoing], on_done=None) -> Delivery:
        """Produce ``outgoing``; the returned ``Delivery`` completes when all are acked.

        ``on_done(delivery)`` runs in the producer's callback thread when the last
        acknowledgement (or error) arrived.
        """
        delivery = Delivery(len(outgoing))
        lock = threading.Lock()
        pending = [len(outgoing)]

        def acked(message: Outgoing, err) -> None:
            with lock:
                if err is not None:
                    delivery.errors.append(str(err))  # counted when it is sent again
                elif message.dead is not None:
                    delivery.dead_lettered += 1
                    metrics.DEAD_LETTERS.labels(
                        self.connector, message.topic, message.dead.reason
                    ).inc()
                else:
                    delivery.accepted += 1
                    metrics.CONNECTOR_RECORDS.labels(self.connector, message.topic).inc()
                if err is None:  # every input handled, for the dead-letter rate
                    metrics.EVENTS_IN.labels(self.connector, message.source).inc()
                pending[0] -= 1
                finished = pending[0] == 0
            if finished:
                delivery.done.set()
                if on_done is not None:
                    on_done(delivery)

        if not outgoing:
            delivery.done.set()
            if on_done is not None:
                on_done(delivery)
            return delivery
        for message in outgoing:
            produce_waiting(
                self.producer,
                message.topic,
                message.value,
                message.key,
                on_delivery=lambda err, _msg, m=message: acked(m, err),
            )
        return delivery

    def publish(self, records: Sequence[SourceRecord], default_topic: str) -> Delivery:
        """Publish and wait; raises ``Retriable`` unless every message was acknowledged."""
        delivery = self.submit([self.prepare(r, default_topic) for r in records])
        deadline = time.monotonic() + self.conf.ack_timeout_s
        while not delivery.done.is_set() and time.monotonic() < deadline:
            self.producer.poll(0.05)
        if not delivery.ok:
            raise Retriable(
                f"{self.connector}: broker did not acknowledge the batch "
                f"({delivery.errors[:3] or 'timed out'})"
            )
        return delivery

    def publish_until_acked(
        self, records: Sequence[SourceRecord], default_topic: str, stop: threading.Event
    ) -> Delivery | None:
        """``publish``, retried after ``retry_s`` until acknowledged; None if stopped first.

        A retried batch may put a second copy of some records on the topic; their
        event ids are the same, which downstream stages deduplicate on.
        """
        while True:
            try:
                return self.publish(records, default_topic)
            except Retriable as exc:
                log.warning("%s; retrying in %.1fs", exc, self.conf.retry_s)
                if stop.wait(self.conf.retry_s):
                    return None

    # -- asyncio -----------------------------------------------------------------------
    def start_polling(self) -> None:
        """Serve delivery callbacks from a background thread (for ``submit_async``)."""
        if self._poller is None:
            self._poller = threading.Thread(
                target=self._poll_loop, name=f"{self.connector}-acks", daemon=True
            )
            self._poller.start()

    def _poll_loop(self) -> None:
        while not self._closing.is_set():
            self.producer.poll(0.05)

    async def submit_async(self, outgoing: Sequence[Outgoing], timeout_s: float) -> Delivery:
        """``submit`` and await every acknowledgement (needs ``start_polling``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()

        def resolve(delivery: Delivery) -> None:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(delivery))

        self.submit(outgoing, on_done=resolve)
        return await asyncio.wait_for(future, timeout_s)

    def close(self) -> None:
        self._closing.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.producer.flush(self.conf.ack_timeout_s)
        self.producer.close()  # its connections end now, not when it is garbage-collected
