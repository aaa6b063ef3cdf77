"""Helpers for sink tests: a dedicated broker with the catalogue topics, records to produce."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import duckdb

from connectors.sinks.duckdb.sink import SINK_OFFSETS, DuckDBSink, DuckDBSinkSettings
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.jsonavro import from_json
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from tests.polling import wait_until

TOUCHPOINTS = "cust.touchpoints.v1"


def read_snapshot(path: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` over the sink's read snapshot; none while it is not there yet
    or being replaced."""
    try:
        with duckdb.connect(str(path), read_only=True) as db:
            return db.execute(sql).fetchall()
    except duckdb.Error:
        return []


def example(topic: str, index: int = 0) -> dict:
    catalog = default_catalog()
    return from_json(catalog.value_schema(topic).raw, catalog.examples(topic)[index][1])


def produce(bootstrap: str, topic: str, records: list[dict], key: str | None = None) -> None:
    codec = make_codec(Settings(), default_catalog()).for_topic(topic)
    producer = make_producer(Settings(), bootstrap)
    for record in records:
        while True:
            try:
                producer.produce(
                    topic, codec.encode(record), (record.get(key) or "").encode() if key else None
                )
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def touchpoints(n: int, prefix: str = "tp", start: int = 0) -> list[dict]:
    base = example(TOUCHPOINTS)
    return [
        {**base, "touchpoint_id": f"{prefix}-{i:08d}", "customer_key": f"c-{i % 97}"}
        for i in range(start, start + n)
    ]


class SinkThread:
    """A DuckDBSink running in a thread of the test."""

    def __init__(self, root: Path, bootstrap: str, **conf) -> None:
        self.settings = Settings(runtime_dir=root / "rt")
        conf.setdefault("snapshot_interval_s", 0.2)
        self.conf = DuckDBSinkSettings(
            database=root / "sink.duckdb", snapshot=root / "read.duckdb", **conf
        )
        self.sink = DuckDBSink(self.settings, bootstrap, self.conf)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sink.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> SinkThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)

    def consumed(self, topic: str) -> int:
        """Records of ``topic`` the sink has committed (from its read snapshot)."""
        import duckdb

        try:
            with duckdb.connect(str(self.conf.snapshot), read_only=True) as db:
                row = db.execute(
                    f"SELECT sum(next_offset) FROM {SINK_OFFSETS} WHERE topic = ?", [topic]
                ).fetchone()
        except duckdb.Error:
            return 0
        return int(row[0] or 0)

    def wait_consumed(self, topic: str, n: int, timeout_s: float = 60) -> bool:
        return wait_until(lambda: self.consumed(topic) >= n, timeout_s, alive=self.thread.is_alive)

    def wait_rows(self, predicate: Callable[[int], bool], timeout_s: float = 60) -> bool:
        return wait_until(
            lambda: predicate(self.sink.rows_written),
            timeout_s,
            interval_s=0.05,
            alive=self.thread.is_alive,
        )
