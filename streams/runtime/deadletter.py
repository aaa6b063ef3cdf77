"""The one way to dead-letter a record, and the rate limit that halts a broken pipeline.

A dead letter keeps the original bytes, the reason and where the record came
from, so it can be inspected (``dead_letters`` table) and replayed after a fix.
Its id is deterministic: stage + topic + the event id when the record has one,
else its partition/offset, else a hash of its bytes. Dead-lettering the same
event twice (a replay after a crash, a re-sent copy) yields one row; a record
without an event id is one row per copy received.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from streams.core import metrics
from streams.core.catalog import DLQ_SUFFIX
from streams.core.errors import FatalError, InvalidRecord

log = logging.getLogger(__name__)


class DeadLetterRateExceeded(FatalError):
    """Too many records of a stage are invalid: its input or configuration is wrong."""


def dead_letter_topic(topic: str) -> str:
    return topic if topic.endswith(DLQ_SUFFIX) else f"{topic}{DLQ_SUFFIX}"


def dead_letter_record(
    *,
    stage: str,
    source_topic: str,
    error: InvalidRecord | str,
    original: bytes | None,
    original_format: str,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
    event_id: str | None = None,
    headers: dict[str, str] | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """A ``cust.dead-letter.v1`` record."""
    if isinstance(error, InvalidRecord):
        reason, message = error.reason, str(error)
    else:
        reason, message = "invalid_value", str(error)
    # The same event dead-lettered again (a replay, a re-sent copy) is one row:
    # keyed by its event id when it has one, else by its position, else its bytes.
    if event_id:
        where = f"event:{event_id}"
    elif offset is not None:
        where = f"{partition}:{offset}"
    else:
        where = "bytes:" + hashlib.blake2b(original or b"", digest_size=16).hexdigest()
    ident = hashlib.blake2b(f"{stage}\x1f{source_topic}\x1f{where}".encode(), digest_size=16)
    return {
        "dead_letter_id": "dl-" + ident.hexdigest(),
        "source_topic": source_topic,
        "source_partition": partition,
        "source_offset": offset,
        "source_key": key,
        "original": original or b"",
        "original_format": original_format,
        "error_type": reason,
        "error_message": message[:4000],
        "stage": stage,
        "event_id": event_id,
        "failed_at": now_ms if now_ms is not None else int(time.time() * 1000),
        "headers": headers or {},
    }


def dead_letter_for_message(
    stage: str, msg: Any, error: InvalidRecord, now_ms: int, event_id: str | None = None
) -> dict[str, Any]:
    """The dead letter of a consumed Kafka message (the caller counts it in
    ``journeybus_dead_letters_total`` once it is produced)."""
    headers = {
        k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        for k, v in (msg.headers() or [])
    }
    return dead_letter_record(
        stage=stage,
        source_topic=msg.topic(),
        error=error,
        original=msg.value(),
        original_format="avro",
        partition=msg.partition(),
        offset=msg.offset(),
        key=msg.key(),
        event_id=event_id,
        headers=headers,
        now_ms=now_ms,
    )


@dataclass
class DeadLetterPolicy:
    """Halts a stage when more than ``max_ratio`` of its last ``window`` records failed.

    A few bad records are normal and go to the dead-letter topic; most of them
    failing means a wrong topic, schema or configuration, and dead-lettering
    everything would only hide it.
    """

    stage: str
    window: int = 1000
    max_ratio: float = 0.5
    _outcomes: deque = field(default_factory=deque)
    _failures: int = 0

    def record_many(self, processed: int, failed: int) -> None:
        """``processed`` successes then ``failed`` failures. Successes alone, with no
        failure in the window, only fill it (no per-record work on the hot path)."""
        if not failed and not self._failures:
            outcomes = self._outcomes
            outcomes.extend(repeat(True, min(processed, self.window)))
            for _ in range(len(outcomes) - self.window):
                outcomes.popleft()
            return
        for _ in range(processed):
            self.record(True)
        for _ in range(failed):
            self.record(False)

    def record(self, ok: bool) -> None:
        self._outcomes.append(ok)
        if not ok:
            self._failures += 1
        if len(self._outcomes) > self.window and not self._outcomes.popleft():
            self._failures -= 1
        if len(self._outcomes) >= self.window and self._failures > self.max_ratio * self.window:
            metrics.DEAD_LETTER_HALTS.labels(self.stage).inc()
            message = (
                f"stage {self.stage} halted: {self._failures} of the last "
                f"{len(self._outcomes)} records were invalid (limit "
                f"{self.max_ratio:.0%}); check the input topic, schema and configuration"
            )
            log.error(message)
            raise DeadLetterRateExceeded(message)
