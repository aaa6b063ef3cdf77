"""``journeybus demo`` run again in the same runtime directory: the second run waits for
its own events (not the first run's tables), and its report says what its tables hold
and is right about it; ``--fresh`` starts from nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.generator.population import PopulationGenerator

ROOT = Path(__file__).resolve().parents[2]


def demo(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOURNEYBUS__RUNTIME_DIR": str(root / "rt"),
        "CONNECTORS__DUCKDB__DATABASE": str(root / "rt" / "journeybus.duckdb"),
        "CONNECTORS__DUCKDB__SNAPSHOT": str(root / "rt" / "journeybus-read.duckdb"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    done = subprocess.run(
        [sys.executable, "-m", "streams.app.cli", "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        cwd=root,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def totals(report: str) -> dict[str, float]:
    """The report's "Totals" row, by column."""
    lines = report.split("== Totals\n", 1)[1].splitlines()
    return dict(zip(lines[0].split(), map(float, lines[2].split()), strict=True))


def truth(customers: int, seed: int) -> tuple[int, int, int]:
    """(valid events, conversions, invalid events) of a demo population."""
    gen = PopulationGenerator(customers, seed=seed)
    gen.generate()
    t = gen.truth
    return sum(t.events.values()), len(t.conversions), sum(t.invalid.values())


@pytest.mark.timeout(1200)
def test_a_second_demo_reports_both_populations_and_fresh_starts_over(tmp_path):
    first = demo(tmp_path, "--customers", "200")
    assert "The tables hold 1 demo population: seed 7 (200 customers)" in first
    second = demo(tmp_path, "--customers", "150", "--seed", "8")
    assert "seed 7 (200 customers), seed 8 (150 customers)" in second
    a, b = truth(200, 7), truth(150, 8)
    got = totals(second)
    assert got["touchpoints"] == a[0] + b[0]
    assert got["conversions"] == a[1] + b[1]
    assert got["dead_letters"] == a[2] + b[2]
    # this run's own events, not the tables' earlier contents, are what it waited for
    assert f"{b[0]}/{b[0]} touchpoints" in second

    fresh = demo(tmp_path, "--customers", "100", "--seed", "9", "--fresh")
    assert "The tables hold 1 demo population: seed 9 (100 customers)" in fresh
    # 26 buyers, 4 of them repeat: too few for a scoring model, said instead of waited for
    assert "no scoring model from this population alone: it has 26 buyers, 4 of" in fresh
    c = truth(100, 9)
    assert (totals(fresh)["touchpoints"], totals(fresh)["conversions"]) == (c[0], c[1])
