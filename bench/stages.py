"""Per-stage throughput in one run: the ceiling and each journeybus stage.

Everything runs on one generated population pre-loaded into the raw topics of
an embedded broker, in one run, so that the ratios are stable on a noisy
machine:

- **ceiling**: a plain confluent-kafka ``consume(batch)`` → ``produce`` loop
  copying the raw records to another topic, without decoding: what the client
  and the broker allow;
- **normalise** (+ enrich): the batched stage runner, with 1 worker, then with 2
  worker processes that each own half of every raw topic's partitions (assigned,
  not joined, so that the group join does not count);
- **journeys** over the stitched topic the 1-worker normalise run produced, and
  **attribution** over the journeys that run produced.

Each rate is records consumed from the start of the first step that had
records to the end of the last one. Usage: ``python -m bench.stages
[CUSTOMERS]``; results are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import ast
import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.admin import NewTopic

from bench.faust_baseline import OUT_TOPIC as FAUST_OUT
from bench.results import record
from connectors.generator.population import PopulationGenerator
from connectors.generator.publish import publish_events
from streams.attribution.stage import AttributionStage
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.kafka import make_consumer, make_producer
from streams.core.settings import Settings
from streams.core.topics import RAW_SOURCES
from streams.journeys.stage import JourneysStage
from streams.normalise.stage import NormaliseStage
from streams.runtime.stage import Stage, StageRunner

NAIVE = "naive Faust normalise (per-event agent)"
CEILING = "ceiling (consume → produce)"
ONE, TWO = "normalise, 1 worker", "normalise, 2 workers"
QUIET_S = 3.0  # a run is over once no record came for this long
# first record, last record (wall clock), events, CPU seconds of the process (every
# thread: librdkafka's too) from its start to the last record
Timing = tuple[float, float, int, float]


def rate(timings: list[Timing]) -> float:
    first = min(t[0] for t in timings)
    last = max(t[1] for t in timings)
    return sum(t[2] for t in timings) / max(last - first, 1e-9)


def drain(step: Callable[[], int], limit_s: float = 600.0) -> Timing:
    """Call ``step`` (returns records handled) until nothing came for ``QUIET_S``."""
    first = last = 0.0
    count = 0
    started, cpu = time.time(), time.process_time()
    while time.time() - started < limit_s:
        before = time.time()
        n = step()
        now = time.time()
        if n:
            first = first or before  # from the start of the first step that had records
            last = now
            count += n
        elif first and now - last > QUIET_S:
            break
    return first, last, count, time.process_time() - cpu


def cpu_per_event_us(timings: list[Timing]) -> float:
    return sum(t[3] for t in timings) / max(sum(t[2] for t in timings), 1) * 1e6


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) another process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ceiling(bootstrap: str, settings: Settings) -> Timing:
    """consume(batch) → produce of the raw records, no decoding (one process)."""
    consumer = make_consumer("bench-ceiling", settings, bootstrap)
    producer = make_producer(settings, bootstrap)
    meta = consumer.list_topics(timeout=30).topics
    consumer.assign(
        [TopicPartition(t, p, OFFSET_BEGINNING) for t in RAW_SOURCES for p in meta[t].partitions]
    )

    def step() -> int:
        msgs = [m for m in consumer.consume(2000, timeout=0.1) if not m.error()]
        for msg in msgs:
            while True:
                try:
                    producer.produce("bench.ceiling.out", msg.value(), msg.key())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(60)
        return len(msgs)

    try:
        return drain(step)
    finally:
        consumer.close()


def run_stage(
    stage: Stage,
    bootstrap: str,
    settings: Settings,
    group: str,
    partitions: list[tuple[str, int]] | None = None,
) -> Timing:
    """Drain ``stage``'s input with a ``StageRunner``; with ``partitions`` it owns those
    (assigned, no group join), else it subscribes."""
    codec = make_codec(settings)
    stage.attach_erasures(codec, settings, bootstrap)
    stage.attach_side_inputs(codec, settings, bootstrap)
    runner = StageRunner(stage, settings, bootstrap, codec, group_id=group)
    if partitions is None:
        runner.consumer.subscribe(
            list(stage.inputs), on_assign=runner._on_assign, on_revoke=runner._on_revoke
        )
    else:
        tps = [TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions]
        runner._on_assign(runner.consumer, tps)
        if not stage.stateful:
            runner.consumer.assign(tps)
    try:
        return drain(runner.run_once)
    finally:
        runner.close()


def _normalise_worker(bootstrap: str, root: str, parts: list, group: str, out) -> None:
    settings = Settings(runtime_dir=Path(root))
    out.put(run_stage(NormaliseStage(settings), bootstrap, settings, group, parts))


def spy(pid: int, out: Path | None) -> subprocess.Popen | None:
    """py-spy sampling process ``pid`` until it exits (raw collapsed stacks in ``out``)."""
    if out is None:
        return None
    spy_bin = Path(sys.executable).with_name("py-spy")
    args = [str(spy_bin), "record", "--pid", str(pid), "--rate", "200", "--nonblocking"]
    return subprocess.Popen(
        [*args, "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def normalise_workers(
    bootstrap: str, root: Path, workers: int, group: str, profile: Path | None = None
) -> list[Timing]:
    """Normalise with ``workers`` processes, each owning a share of every raw topic
    (the first one sampled by py-spy into ``profile``, if given)."""
    meta = admin_client({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    parts = [(t, p) for t in RAW_SOURCES for p in sorted(meta[t].partitions)]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_normalise_worker, args=(bootstrap, str(root), parts[i::workers], group, out)
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    spying = spy(procs[0].pid, profile)
    timings = [out.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join()
    if spying:
        spying.wait(60)
    return timings


def faust_naive(
    bootstrap: str, root: Path, limit_s: float = 900.0, profile: Path | None = None
) -> Timing:
    """The normalise work as a per-event Faust agent (``bench.faust_baseline``), run as
    a Faust worker process until its count stops growing for ``QUIET_S`` (sampled by
    py-spy into ``profile``, if given)."""
    progress_file = root / "faust-progress"
    root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "bench.faust_baseline", bootstrap, str(root), str(progress_file)]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).parents[1])
    spying = spy(proc.pid, profile)
    started = time.time()
    timing: Timing = (0.0, 0.0, 0, 0.0)
    cpu_at_first = None
    try:
        while time.time() - started < limit_s and proc.poll() is None:
            time.sleep(0.5)
            if progress_file.exists():
                first, last, count = ast.literal_eval(progress_file.read_text() or "[0, 0, 0]")
                cpu = process_cpu_s(proc.pid)
                if count and cpu_at_first is None:  # from the first event, as drain does
                    cpu_at_first = cpu
                timing = (first, last, count, cpu - (cpu_at_first or cpu))
                if count and time.time() - last > QUIET_S:
                    break
        if proc.poll() is not None:
            raise RuntimeError(f"the Faust worker exited with {proc.returncode}")
        return timing
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if spying:
            spying.wait(60)


@contextlib.contextmanager
def preloaded(customers: int) -> Iterator[tuple[str, Path, Settings, int]]:
    """An embedded broker whose raw topics hold a generated population: (bootstrap,
    a temporary runtime directory, its settings, raw events published). The broker's
    process id is ``BROKER_PID[bootstrap]``."""
    events = PopulationGenerator(customers, seed=3).generate()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        root = Path(tmp)
        bootstrap = broker.bootstrap
        settings = Settings(runtime_dir=root)
        admin = admin_client({"bootstrap.servers": bootstrap})
        create_topics(admin, default_catalog().topics.values())
        for future in admin.create_topics(
            [NewTopic(t, 8, 1) for t in ("bench.ceiling.out", FAUST_OUT)]
        ).values():
            future.result(30)
        raw = publish_events(events, make_codec(settings), make_producer(settings, bootstrap))
        BROKER_PID[bootstrap] = broker.process.pid
        try:
            yield bootstrap, root, settings, raw
        finally:
            BROKER_PID.pop(bootstrap, None)


BROKER_PID: dict[str, int] = {}


def main(customers: int = 4000) -> dict[str, float]:
    timings: dict[str, list[Timing]] = {}
    broker_s: dict[str, float] = {}  # the broker's CPU seconds over each step

    with preloaded(customers) as (bootstrap, root, settings, raw):

        def measure(name: str, step: Callable[[], list[Timing]]) -> None:
            before = process_cpu_s(BROKER_PID[bootstrap])
            timings[name] = step()
            broker_s[name] = process_cpu_s(BROKER_PID[bootstrap]) - before

        measure(CEILING, lambda: [ceiling(bootstrap, settings)])
        measure(NAIVE, lambda: [faust_naive(bootstrap, root / "faust")])
        measure(ONE, lambda: normalise_workers(bootstrap, root / "n1", 1, "bench-norm-1"))
        # the 1-worker run's stitched output feeds journeys, whose journeys feed
        # attribution; the 2-worker run comes last (its output would be a second copy)
        measure("journeys", lambda: [run_stage(JourneysStage(settings), bootstrap, settings, "bj")])
        measure(
            "attribution",
            lambda: [run_stage(AttributionStage(settings), bootstrap, settings, "ba")],
        )
        measure(TWO, lambda: normalise_workers(bootstrap, root / "n2", 2, "bench-norm-2"))
    rates = {name: rate(t) for name, t in timings.items()}
    events_by = {name: sum(x[2] for x in t) for name, t in timings.items()}
    one, two = rates[ONE], rates[TWO]
    lines = [f"population: {customers:,} customers, {raw:,} raw events"]
    lines += [
        f"{name}: **{r:,.0f} events/s** ({events_by[name]:,} records, "
        f"{cpu_per_event_us(timings[name]):,.0f} µs CPU each; the broker "
        f"{broker_s[name] / max(events_by[name], 1) * 1e6:,.0f} µs per record)"
        for name, r in rates.items()
    ]
    lines += [
        f"2 normalise workers vs 1: **{two / one:.2f}x**; "
        f"normalise vs ceiling: {one / rates[CEILING]:.2f}; "
        f"normalise (1 worker) vs naive Faust: **{one / rates[NAIVE]:.1f}x**",
        f"cores the normalise workers kept busy: {cores(timings[ONE]):.2f} (1 worker), "
        f"{cores(timings[TWO]):.2f} (2 workers)",
        "how: one run, embedded broker, raw topics pre-loaded; rates from first to last "
        "record handled; 2 workers are processes owning half of each raw topic's "
        "partitions; the broker's CPU is over each whole step (start-up and the "
        f"{QUIET_S:.0f} s quiet tail included)",
    ]
    print(record("Stage throughput: ceiling and journeybus stages", lines))
    return rates


def cores(timings: list[Timing]) -> float:
    """CPU seconds of a step's processes over the seconds from its first record to its
    last: the cores they kept busy."""
    span = max(t[1] for t in timings) - min(t[0] for t in timings)
    return sum(t[3] for t in timings) / max(span, 1e-9)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
