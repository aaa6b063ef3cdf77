"""``journeybus demo`` run again in the same runtime directory: the second run waits for
its own events (not the first run's tables), and its report says what its tables hold
and is right about it; ``--fresh`` starts from nothing; every hint it prints runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectors.generator.population import PopulationGenerator
from tests.ports import free_port_block

ROOT = Path(__file__).resolve().parents[2]


def demo_env(root: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOURNEYBUS__RUNTIME_DIR": str(root / "rt"),
        "CONNECTORS__DUCKDB__DATABASE": str(root / "rt" / "journeybus.duckdb"),
        "CONNECTORS__DUCKDB__SNAPSHOT": str(root / "rt" / "journeybus-read.duckdb"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return env


def demo(root: Path, *args: str) -> str:
    env = demo_env(root)
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
    # every command it suggests runs as printed, from where it ran: `journeybus` need
    # not be on PATH (after `make demo` it is not)
    run_hints(tmp_path, first)
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


def printed_hints(output: str) -> tuple[list[str], str]:
    """The commands a demo's output suggests: its example queries (``$ ...``) and
    ``try:``/``and:`` lines; and the dashboard's command."""
    commands = re.findall(r"^(?:\$|  try:|  and:) (.+)$", output, re.M)
    (dashboard,) = re.findall(r"^Dashboard: (.+ dashboard), then open", output, re.M)
    return commands, dashboard


def run_hints(root: Path, output: str) -> None:
    """Every command the demo printed runs as printed, from where the demo ran."""
    commands, dashboard = printed_hints(output)
    assert len(commands) >= 6, commands
    for command in commands:
        done = subprocess.run(
            shlex.split(command), env=demo_env(root), cwd=root, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr[-1000:])
        assert "row" in done.stdout or "==" in done.stdout, (command, done.stdout[:500])
    port = free_port_block(1)
    served = subprocess.Popen(
        [*shlex.split(dashboard), "--port", str(port)], env=demo_env(root), cwd=root,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline, page = time.monotonic() + 60, None
        while page is None and time.monotonic() < deadline and served.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
            except httpx.TransportError:
                time.sleep(0.5)
        assert page is not None and page.status_code == 200, served.poll()
        assert "Attribution" in page.text
    finally:
        served.terminate()
        served.wait(timeout=15)
