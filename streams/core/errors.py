"""Typed errors: what a caller should do about a failure.

- ``Retriable``: transient (broker unreachable, timeout); back off and retry.
- ``InvalidRecord``: this one record is bad; dead-letter it with the reason and
  go on. Never retried, never crashes a pipeline.
- ``StopRequested``: the process was asked to stop mid-batch; nothing committed.
- ``FatalError``: misconfiguration or a broken invariant; stop the process and
  let the supervisor restart it after the operator fixed the cause.
- Anything else raised while handling one record (a bug the record exposes) is
  that record's dead letter with reason ``internal_error``, not the end of the
  stage (``is_record_fault``, ``internal_error``); failures of the machine
  (disk, memory) are not blamed on a record.
"""

from __future__ import annotations

import sqlite3

from confluent_kafka import KafkaException


class JourneybusError(Exception):
    """Base of every journeybus error."""


class Retriable(JourneybusError):
    """A transient failure; the same operation may succeed later."""


class FatalError(JourneybusError):
    """Stop the process: retrying cannot help."""


class StopRequested(JourneybusError):
    """A stop was asked for while waiting on the broker's acknowledgement: nothing of
    the batch committed, so the next start processes it again (as after a kill -9).
    Not a failure: a process whose broker is gone stops at once instead of waiting
    out its acknowledgement timeout."""


class InvalidRecord(JourneybusError):
    """One record cannot be processed; it belongs in the dead-letter topic.

    ``reason`` is a short machine-readable class (``decode_error``,
    ``schema_violation``, ``missing_id``, ...) used as the dead letter's
    ``error_type`` and as a metric label; the message is for humans.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        where = ""
        if topic is not None:
            where = f" [{topic}"
            if partition is not None:
                where += f"/{partition}"
            if offset is not None:
                where += f"@{offset}"
            where += "]"
        super().__init__(f"{reason}: {message}{where}")
        self.detail = message


class DecodeError(InvalidRecord):
    """Bytes that are not a valid Confluent-framed Avro record of a known schema."""

    def __init__(self, message: str, **where: object) -> None:
        super().__init__("decode_error", message, **where)  # type: ignore[arg-type]


class OutputRejected(JourneybusError):
    """A stage built an output that does not fit its topic's schema (a bug in the
    stage, found on the record that produced it)."""

    def __init__(self, topic: str, cause: BaseException) -> None:
        super().__init__(f"its output to {topic} does not fit the schema: {cause}")
        self.topic = topic


# Failures of the machine, not of a record: never dead-lettered, they stop the process
# (the supervisor restarts it) before a full disk turns every record into a dead letter.
ENVIRONMENT_ERRORS: tuple[type[BaseException], ...] = (OSError, MemoryError, sqlite3.Error)


def is_record_fault(exc: BaseException) -> bool:
    """Whether an exception raised while handling one record may be blamed on it.

    Not: the typed ``FatalError``/``Retriable`` (configuration, broker), failures of the
    machine (``ENVIRONMENT_ERRORS``), nor interrupts (not ``Exception``s)."""
    unblamable = (FatalError, Retriable, KafkaException, *ENVIRONMENT_ERRORS)
    return isinstance(exc, Exception) and not isinstance(exc, unblamable)


def internal_error(exc: BaseException, what: str) -> InvalidRecord:
    """The dead-letter reason of a record on which ``what`` raised unexpectedly:
    ``internal_error``, with the exception's type and message."""
    if isinstance(exc, InvalidRecord):
        return exc
    detail = str(exc) if isinstance(exc, OutputRejected) else f"{type(exc).__name__}: {exc}"
    return InvalidRecord("internal_error", f"{what} failed on this record: {detail}"[:2000])
