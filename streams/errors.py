"""Typed errors: what a caller should do about a failure.

- ``Retriable``: transient (broker unreachable, timeout); back off and retry.
- ``InvalidRecord``: this one record is bad; dead-letter it with the reason and
  go on. Never retried, never crashes a pipeline.
- ``FatalError``: misconfiguration or a broken invariant; stop the process and
  let the supervisor restart it after the operator fixed the cause.
"""

from __future__ import annotations


class JourneybusError(Exception):
    """Base of every journeybus error."""


class Retriable(JourneybusError):
    """A transient failure; the same operation may succeed later."""


class FatalError(JourneybusError):
    """Stop the process: retrying cannot help."""


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
