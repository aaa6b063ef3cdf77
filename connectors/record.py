"""What a source hands the runtime: one event, its position, and why it is invalid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.core.errors import InvalidRecord


@dataclass
class SourceRecord:
    """One event read by a source.

    ``value`` is the record of the destination topic's schema, in plain JSON
    form (timestamps as ISO 8601 or epoch ms, unions untagged); the runtime
    validates and encodes it. ``position`` is where the source stands after this
    record; it is committed only after the broker acknowledged the record and
    every one before it. ``original`` is the input as received, kept in the dead
    letter if the record turns out invalid.
    """

    value: dict[str, Any] | None
    position: Any = None
    original: bytes | None = None
    topic: str | None = None  # default: the source's topic
    error: InvalidRecord | None = None
    typed: bool = False  # ``value`` is already in Avro form (timestamps as epoch ms ints)

    @classmethod
    def invalid(
        cls,
        error: InvalidRecord,
        original: bytes,
        position: Any = None,
        topic: str | None = None,
    ) -> SourceRecord:
        """An input the source could not turn into a record: it is dead-lettered."""
        return cls(None, position, original, topic, error)
