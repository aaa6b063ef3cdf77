"""Dead letters of Faust agents, in the runtime's layout and with its reasons.

A record an agent cannot decode, or on which its code raises, becomes a
``cust.dead-letter.v1`` record on ``<source topic>.dlq`` (the ``dead_letters``
table of the DuckDB sink), with the same id, reasons (``decode_error``,
``internal_error``, an ``InvalidRecord``'s own) and fields as the batched stages'
dead letters; it is never silently dropped, and the agent goes on. As in the
runtime, a stage whose records mostly fail halts (``DeadLetterRateExceeded``)
instead of dead-lettering everything (every record a ``BusTopic`` decodes counts as
processed, each dead letter as failed).

Delivery: the dead letter is sent before the agent moves on, and Faust flushes its
producer before it commits the source offset, so a crash in between dead-letters
the record again (same ``dead_letter_id``: one row in the table).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import faust
from faust.exceptions import FaustError
from faust.types import ModelT

from streams.core import metrics
from streams.core.errors import InvalidRecord, internal_error, is_record_fault
from streams.core.topics import TOUCHPOINTS
from streams.runtime.deadletter import (
    DeadLetterPolicy,
    dead_letter_for_message,
    dead_letter_topic,
)

log = logging.getLogger(__name__)
# every dead-letter topic has the same schema (cust.dead-letter.v1): a source topic
# outside the catalogue (a team's own) has its dead letters encoded as this one's
ANY_DEAD_LETTER_TOPIC = dead_letter_topic(TOUCHPOINTS)


class KafkaMessage:
    """A Faust message with the accessors of a confluent-kafka ``Message`` (what the
    runtime's dead-letter record reads)."""

    def __init__(self, message: Any) -> None:
        self._m = message

    def topic(self) -> str:
        return self._m.topic

    def partition(self) -> int:
        return self._m.partition

    def offset(self) -> int:
        return self._m.offset

    def key(self) -> bytes | None:
        return self._m.key

    def value(self) -> bytes | None:
        return self._m.value

    def headers(self) -> list:
        headers = self._m.headers or []
        return list(headers.items() if isinstance(headers, dict) else headers)


def event_id_of(value: Any) -> str | None:
    """The ``event_id`` of a decoded value (model or dict), if it has a string one."""
    found = getattr(value, "event_id", None) if isinstance(value, ModelT) else None
    if isinstance(value, dict):
        found = value.get("event_id")
    return found if isinstance(found, str) else None


class DeadLetters:
    """Sends an app's dead letters; ``guard`` turns a failing event into one.

    ``stage`` names the app in the dead letters and the
    ``journeybus_dead_letters_total`` metric (the app id by default).
    """

    def __init__(self, app: Any, stage: str, policy: DeadLetterPolicy | None = None) -> None:
        # app: a streams.faust.app.BusApp (not imported here: it imports this module)
        self.app = app
        self.stage = stage
        self.policy = policy or DeadLetterPolicy(stage)
        self._topics: dict[str, faust.types.TopicT] = {}

    async def send(
        self, message: Any, error: InvalidRecord | Exception, event_id: str | None = None
    ) -> None:
        """Dead-letter the Faust ``message`` (an ``InvalidRecord`` keeps its reason,
        any other exception is ``internal_error``); counts it against the policy."""
        invalid = internal_error(error, f"agent {self.stage}")
        record = dead_letter_for_message(
            self.stage, KafkaMessage(message), invalid, int(time.time() * 1000), event_id
        )
        dlq = dead_letter_topic(message.topic)
        codec = self.app.codec
        encoded = codec.encode(
            dlq if dlq in codec.catalog.topics else ANY_DEAD_LETTER_TOPIC, record
        )
        await self._topic(dlq).send(value=encoded)
        metrics.DEAD_LETTERS.labels(self.stage, message.topic, invalid.reason).inc()
        log.warning(
            "%s: %s/%d@%d dead-lettered (%s): %s",
            self.stage,
            message.topic,
            message.partition,
            message.offset,
            invalid.reason,
            str(invalid)[:200],
        )
        self.policy.record(False)

    @asynccontextmanager
    async def guard(self, event: faust.types.EventT | None = None) -> AsyncIterator[None]:
        """Run the body for one event: an exception that can be blamed on the record
        dead-letters it and the agent goes on; ``FatalError``/``Retriable``/machine
        errors and Faust's own propagate (they are not the record's fault).

            async for event in stream.events():
                async with app.dead_letters.guard(event):
                    ...
        """
        event = event or faust.current_event()
        try:
            yield
        except Exception as exc:
            # Faust's own errors (a table partitioned unlike its topic, a setting) are
            # the app's configuration, not the record's fault
            if event is None or isinstance(exc, FaustError) or not is_record_fault(exc):
                raise
            await self.send(event.message, exc, event_id_of(event.value))

    def _topic(self, name: str) -> faust.types.TopicT:
        if name not in self._topics:
            self._topics[name] = self.app.topic(
                name, key_serializer="raw", value_serializer="raw", acks=True
            )
        return self._topics[name]
