"""Two worker processes, each with its own runtime directory (as pods with emptyDir):
one is killed with SIGKILL, its partitions move to the other, which restores their
state from the changelogs instead of reading the input again from offset 0, and the
tables still equal the generator's ground truth."""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.generator.publish import publish_events
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from tests.pipeline import population
from tests.polling import wait_until
from tests.sinkhelpers import read_snapshot

STITCHED = default_catalog().topic("cust.touchpoints.stitched.v1").name
ASSIGNED = re.compile(r"journeys assigned \[(.*?)\]")
RESTORED = re.compile(
    r"journeys: restored (\S+)/(\d+) from \S+: (\d+) records, (\d+) changes applied, "
    r"\d+ keys rewritten, in [\d.]+ s; input resumes at (\d+)"
)


class Workers:
    """A broker, a sink process and worker processes, each worker on its own directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = EmbeddedBroker(log_path=root / "broker.log")
        self.procs: dict[str, subprocess.Popen] = {}

    def env(self, runtime: str) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "JOURNEYBUS__RUNTIME_DIR": str(self.root / runtime),
            "CONNECTORS__DUCKDB__DATABASE": str(self.root / "sink.duckdb"),
            "CONNECTORS__DUCKDB__SNAPSHOT": str(self.root / "read.duckdb"),
            "CONNECTORS__DUCKDB__SNAPSHOT_INTERVAL_S": "0.5",
        }
        env.pop("JOURNEYBUS__METRICS__PORT", None)
        return env

    def start(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (the child holds it)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "streams.app.cli", *args, "--log-level", "info"],
            env=self.env(f"rt-{name}"),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def query(self, sql: str) -> list[tuple]:
        return read_snapshot(self.root / "read.duckdb", sql)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.broker.stop()


def journeys_partitions(text: str) -> set[int]:
    """The stitched-touchpoint partitions of the last assignment a worker logged."""
    found = ASSIGNED.findall(text)
    assert found, "the worker logged no assignment of journeys"
    return {int(p.split("/")[1].split("@")[0]) for p in found[-1].split(", ") if p}


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("state-follows")
    gen, events = population(customers=200, seed=41)
    truth = gen.truth
    run = Workers(root)
    run.broker.start()
    try:
        create_topics(
            admin_client({"bootstrap.servers": run.broker.bootstrap}),
            default_catalog().topics.values(),
        )
        run.start("sink", "sink")
        run.start("a", "worker")
        run.start("b", "worker")
        # both workers own journeys partitions before data flows
        assert wait_until(
            lambda: (
                all(ASSIGNED.search(run.log(w)) for w in "ab")
                and journeys_partitions(run.log("a")).isdisjoint(journeys_partitions(run.log("b")))
            ),
            timeout_s=120,
        ), "the two workers did not share the partitions"
        settings = Settings(runtime_dir=root / "client")
        codec = make_codec(settings)
        producer = make_producer(settings, run.broker.bootstrap)
        half = len(events) // 2
        first = copy.deepcopy(events[:half])
        publish_events(first, codec, producer)
        valid_first = sum(1 for e in first if e.invalid is None)

        def first_half_in() -> bool:
            rows = run.query("SELECT count(*) FROM touchpoints")
            return bool(rows) and rows[0][0] >= 0.9 * valid_first

        assert wait_until(first_half_in, timeout_s=180, stable_s=3)
        moved = journeys_partitions(run.log("b"))
        run.procs["b"].send_signal(signal.SIGKILL)
        run.procs["b"].wait()
        # the rest once the survivor owns the moved partitions (sent while nobody
        # reads them, a source's conversions could close before the touches there
        # are read: the processing-time grace is what covers that, 200 ms here)
        assert wait_until(
            lambda: moved <= {int(p) for _, p, *_ in RESTORED.findall(run.log("a"))},
            timeout_s=120,
        ), "the killed worker's partitions did not move"
        publish_events(copy.deepcopy(events[half:]), codec, producer)
        expected = len(truth.conversions)

        def settled() -> bool:
            rows = run.query("SELECT count(*) FROM journeys WHERE converted")
            return bool(rows) and rows[0][0] >= expected

        assert wait_until(settled, timeout_s=240, stable_s=5), run.query(
            "SELECT count(*) FROM journeys WHERE converted"
        )
        paths = set(run.query("SELECT conversion_id, path FROM journeys WHERE converted"))
        return truth, moved, run.log("a"), paths
    finally:
        run.close()


def test_the_survivor_restores_the_moved_partitions_from_the_changelog(killed_run):
    _, moved, survivor, _ = killed_run
    restored = {
        int(partition): (int(applied), int(resume))
        for topic, partition, _, applied, resume in RESTORED.findall(survivor)
        if topic == STITCHED
    }
    assert moved, "the killed worker owned journeys partitions"
    for partition in moved:
        applied, resume = restored[partition]
        assert applied > 0, f"partition {partition}: no state restored"
        # the input is read on from the restored checkpoint, not from its beginning
        assert resume > 0, f"partition {partition}: read again from offset 0"


def test_and_the_paths_are_the_ground_truth(killed_run):
    truth, _, _, paths = killed_run
    assert paths == {(c.conversion_id, " > ".join(c.channels)) for c in truth.conversions}
