"""Where the CPU goes: the per-event Faust agent against the batched stage runner.

Both do the normalise stage's work over the same pre-loaded raw topics (see
``bench.stages``), each sampled by py-spy (200 Hz, idle threads excluded) for
its whole run. Every sample is put in one bucket by its stack:

- **work**: decoding, validating, normalising and enriching, encoding
  (journeybus's ``streams``/``connectors`` code under the agent or the runner,
  and fastavro);
- **framework**: everything else on the CPU: for Faust, its stream, agent and
  producer machinery (``faust``, ``mode``, ``aiokafka``, ``asyncio``); for the
  runner, its consume/produce/commit loop (confluent-kafka).

CPU per event is the samples of a bucket over the sampling rate, divided by the
events processed; the process's CPU per event (every thread, from /proc) is
reported beside it, since librdkafka's threads are native and py-spy does not
sample them. Usage: ``python -m bench.faust_profile [CUSTOMERS]``; results
are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from bench.results import record
from bench.stages import (
    Timing,
    cpu_per_event_us,
    faust_naive,
    normalise_workers,
    preloaded,
    rate,
)

RATE_HZ = 200
# py-spy names a frame "function (path/relative/to/sys.path.py:line)"
WORK = ("(streams/normalise/", "(streams/enrich/", "(streams/identity/", "(streams/core/codec.py",
        "(streams/runtime/deadletter.py", "(connectors/", "fastavro")  # fmt: skip
FRAMEWORK = ("faust/", "mode/", "aiokafka/", "asyncio/", "uvloop", "confluent_kafka")
STARTUP = ("(streams/runtime/sideinput.py", "_find_and_load", "build_app (", "attach_")


def buckets(raw_profile: Path) -> Counter:
    """Samples per bucket of a py-spy ``--format raw`` file (``frame;frame;… count``)."""
    counts: Counter = Counter()
    for line in raw_profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if any(any(mark in f for mark in STARTUP) for f in frames):
            bucket = "startup (imports, side inputs)"
        elif any(any(mark in f for mark in WORK) for f in frames):
            bucket = "work"
        elif any(any(mark in f for mark in FRAMEWORK) for f in frames):
            bucket = "framework"
        else:
            bucket = "other"
        counts[bucket] += int(n)
    return counts


def describe(name: str, counts: Counter, timings: list[Timing]) -> list[str]:
    events = sum(t[2] for t in timings)
    running = sum(v for k, v in counts.items() if not k.startswith("startup"))
    per_event = {k: v / RATE_HZ / max(events, 1) * 1e6 for k, v in counts.items()}
    lines = [
        f"{name}: **{rate(timings):,.0f} events/s** over {events:,} events, "
        f"{cpu_per_event_us(timings):,.0f} µs process CPU per event (all threads)"
    ]
    for bucket in ("work", "framework", "other"):
        share = counts[bucket] / max(running, 1)
        lines.append(
            f"  {name}, {bucket}: {per_event.get(bucket, 0):,.0f} µs per event "
            f"({share:.0%} of the Python samples while running)"
        )
    return lines


def main(customers: int = 4000) -> None:
    with preloaded(customers) as (bootstrap, root, _, raw):
        faust_profile, runner_profile = root / "faust.txt", root / "runner.txt"
        faust = faust_naive(bootstrap, root / "faust", profile=faust_profile)
        runner = normalise_workers(bootstrap, root / "n1", 1, "bench-norm-1", runner_profile)
        lines = [f"population: {customers:,} customers, {raw:,} raw events"]
        lines += describe("Faust per-event agent", buckets(faust_profile), [faust])
        lines += describe("batched stage runner", buckets(runner_profile), runner)
    lines.append(
        "how: py-spy 200 Hz, --nonblocking, idle excluded, each process's whole run "
        "(Python threads only: librdkafka's native threads are in the process CPU, not "
        "in the samples); "
        "work = journeybus decode/normalise/enrich/encode code and fastavro, "
        "framework = faust/mode/aiokafka/asyncio or confluent-kafka"
    )
    print(record("Where the CPU goes: per-event Faust agent vs batched runner", lines))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
