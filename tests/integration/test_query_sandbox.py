"""``journeybus query`` reaches the database and nothing else of the machine unless the
operator opts in; the dashboard reads through the same sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.sinks.duckdb.dashboard.data import load
from connectors.sinks.duckdb.sink import DuckDBSink, DuckDBSinkSettings
from streams.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    conf = DuckDBSinkSettings(database=tmp_path / "sink.duckdb", snapshot=tmp_path / "read.duckdb")
    sink = DuckDBSink(Settings(), conf=conf)
    sink.setup()  # tables, views and a published read snapshot
    sink.close()
    return conf.snapshot


def query(snapshot: Path, sql: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.app.cli",
            "query",
            sql,
            "--database",
            str(snapshot),
            *flags,
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_query_cannot_read_other_files(snapshot):
    done = query(snapshot, "SELECT * FROM read_csv('/etc/passwd')")
    assert done.returncode != 0
    assert "file system operations are disabled" in done.stderr
    assert "root" not in done.stdout


def test_a_query_cannot_write_files_or_turn_access_back_on(snapshot, tmp_path):
    target = tmp_path / "exfiltrated.csv"
    done = query(snapshot, f"COPY (SELECT 1 AS x) TO '{target}'")
    assert done.returncode != 0 and not target.exists()
    done = query(snapshot, "SET enable_external_access = true")
    assert done.returncode != 0 and "Cannot change configuration" in done.stderr
    done = query(snapshot, f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
    assert done.returncode != 0 and not (tmp_path / "other.duckdb").exists()


def test_tables_stay_queryable_and_the_operator_can_opt_in(snapshot, tmp_path):
    done = query(snapshot, "SELECT count(*) AS n FROM touchpoints", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["n", "0"]
    (tmp_path / "lookup.csv").write_text("a,b\n1,2\n")
    opted = query(
        snapshot,
        f"SELECT b FROM read_csv('{tmp_path / 'lookup.csv'}')",
        "--allow-external-access",
        "--format",
        "csv",
    )
    assert opted.returncode == 0, opted.stderr
    assert opted.stdout.splitlines() == ["b", "2"]


def test_the_dashboard_reads_through_the_sandbox(snapshot):
    board = load(snapshot)  # every panel's query runs without external access
    assert board.attribution == []


def test_every_statement_of_a_query_prints_its_result(snapshot):
    done = query(snapshot, "SELECT 1 AS a; SELECT 2 AS b, 3 AS c", "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["a", "1", "", "b,c", "2,3"]
    failed = query(snapshot, "SELECT 1 AS a; SELECT * FROM no_such_table")
    assert failed.returncode == 1
    assert "statement 2 of 2" in failed.stderr and "no_such_table" in failed.stderr


def test_a_missing_database_is_named_and_the_version_is_printed(tmp_path):
    missing = tmp_path / "missing.duckdb"
    for command in (["query", "SELECT 1", "--database", str(missing)],
                    ["dashboard", "--database", str(missing), "--port", "0"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "streams.app.cli", *command],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 1, command
        assert f"no database at {missing}" in done.stderr, done.stderr
        assert not missing.exists()
    version = subprocess.run(
        [sys.executable, "-m", "streams.app.cli", "--version"], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )  # fmt: skip
    assert version.returncode == 0
    assert re.fullmatch(r"journeybus, version \d+\.\d+\.\d+\n", version.stdout), version.stdout
