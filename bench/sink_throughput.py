"""Sink throughput: touchpoints from a broker backlog into DuckDB, rows/s.

Produces N touchpoint records (distinct ids) to the embedded broker, then runs
the DuckDB sink on the backlog and measures from its first committed batch to
the moment every row is in the table (decode, Arrow load, upsert by id, offsets
in the same transaction). Usage: python -m bench.sink_throughput [N]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.results import record
from connectors.sinks.duckdb.sink import DuckDBSink, DuckDBSinkSettings
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.jsonavro import from_json
from streams.core.kafka import make_producer
from streams.core.settings import Settings

TOPIC = "cust.touchpoints.v1"


def main(n: int = 300_000) -> dict[str, float]:
    catalog = default_catalog()
    codec = make_codec(Settings(), catalog).for_topic(TOPIC)
    example = from_json(catalog.value_schema(TOPIC).raw, catalog.examples(TOPIC)[0][1])
    root = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    settings = Settings(runtime_dir=root)
    with EmbeddedBroker() as broker:
        create_topics(
            admin_client({"bootstrap.servers": broker.bootstrap}),
            [catalog.topic(TOPIC), catalog.topic(f"{TOPIC}.dlq")],
        )
        producer = make_producer(settings, broker.bootstrap, **{"linger.ms": 20})
        value = dict(example)
        for i in range(n):
            value["touchpoint_id"] = f"tp-{i:012d}"
            value["customer_key"] = f"cust-{i % 50_000}"
            while True:
                try:
                    producer.produce(TOPIC, codec.encode(value), value["customer_key"].encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(120)
        sink = DuckDBSink(
            settings,
            broker.bootstrap,
            DuckDBSinkSettings(database=root / "sink.duckdb", snapshot=root / "read.duckdb"),
        )
        sink.setup()
        stop = threading.Event()
        thread = threading.Thread(target=sink.run, args=(stop,))
        thread.start()
        while sink.rows_written == 0:
            time.sleep(0.005)
        started, first = time.perf_counter(), sink.rows_written
        while sink.rows_written < n and thread.is_alive():
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
    rows_per_s = (n - first) / elapsed
    from streams.core.metrics import SINK_SNAPSHOT_SECONDS

    samples = {s.name: s.value for s in SINK_SNAPSHOT_SECONDS.collect()[0].samples}
    snapshots = samples.get("journeybus_sink_snapshot_seconds_count", 0.0)
    snapshot_s = samples.get("journeybus_sink_snapshot_seconds_sum", 0.0) / max(1.0, snapshots)
    size_mb = (root / "sink.duckdb").stat().st_size / 1e6
    import duckdb

    with duckdb.connect(str(root / "sink.duckdb"), read_only=True) as db:
        count, distinct = db.execute(
            "SELECT count(*), count(DISTINCT touchpoint_id) FROM touchpoints"
        ).fetchone()
    print(
        record(
            "DuckDB sink: touchpoints from a backlog",
            [
                f"rows: {n:,} produced, {count:,} in the table ({distinct:,} distinct ids)",
                f"throughput: **{rows_per_s:,.0f} rows/s** (first batch excluded: group join)",
                f"read snapshots: {snapshots:.0f} published, {snapshot_s:.2f} s each on average "
                f"(database file {size_mb:.0f} MB at the end)",
                "how: embedded broker backlog, sink with its default settings (batches of up to "
                "20k rows, a read snapshot at most every 0.5 s), DuckDB file on local disk",
            ],
        )
    )
    return {"rows_per_s": rows_per_s, "rows": count}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300_000)
