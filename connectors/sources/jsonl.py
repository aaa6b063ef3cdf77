"""Tail a JSON Lines file onto a raw topic (the base of the ``*-file`` sources).

Each line is one event in the topic's plain JSON form (see
``schemas/examples``); ``received_at`` is stamped when the line is read if the
line has none. The position is the byte offset after the last published line,
kept in ``<runtime_dir>/connectors/<name>.offset.json`` and written only after
the broker acknowledged: a restart (kill -9 included) goes on from there, at
least once. A line that is not JSON, or not a valid event, is dead-lettered
with the line itself as the original. A file that shrank was replaced, and is
read again from its start.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import orjson

from connectors.base import PollingSource
from connectors.record import SourceRecord
from connectors.settings import ConnectorSettings
from streams.core.errors import InvalidRecord

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1_048_576


class JsonlSettings(ConnectorSettings):
    """Which file to follow."""

    path: Path = Path("events.jsonl")
    # event-time field stamped with the read time when a line has none
    received_field: str = "received_at"


class JsonlFileSource(PollingSource[JsonlSettings]):
    """Follows ``conf.path`` line by line. Guarantee: at least once, in file order."""

    settings_class = JsonlSettings

    def setup(self) -> None:
        self.state_path = self.settings.runtime_dir / "connectors" / f"{self.name}.offset.json"
        self.offset = 0
        if self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            if state.get("path") == str(self.conf.path.resolve()):
                self.offset = int(state["offset"])

    def poll(self, max_records: int) -> list[SourceRecord]:
        if not self.conf.path.exists():
            return []
        size = self.conf.path.stat().st_size
        if size < self.offset:
            log.warning("%s: %s shrank; reading it again from the start", self.name, self.conf.path)
            self.offset = 0
        records, end = self._read(max_records)
        if not records and end > self.offset:
            self.commit(end)  # only blank lines: nothing to publish, move past them
        return records

    def _read(self, max_records: int) -> tuple[list[SourceRecord], int]:
        records: list[SourceRecord] = []
        with self.conf.path.open("rb") as handle:
            handle.seek(self.offset)
            position = self.offset
            while len(records) < max_records:
                line = handle.readline(MAX_LINE_BYTES + 1)
                if len(line) > MAX_LINE_BYTES:
                    rest = handle.readline()
                    if not rest.endswith(b"\n"):
                        break  # the writer has not finished this line yet
                    position += len(line) + len(rest)
                    error = InvalidRecord("too_large", f"a line over {MAX_LINE_BYTES} bytes")
                    records.append(SourceRecord.invalid(error, line[:4096], position))
                    continue
                if not line.endswith(b"\n"):
                    break  # the writer has not finished this line yet
                position += len(line)
                if line.strip():
                    records.append(self.record(line.strip(), position))
        return records, position

    def record(self, line: bytes, position: int) -> SourceRecord:
        """The record of one line (override to map a foreign format)."""
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return SourceRecord.invalid(InvalidRecord("invalid_json", str(exc)), line, position)
        if isinstance(value, dict) and value.get(self.conf.received_field) is None:
            value[self.conf.received_field] = int(time.time() * 1000)
        return SourceRecord(value, position, original=line)

    def commit(self, position: int) -> None:
        self.offset = position
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"path": str(self.conf.path.resolve()), "offset": position}))
        os.replace(tmp, self.state_path)
