"""HTTP collector throughput: Segment batches in, acknowledged events on the raw topics out.

Runs ``journeybus collect`` as its own process against the embedded broker and
posts generated web and app events as ``/v1/batch`` requests of 400 events from
``CLIENTS`` concurrent clients. A request counts when the collector answered
200, i.e. after the broker acknowledged its events. Reports events/s and the
request latency percentiles. Usage: python -m bench.collector_throughput [N]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.results import record
from connectors.generator.population import PopulationGenerator
from connectors.generator.via_collector import SEGMENT_SOURCES, to_segment
from streams.app.demo import free_port
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog

CLIENTS = 4
BATCH = 400


def batches(n: int) -> list[tuple[str, list[dict]]]:
    """(write key, events) requests holding about ``n`` valid web and app events."""
    customers, out = 100, []
    while sum(len(b) for _, b in out) < n:
        events = PopulationGenerator(customers, seed=len(out), invalid_rate=0).generate()
        by_source: dict[str, list[dict]] = {"web": [], "mobile": []}
        for event in events:
            if event.topic in SEGMENT_SOURCES:
                by_source[SEGMENT_SOURCES[event.topic]].append(to_segment(event.record))
        for source, calls in by_source.items():
            for i in range(0, len(calls), BATCH):
                out.append((f"local-{source}", calls[i : i + BATCH]))
        customers *= 2
    return out


def main(n: int = 200_000) -> dict[str, float]:
    requests = batches(n)
    total = sum(len(b) for _, b in requests)
    root = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    port = free_port()
    with EmbeddedBroker() as broker:
        create_topics(
            admin_client({"bootstrap.servers": broker.bootstrap}),
            default_catalog().topics.values(),
        )
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "JOURNEYBUS__RUNTIME_DIR": str(root),
        }
        collector = subprocess.Popen(
            [sys.executable, "-m", "streams.app.cli", "collect", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(root / "collector.log").open("wb"),
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            latencies: list[float] = []
            with httpx.Client(base_url=url, timeout=60) as http:

                def send(request: tuple[str, list[dict]]) -> None:
                    key, events = request
                    started = time.perf_counter()
                    response = http.post("/v1/batch", json={"batch": events}, auth=(key, ""))
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - started)

                send(requests[0])  # warm-up: producer connection, first metadata
                started = time.perf_counter()
                with ThreadPoolExecutor(CLIENTS) as pool:
                    list(pool.map(send, requests[1:]))
                elapsed = time.perf_counter() - started
        finally:
            collector.terminate()
            collector.wait(30)
    sent = total - len(requests[0][1])
    quantiles = statistics.quantiles(latencies, n=100)
    figures = {
        "events_per_s": sent / elapsed,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
    }
    print(
        record(
            f"HTTP collector: Segment batches to acknowledged events ({sent:,} events)",
            [
                f"requests: {len(requests) - 1} of up to {BATCH} events from {CLIENTS} concurrent "
                "clients (generated web and app calls, about 1 KB each)",
                f"throughput: **{figures['events_per_s']:,.0f} events/s** acknowledged",
                f"request latency: p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms",
                "how: `journeybus collect` as its own process (one core at most: asyncio, one "
                "event loop), embedded broker, 200 only after the broker acknowledged",
            ],
        )
    )
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
