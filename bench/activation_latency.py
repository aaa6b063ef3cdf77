"""Audience entry/exit latency of the activation agents at a paced rate.

    python -m bench.activation_latency [RATE] [SECONDS]

An embedded broker in memory with every catalogue topic and one worker of
``streams.activation.agents``. Profile updates are published at RATE per second
(default 500) for SECONDS (default 60), each one changing its customer's order
count so that it enters or leaves the ``repeat-buyers`` audience: every update is
a triggering event. The profile's ``updated_at`` is the wall-clock time it was
produced; the latency of an audience change is its record's broker timestamp
(when the agent produced it) minus that. Reported: changes seen, p50/p95/p99/max,
and the rate achieved. Appends the figures to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from bench.results import record
from streams.core.catalog import record_key
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from streams.core.topics import AUDIENCES, PROFILES
from streams.faust.testing import (
    AgentWorker,
    bus_broker,
    catalogue_codec,
    consumer_from_start,
    read_topic,
)

ROOT = Path(__file__).parents[1]
CUSTOMERS = 5000
TICK_S = 0.01


def update(customer: int, version: int, now_ms: int) -> dict:
    """Version ``version`` of a customer's profile: 2 orders on odd versions (a
    repeat buyer), 1 on even ones, so every version changes the audience."""
    return {
        "customer_key": f"lat-{customer}",
        "version": version,
        "attributes": [
            {
                "name": "order_count",
                "value": str(2 if version % 2 else 1),
                "confidence": "observed",
                "probability": None,
                "source_system": "fulfillment",
                "source_event_id": f"o-{customer}-{version}",
                "updated_at": now_ms,
            }
        ],
        "channel_responsiveness": [],
        "updated_at": now_ms,
    }


def publish_paced(bootstrap: str, rate: int, seconds: float) -> int:
    codec = catalogue_codec()
    spec = codec.catalog.topic(PROFILES)
    producer = make_producer(Settings(), bootstrap)
    per_tick = rate * TICK_S
    sent, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed / TICK_S * per_tick) + int(per_tick)
        now_ms = int(time.time() * 1000)
        while sent < due:
            profile = update(sent % CUSTOMERS, sent // CUSTOMERS + 1, now_ms)
            key = record_key(spec, profile)
            producer.produce(PROFILES, codec.encode(PROFILES, profile), key.encode())
            sent += 1
        producer.poll(0)
        time.sleep(TICK_S)
    producer.flush(30)
    return sent


def latencies(bootstrap: str, expected: int, timeout_s: float) -> list[float]:
    """Seconds from each change's triggering profile to its record, first copy of each."""
    codec = catalogue_codec()
    consumer = consumer_from_start(bootstrap, AUDIENCES, timeout_s)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    continue
                change = codec.decode(AUDIENCES, msg.value())
                kind, stamp = msg.timestamp()
                produced = stamp if kind != TIMESTAMP_NOT_AVAILABLE else change["decided_at"]
                if change["customer_key"].startswith("lat-"):
                    seen.setdefault(change["change_id"], (produced - change["triggered_at"]) / 1e3)
    finally:
        consumer.close()
    return sorted(seen.values())


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    with tempfile.TemporaryDirectory() as tmp, bus_broker() as bootstrap:
        log = Path(tmp) / "activation.log"
        worker = AgentWorker("streams.activation.agents", bootstrap, cwd=ROOT, log_path=log)
        with worker:
            # warm up: the worker has joined and answers before the clock starts
            warm = {**update(0, 1, int(time.time() * 1000)), "customer_key": "warm-up"}
            codec = catalogue_codec()
            producer = make_producer(Settings(), bootstrap)
            producer.produce(PROFILES, codec.encode(PROFILES, warm), warm["customer_key"].encode())
            producer.flush(30)
            read_topic(bootstrap, AUDIENCES, count=1, timeout_s=120)
            start = time.monotonic()
            sent = publish_paced(bootstrap, rate, seconds)
            achieved = sent / (time.monotonic() - start)
            found = latencies(bootstrap, sent, timeout_s=120)
    lines = [
        f"{sent} profile updates at {achieved:.0f}/s for {seconds:.0f} s, each entering or "
        f"leaving repeat-buyers; one worker of streams.activation.agents, embedded broker",
        f"audience changes seen: {len(found)} of {sent}",
        f"latency from the profile to its audience change: p50 {quantile(found, 0.5):.3f} s, "
        f"p95 {quantile(found, 0.95):.3f} s, p99 {quantile(found, 0.99):.3f} s, "
        f"max {found[-1]:.3f} s",
    ]
    print("\n".join(lines))
    record("Activation: audience change latency", lines)


if __name__ == "__main__":
    main()
