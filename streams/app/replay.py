"""Replay a file of events onto a topic: JSON Lines, CSV or Parquet.

Every row is validated against the topic's schema and keyed by the topic's key
field; invalid rows go to ``<topic>.dlq`` with the row as the original and the
reason. Rows are published in batches, each acknowledged by the broker before
the next is read. Replaying a file twice puts each event on the topic twice
with the same ``event_id``, which downstream stages deduplicate.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from connectors.publisher import Publisher
from connectors.record import SourceRecord
from connectors.settings import ConnectorSettings, connector_config
from streams.core.catalog import Catalog
from streams.core.errors import InvalidRecord
from streams.core.settings import Settings

FORMATS = ("jsonl", "csv", "parquet")


class ReplaySettings(ConnectorSettings):
    """``CONNECTORS__REPLAY__*`` (e.g. ``TOPIC_PREFIX``)."""

    model_config = connector_config("replay")


@dataclass
class ReplayResult:
    accepted: int = 0
    rejected: int = 0


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in FORMATS:
        return suffix
    raise InvalidRecord("unknown_format", f"cannot tell the format of {path}; pass --format")


def _string_fields(catalog: Catalog, topic: str) -> set[str]:
    """Top-level fields whose values are strings (CSV cells kept as text)."""
    names = set()
    for field in catalog.value_schema(topic).parsed["fields"]:
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        if "string" in [b for b in branches if b != "null"]:
            names.add(field["name"])
    return names


def _csv_value(cell: str, is_string: bool) -> Any:
    if cell == "":
        return None
    if is_string:
        return cell
    try:
        return orjson.loads(cell)  # numbers, booleans, nested objects and lists
    except orjson.JSONDecodeError:
        return cell  # e.g. an ISO 8601 timestamp


def read_rows(
    path: Path, fmt: str, catalog: Catalog, topic: str
) -> Iterator[tuple[SourceRecord, int]]:
    """(record, bytes or rows read so far) for every row of the file."""
    if fmt == "jsonl":
        with path.open("rb") as handle:
            done = 0
            for line in handle:
                done += len(line)
                text = line.strip()
                if not text:
                    continue
                try:
                    yield SourceRecord(orjson.loads(text), original=text), done
                except orjson.JSONDecodeError as exc:
                    error = InvalidRecord("invalid_json", str(exc))
                    yield SourceRecord.invalid(error, text), done
    elif fmt == "csv":
        strings = _string_fields(catalog, topic)
        with path.open("r", newline="", encoding="utf-8") as handle:
            for done, row in enumerate(csv.DictReader(handle), 1):
                value = {k: _csv_value(v or "", k in strings) for k, v in row.items()}
                out = io.StringIO()
                csv.writer(out).writerow(row.values())
                yield SourceRecord(value, original=out.getvalue().encode()), done
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        done = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=5000):
            for value in batch.to_pylist():
                done += 1
                yield SourceRecord(value), done
    else:
        raise InvalidRecord("unknown_format", f"{fmt!r} is not one of {FORMATS}")


def replay_file(
    path: Path,
    topic: str,
    settings: Settings,
    fmt: str | None = None,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    conf: ConnectorSettings | None = None,
) -> ReplayResult:
    """Publish every row of ``path`` to ``topic``; counts of accepted and rejected rows.

    ``progress(n)`` is told how far the file has been read (bytes for JSON
    Lines, rows for CSV and Parquet) after each acknowledged batch.
    """
    conf = conf or ReplaySettings()
    publisher = Publisher("replay", conf, settings)
    result = ReplayResult()
    stop = threading.Event()
    batch: list[SourceRecord] = []
    seen = 0

    def flush() -> None:
        delivery = publisher.publish_until_acked(batch, topic, stop)
        assert delivery is not None
        result.accepted += delivery.accepted
        result.rejected += delivery.dead_lettered
        batch.clear()
        if progress:
            progress(seen)

    try:
        fmt = fmt or detect_format(path)
        for record, seen in read_rows(path, fmt, publisher.catalog, topic):  # noqa: B007
            batch.append(record)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    finally:
        publisher.close()
    return result


def progress_total(path: Path, fmt: str) -> int:
    """What ``progress`` counts up to: the file size (JSON Lines) or its rows."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "csv":
        with path.open("r", newline="", encoding="utf-8") as handle:
            return sum(1 for _ in csv.DictReader(handle))
    return path.stat().st_size
