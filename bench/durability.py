"""What the durable log costs: the embedded broker in memory and on its object store,
side by side in one run.

For each storage: the broker's start (and a restart onto an existing log), producing
``N`` 200-byte records with the pipeline's producer settings (acks from all replicas,
batched), consuming them back as a backlog, and the produce → consume latency of
single records sent one at a time to a caught-up consumer (50 ms fetch wait, the
stages' default). Usage: ``python -m bench.durability [N]``; results are appended
to bench/RESULTS.md (``make bench-durability``).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.results import record
from streams.core.broker import EmbeddedBroker
from streams.core.kafka import producer_config
from streams.core.settings import Settings

PARTITIONS = 8
LATENCY_SAMPLES = 300


def produce(bootstrap: str, topic: str, n: int) -> float:
    """Seconds to produce ``n`` records and have every one acknowledged."""
    producer = Producer(producer_config(Settings(), bootstrap))
    value = b"x" * 200
    started = time.perf_counter()
    for i in range(n):
        while True:
            try:
                producer.produce(topic, value, str(i).encode())
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    return time.perf_counter() - started


def consume(bootstrap: str, topic: str, n: int) -> float:
    """Seconds to read a backlog of ``n`` records from the beginning."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{time.time()}"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got, started = 0, time.perf_counter()
    while got < n and time.perf_counter() - started < 120:
        got += sum(1 for m in consumer.consume(10_000, timeout=0.5) if not m.error())
    elapsed = time.perf_counter() - started
    consumer.close()
    assert got == n, f"read {got} of {n}"
    return elapsed


def latency(bootstrap: str, topic: str) -> list[float]:
    """Produce → consume milliseconds of single records, one at a time."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-latency", "fetch.wait.max.ms": 50}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    producer = Producer(producer_config(Settings(), bootstrap, **{"linger.ms": 0}))
    samples = []
    for i in range(LATENCY_SAMPLES + 20):
        sent = time.perf_counter()
        producer.produce(topic, f"{i}".encode(), partition=0)
        producer.flush(10)
        while True:
            msg = consumer.poll(5)
            if msg is not None and not msg.error() and msg.value() == f"{i}".encode():
                break
        if i >= 20:  # the first ones include the fetch session's start
            samples.append((time.perf_counter() - sent) * 1000)
    consumer.close()
    return samples


def measure(storage: str, root: Path, n: int) -> dict[str, float]:
    data_dir = root / "log" if storage == "durable" else None
    started = time.perf_counter()
    broker = EmbeddedBroker(data_dir=data_dir)
    broker.start()
    figures = {"start_s": time.perf_counter() - started}
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for topic, parts in (("bench", PARTITIONS), ("bench-latency", 1)):
            admin.create_topics([NewTopic(topic, parts, 1)])[topic].result(timeout=30)
        figures["produce_s"] = produce(broker.bootstrap, "bench", n)
        figures["consume_s"] = consume(broker.bootstrap, "bench", n)
        samples = latency(broker.bootstrap, "bench-latency")
        figures["p50_ms"] = statistics.median(samples)
        figures["p99_ms"] = statistics.quantiles(samples, n=100)[98]
    finally:
        broker.stop()
    if data_dir is not None:  # a restart onto the log just written
        started = time.perf_counter()
        with EmbeddedBroker(data_dir=data_dir) as again:
            figures["restart_s"] = time.perf_counter() - started
            figures["kept"] = consume(again.bootstrap, "bench", n)
    return figures


def main(n: int = 100_000) -> None:
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        results = {s: measure(s, Path(tmp) / s, n) for s in ("memory", "durable")}
    for storage, f in results.items():
        line = (
            f"{storage}: start {f['start_s']:.2f} s; produce **{n / f['produce_s']:,.0f}/s**, "
            f"consume a backlog **{n / f['consume_s']:,.0f}/s**; produce → consume one "
            f"record p50 **{f['p50_ms']:.1f} ms**, p99 {f['p99_ms']:.1f} ms"
        )
        if "restart_s" in f:
            line += f"; restart onto the log {f['restart_s']:.2f} s, all {n:,} records kept"
        lines.append(line)
    mem, dur = results["memory"], results["durable"]
    lines.append(
        f"durable vs memory: produce {mem['produce_s'] / dur['produce_s']:.2f}x, consume "
        f"{mem['consume_s'] / dur['consume_s']:.2f}x the rate; latency p50 "
        f"+{dur['p50_ms'] - mem['p50_ms']:.1f} ms"
    )
    lines.append(
        f"how: {n:,} records of 200 bytes, {PARTITIONS} partitions, the pipeline's producer "
        "settings; backlog read with consume(10,000); latency over "
        f"{LATENCY_SAMPLES} single records to a caught-up consumer (fetch wait 50 ms); "
        "durable: Tansu s3:// over SeaweedFS on local disk, both on 127.0.0.1"
    )
    print(record("Embedded broker: what the durable log costs", lines))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
