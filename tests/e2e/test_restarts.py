"""``journeybus up`` restarted with the same runtime directory: once stopped cleanly, once
killed with SIGKILL (its broker, object store and children with it), with events sent
through the collector before each restart. Every event acknowledged with a 2xx is in
``touchpoints`` exactly once, and journeys, credits and scores match the generator's
ground truth: the durable log, the stages' state and the sink's rows carry over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.generator.population import PopulationGenerator
from connectors.generator.via_collector import publish_via_collector
from streams.app.demo import wait_for_collector
from streams.core.codec import make_codec
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from tests.integration.test_up import alive, descendants
from tests.polling import wait_until
from tests.ports import free_port_block
from tests.sinkhelpers import read_snapshot

ROOT = Path(__file__).resolve().parents[2]


class Up:
    """``journeybus up`` as its own process, on one runtime directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # the collector and the children's metrics ports stay the same over restarts
        self.port = free_port_block(16)
        self.metrics_base_port = self.port + 1
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "JOURNEYBUS__RUNTIME_DIR": str(root / "rt"),
            "CONNECTORS__DUCKDB__DATABASE": str(root / "sink.duckdb"),
            "CONNECTORS__DUCKDB__SNAPSHOT": str(root / "read.duckdb"),
        }
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "CONNECTORS__POSTGRES_FULFILLMENT__DSN"):
            self.env.pop(name, None)
        self.proc: subprocess.Popen | None = None
        self.bootstrap = ""

    def start(self) -> None:
        args = [sys.executable, "-m", "streams.app.cli", "up", "--log-level", "warning"]
        args += [
            "--collector-port",
            str(self.port),
            "--metrics-base-port",
            str(self.metrics_base_port),
        ]
        self.proc = subprocess.Popen(
            args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        line = self.proc.stdout.readline()
        assert "journeybus is up on 127.0.0.1:" in line, line
        self.bootstrap = line.split(" on ")[1].split()[0]
        wait_for_collector(self.url, timeout_s=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(self, events) -> None:
        settings = Settings(runtime_dir=self.root / "rt")
        publish_via_collector(
            events, self.url, make_codec(settings), make_producer(settings, self.bootstrap)
        )

    def stop(self, sig: int = signal.SIGINT) -> None:
        assert self.proc is not None
        below = descendants(self.proc.pid)  # broker, object store, children
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        # children die with `up`, even when it was killed (PR_SET_PDEATHSIG)
        assert wait_until(lambda: not alive(below), 30), [
            Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in alive(below)
        ]

    def query(self, sql: str) -> list[tuple]:
        return read_snapshot(self.root / "read.duckdb", sql)


@pytest.mark.timeout(900)
def test_restarting_up_twice_loses_and_doubles_nothing(tmp_path):
    gen = PopulationGenerator(300, seed=13)
    events = gen.generate()
    truth = gen.truth
    third = -(-len(events) // 3)
    up = Up(tmp_path)
    try:
        up.start()
        up.send(events[:third])
        up.stop(signal.SIGINT)  # a clean stop

        up.start()
        up.send(events[third : 2 * third])
        up.stop(signal.SIGKILL)  # everything acknowledged, nothing processed yet for sure

        up.start()
        up.send(events[2 * third :])
        valid = sum(truth.events.values())
        conversions = len(truth.conversions)
        new_customers = len({c.customer_id for c in truth.conversions})
        expected = (valid, conversions, conversions, new_customers)
        counts = (
            "SELECT (SELECT count(*) FROM touchpoints), (SELECT count(*) FROM journeys "
            "WHERE converted), (SELECT count(DISTINCT conversion_id) FROM attribution_credits "
            "WHERE model = 'markov'), (SELECT count(*) FROM customer_scores)"
        )
        settled = wait_until(lambda: up.query(counts) == [expected], 300, stable_s=3)
        assert settled, (up.query(counts), expected)
    finally:
        if up.proc is not None and up.proc.poll() is None:
            up.stop(signal.SIGINT)
    rows, distinct = up.query("SELECT count(*), count(DISTINCT source_event_id) FROM touchpoints")[
        0
    ]
    assert rows == distinct == valid  # every acknowledged event once
    assert up.query("SELECT count(*) FROM dead_letters")[0][0] == sum(truth.invalid.values())
    paths = dict(up.query("SELECT conversion_id, path FROM journeys WHERE converted"))
    wrong = [c for c in truth.conversions if paths.get(c.conversion_id) != " > ".join(c.channels)]
    assert not wrong, wrong[:3]
    value = sum(c.value for c in truth.conversions)
    for model, credit, value_credit in up.query(
        "SELECT model, sum(credit), sum(value_credit) FROM attribution_credits GROUP BY model"
    ):
        assert abs(credit - conversions) < 1e-6 and abs(value_credit - value) < 1e-4, model
    first = {}
    for c in sorted(truth.conversions, key=lambda c: (c.time, c.conversion_id)):
        first.setdefault(c.customer_id, c.conversion_id)
    assert dict(up.query("SELECT customer_key, first_order_id FROM customer_scores")) == first
