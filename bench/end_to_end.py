"""End to end, from the HTTP collector to a row a query can read, and RSS over time.

Runs the whole stack as ``journeybus up`` does (embedded broker, every stage,
the DuckDB sink with its default read snapshots (every 0.5 s), the HTTP
collector), each component its own process, then sends generated populations
the way real sources do (``publish_via_collector``: Segment batches and
webhooks through the collector, order events from the order system):

- **max sustained**: a population sent as fast as one client sends; the rate
  is touchpoints that became queryable per second, over the middle 80% of them
  (the start waits for the first batches to cross every stage, the end is the
  last stragglers);
- **freshness** at a fixed offered load (default 5,000 events/s): per
  touchpoint, the time from the collector's receipt (``received_time``) to the
  moment a reader of the published snapshot first saw its row. A poller opens
  the snapshot every 0.1 s, so each figure is late by at most that much;
- **RSS** of every process (sampled every 10 s), for ``--soak MINUTES``:
  paced load for that long (four populations in turn, so after the first
  round the same customers and events come again and state stops growing),
  then the growth of each process's RSS after a warm-up of a third of the run.

A warm-up population goes first so group joins and first-batch costs are not
measured. Usage: ``python -m bench.end_to_end [--customers N] [--rates R1,R2]``
or ``--soak MINUTES [--rate R]``; results are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from bench.results import record
from bench.stages import process_cpu_s
from connectors.generator.population import PopulationGenerator
from connectors.generator.via_collector import publish_via_collector
from connectors.sinks.duckdb.sink import SINK_OFFSETS
from streams.app.demo import free_port, wait_for_collector
from streams.app.supervisor import Supervisor
from streams.core.codec import make_codec
from streams.core.kafka import make_producer
from streams.core.settings import BrokerSettings, Settings

POLL_S = 0.1
SOAK_POPULATIONS = 4
RSS_EVERY_S = 10.0
SNAPSHOT_SETTLE_S = 10.0  # for the derived topics to follow the last touchpoint


@dataclass
class Visibility:
    """Polls the read snapshot; remembers when each touchpoint was first readable."""

    snapshot: Path
    # touchpoint id -> (collector receipt, journeys produced it, sink committed it: epoch
    # ms; first seen by this reader: epoch s)
    seen: dict[str, tuple[int, int, int, float]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    _since: str = "1970-01-01"

    def poll_once(self) -> None:
        try:
            con = duckdb.connect(str(self.snapshot), read_only=True)
        except duckdb.Error:
            return  # not published yet, or being replaced
        try:
            rows = con.execute(
                "SELECT touchpoint_id, epoch_ms(received_time), epoch_ms(_produced_at), "
                "epoch_ms(_ingested_at), _ingested_at::VARCHAR "
                "FROM touchpoints WHERE _ingested_at >= ?::TIMESTAMP",
                [self._since],
            ).fetchall()
        except duckdb.Error:
            return
        finally:
            con.close()
        now = time.time()
        for tid, received, produced, ingested, since in rows:
            if tid not in self.seen:
                self.seen[tid] = (received, produced, ingested, now)
            self._since = max(self._since, since)

    def run(self) -> None:
        while not self.stop.is_set():
            self.poll_once()
            time.sleep(POLL_S)

    def count(self) -> int:
        return len(self.seen)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Stack:
    """The supervised stack in a temporary directory, and a poller of its snapshot."""

    def __init__(self, root: Path, storage: str = "durable") -> None:
        os.environ.update(
            {
                "JOURNEYBUS__RUNTIME_DIR": str(root),
                "CONNECTORS__DUCKDB__DATABASE": str(root / "sink.duckdb"),
                "CONNECTORS__DUCKDB__SNAPSHOT": str(root / "read.duckdb"),
            }
        )
        self.settings = Settings(runtime_dir=root, broker=BrokerSettings(storage=storage))
        self.storage = storage
        self.port = free_port()
        self.supervisor = Supervisor(self.settings, collector_port=self.port)
        self.visibility = Visibility(root / "read.duckdb")
        self.stop = threading.Event()

    def __enter__(self) -> Stack:
        self.bootstrap = self.supervisor.start()
        threading.Thread(target=self.supervisor.run, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"
        wait_for_collector(self.url)
        threading.Thread(target=self.visibility.run, daemon=True).start()
        self.codec = make_codec(self.settings)
        self.producer = make_producer(self.settings, self.bootstrap)
        return self

    def __exit__(self, *exc) -> None:
        self.visibility.stop.set()
        self.stop.set()
        self.supervisor.stop()

    def send(self, customers: int, seed: int, rate: float | None) -> tuple[int, int, float]:
        """Send a population; (events sent, touchpoints expected, seconds it took)."""
        gen = PopulationGenerator(customers, seed=seed)
        events = gen.generate()
        started = time.time()
        sent = publish_via_collector(events, self.url, self.codec, self.producer, rate=rate)
        return sent, sum(gen.truth.events.values()), time.time() - started

    def wait_visible(self, total: int, timeout_s: float) -> bool:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.visibility.count() >= total:
                return True
            time.sleep(0.5)
        return False

    def pids(self) -> dict[str, int]:
        pids = {c.name: c.process.pid for c in self.supervisor.children if c.process}
        if self.supervisor.broker and self.supervisor.broker.process:
            pids["broker"] = self.supervisor.broker.process.pid
        return pids


def cpu_by_process(stack: Stack) -> dict[str, float]:
    """CPU seconds each process of the stack (and this one: the client, the poller)
    has used so far."""
    used = {"client+poller (bench)": time.process_time()}
    for name, pid in stack.pids().items():
        with contextlib.suppress(OSError):
            used[name] = process_cpu_s(pid)
    return used


def cpu_line(before: dict[str, float], after: dict[str, float], events: int) -> str:
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    total = sum(spent.values())
    parts = ", ".join(
        f"{name} {seconds / events * 1e6:,.0f}"
        for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1])
    )
    return f"CPU per event: **{total / events * 1e6:,.0f} µs** in all, by process (µs): {parts}"


def sink_records(stack: Stack) -> dict[str, int]:
    """Records the sink has consumed so far, per topic (from its stored offsets)."""
    snapshot = str(stack.visibility.snapshot)
    with contextlib.suppress(duckdb.Error), duckdb.connect(snapshot, read_only=True) as con:
        rows = con.execute(f"SELECT topic, sum(next_offset) FROM {SINK_OFFSETS} GROUP BY ALL")
        return {topic: int(n) for topic, n in rows.fetchall()}
    return {}


def records_line(before: dict[str, int], after: dict[str, int], events: int) -> str:
    parts = ", ".join(
        f"{topic} {(n - before.get(topic, 0)) / events:.3f}"
        for topic, n in sorted(after.items(), key=lambda kv: before.get(kv[0], 0) - kv[1])
        if n > before.get(topic, 0)
    )
    return f"records the sink loaded per event sent, by topic: {parts}"


def sustained(stack: Stack, customers: int, seed: int) -> list[str]:
    before = stack.visibility.count()
    cpu, records = cpu_by_process(stack), sink_records(stack)
    sent, expected, send_s = stack.send(customers, seed, rate=None)
    done = stack.wait_visible(before + expected, timeout_s=600)
    spent = cpu_line(cpu, cpu_by_process(stack), sent)
    time.sleep(SNAPSHOT_SETTLE_S)
    loaded = records_line(records, sink_records(stack), sent)
    times = sorted(entry[-1] for entry in list(stack.visibility.seen.values())[before:])
    lo, hi = len(times) // 10, len(times) * 9 // 10  # the middle 80%
    return [
        f"max sustained: **{(hi - lo) / max(times[hi] - times[lo], 1e-9):,.0f} "
        f"touchpoints/s** queryable (middle 80% of {len(times):,}; {sent:,} events sent "
        f"in {send_s:.1f} s, {sent / send_s:,.0f}/s offered; all queryable: {done})",
        spent,
        loaded,
    ]


def freshness(stack: Stack, customers: int, seed: int, rate: float) -> list[str]:
    before = stack.visibility.count()
    sent, expected, send_s = stack.send(customers, seed, rate=rate)
    done = stack.wait_visible(before + expected, timeout_s=600)
    new = list(stack.visibility.seen.values())[before:]
    lags = [seen - received / 1000 for received, _, _, seen in new]
    # where the time goes (medians): the stages up to the journeys stage's output,
    # the sink's batch and commit, the read snapshot (and this poller)
    stages = statistics.median((p - r) / 1000 for r, p, _, _ in new)
    sink = statistics.median((i - p) / 1000 for _, p, i, _ in new)
    snapshot = statistics.median(seen - i / 1000 for _, _, i, seen in new)
    q = statistics.quantiles(lags, n=100)  # as bench.collector_throughput does
    return [
        f"freshness at {rate:,.0f} events/s offered ({sent:,} events in {send_s:.1f} s = "
        f"{sent / send_s:,.0f}/s): p50 **{q[49]:.2f} s**, p95 "
        f"**{q[94]:.2f} s**, p99 **{q[98]:.2f} s**, max "
        f"{max(lags):.2f} s over {len(lags):,} touchpoints (all queryable: {done}); "
        f"medians: collector → journeys output {stages:.2f} s, → sink commit {sink:.2f} s, "
        f"→ readable snapshot {snapshot:.2f} s"
    ]


def soak(stack: Stack, minutes: float, rate: float, customers: int) -> list[str]:
    """Paced load for ``minutes``; RSS of every process every ``RSS_EVERY_S``."""
    samples: dict[str, list[tuple[float, int]]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            now = time.time()
            for name, pid in stack.pids().items():
                with contextlib.suppress(OSError):  # restarted between listing and reading
                    samples.setdefault(name, []).append((now, rss_kb(pid)))
            stop.wait(RSS_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started, rounds, sent = time.time(), 0, 0
    while time.time() - started < minutes * 60:
        # four populations in turn: new events at first, then the same customers and
        # event ids again (replays), so that state stops growing and what the RSS
        # shows after the warm-up is the processes, not more customers
        sent += stack.send(customers, 1000 + rounds % SOAK_POPULATIONS, rate=rate)[0]
        rounds += 1
    stop.set()
    sampler.join()
    elapsed = time.time() - started
    lines = [
        f"soak: {minutes:g} min at {rate:,.0f} events/s offered, {sent:,} events sent "
        f"({rounds} populations of {customers:,} customers sent, {SOAK_POPULATIONS} in turn)"
    ]
    for name, points in sorted(samples.items()):
        warm = [kb for t, kb in points if t - started >= elapsed / 3]
        if len(warm) < 2:
            continue
        first, last, peak = warm[0], statistics.fmean(warm[-3:]), max(kb for _, kb in points)
        lines.append(
            f"  RSS {name}: {first / 1024:,.0f} MB after warm-up → {last / 1024:,.0f} MB at "
            f"the end (**{(last - first) / first:+.1%}**), peak {peak / 1024:,.0f} MB"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument(
        "--rates",
        default="5000,1000",
        help="offered loads (events/s) to measure freshness at ('': max sustained only)",
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="the soak's offered load")
    parser.add_argument("--soak", type=float, default=0.0, help="minutes of paced load")
    parser.add_argument(
        "--storage",
        default="durable",
        help="the embedded broker's log: durable, memory, or both in turn (memory,durable)",
    )
    args = parser.parse_args()
    for storage in args.storage.split(","):
        run(args, storage)


def run(args: argparse.Namespace, storage: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, Stack(Path(tmp), storage) as stack:
        _, warm, _ = stack.send(300, seed=900, rate=None)  # warm-up: joins, first batches
        if not stack.wait_visible(warm, timeout_s=240):
            raise SystemExit(f"warm-up: {stack.visibility.count()}/{warm} touchpoints queryable")
        if args.soak:
            lines = soak(stack, args.soak, args.rate, args.customers)
            title = "Soak: RSS of every process under paced load"
        else:
            lines = sustained(stack, args.customers, seed=902)
            print(*lines, sep="\n", flush=True)
            for n, offered in enumerate(float(r) for r in args.rates.split(",") if r):
                lines += freshness(stack, args.customers, seed=903 + n, rate=offered)
                print(lines[-1], flush=True)
            title = f"End to end: collector to queryable DuckDB row, broker log {storage}"
    lines.append(
        f"how: `journeybus up`'s processes (broker with its log {stack_storage(storage)}, "
        "5 stages, sink with a read snapshot "
        "every 0.5 s, collector) on this machine; populations sent through the collector "
        "by one client (publish_via_collector), the order system's events produced to "
        "its topic; a poller opens the read snapshot every 0.1 s"
    )
    print(record(title, lines))


def stack_storage(storage: str) -> str:
    return "on its object store (durable)" if storage == "durable" else "in memory"


if __name__ == "__main__":
    main()
