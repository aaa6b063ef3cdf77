"""Crash harness: the pipeline as processes, SIGKILLed at random while data flows.

A controller kills, with SIGKILL at random moments, a random component (the
HTTP collector, the PostgreSQL fulfilment source, the normalise, journeys,
attribution, scoring and profiles workers, or the DuckDB sink), the embedded
broker, its object store (the durable log), or the whole stack at once, and
restarts what it killed after a moment (as ``journeybus up`` would), while data
flows in the way it does in production:

- a generated population, in event-time order, sent as its sources would: web
  and app events as Segment batches and messaging/social events as webhooks
  through the collector (a client that retries like an SDK), the order
  system's events straight to the fulfilment topic;
- then orders written to the order-management database in waves (event time:
  now), captured by the PostgreSQL source.

Finally it compares the DuckDB tables with the ground truth: the generator's,
and the events the database writes imply.

A client that batches and retries holds web events back behind order events
already on the bus (for the length of a collector restart); the journeys
stage's ``conversion_grace_ms`` is set to cover that, as it would be set in
production to the slowest source's delivery delay.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from connectors.generator.oms import SampleOrders, write_sample_orders
from connectors.generator.population import GroundTruth, PopulationGenerator
from connectors.generator.via_collector import publish_via_collector
from connectors.sources.postgres_fulfillment import FulfillmentSettings, install_schema
from streams.app.demo import free_port, wait_for_collector
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from tests.polling import wait_until
from tests.sinkhelpers import read_snapshot

DSN = FulfillmentSettings().dsn.get_secret_value()
# the longest this harness holds web events back behind orders already on the bus,
# in processing time: a restart of the whole stack (broker, its store, every process)
# plus the client's backoff; 15 s covered a collector restart but left 25 of 1,550
# paths short of touches that came in after a stack or store kill
CONVERSION_GRACE_MS = 45_000

# what the controller kills besides the components, per round of kills: the broker
# twice, its object store, and everything at once (all of the above)
INFRASTRUCTURE = ["broker", "broker", "object-store", "stack"]
TARGETS = set(INFRASTRUCTURE)  # the kinds of kill, with the components'

COMPONENTS = {
    "collector": ["collect"],
    "fulfilment": ["connector", "run", "postgres-fulfillment"],
    "normalise": ["worker", "--stage", "normalise"],
    "journeys": ["worker", "--stage", "journeys"],
    "attribution": ["worker", "--stage", "attribution"],
    "scoring": ["worker", "--stage", "scoring"],
    "profiles": ["worker", "--stage", "profiles"],
    "sink": ["sink"],
}


@dataclass
class CrashRun:
    root: Path
    customers: int = 1000
    seed: int = 5
    kills: int = 12
    interval_s: tuple[float, float] = (1.5, 4.0)
    chunks: int = 12
    broker: EmbeddedBroker | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)  # components that exited on their own
    truth: GroundTruth | None = None
    keep_broker: bool = False  # for debugging: inspect the topics after the run
    oms_waves: int = 8  # waves of orders written to the database (20 orders each)
    oms: SampleOrders = field(default_factory=SampleOrders)
    collector_port: int = field(default_factory=free_port)
    oms_schema: str = field(default_factory=lambda: f"crash_{uuid.uuid4().hex[:8]}")
    _broker_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)  # no more restarts

    def _env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "JOURNEYBUS__RUNTIME_DIR": str(self.root / "rt"),
            "JOURNEYBUS__JOURNEYS__CONVERSION_GRACE_MS": str(CONVERSION_GRACE_MS),
            "CONNECTORS__DUCKDB__DATABASE": str(self.root / "sink.duckdb"),
            "CONNECTORS__DUCKDB__SNAPSHOT": str(self.root / "read.duckdb"),
            "CONNECTORS__DUCKDB__SNAPSHOT_INTERVAL_S": "0.5",
            "CONNECTORS__HTTP_COLLECTOR__PORT": str(self.collector_port),
            "CONNECTORS__POSTGRES_FULFILLMENT__SCHEMA_NAME": self.oms_schema,
            "CONNECTORS__POSTGRES_FULFILLMENT__POLL_INTERVAL_S": "0.1",
        }
        env.pop("JOURNEYBUS__METRICS__PORT", None)
        return env

    def _start(self, name: str) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (the child holds it)
        args = [*COMPONENTS[name], "--log-level", "warning"]
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "streams.app.cli", *args],
            env=self._env(),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )

    def run(self) -> dict:
        rng = random.Random(self.seed)
        self.broker = EmbeddedBroker(data_dir=self.root / "log", log_path=self.root / "broker.log")
        self.broker.start()
        try:
            create_topics(
                admin_client({"bootstrap.servers": self.broker.bootstrap}),
                default_catalog().topics.values(),
            )
            with psycopg.connect(DSN, autocommit=True) as conn:
                install_schema(conn, self.oms_schema)
            for name in COMPONENTS:
                self._start(name)
            gen = PopulationGenerator(self.customers, seed=self.seed)
            events = gen.generate()
            self.truth = gen.truth
            done, stopped = threading.Event(), self._stopped
            killer = threading.Thread(target=self._kill_loop, args=(rng, done), daemon=True)
            killer.start()
            supervisor = threading.Thread(target=self._supervise, args=(stopped,), daemon=True)
            supervisor.start()
            settings = Settings(runtime_dir=self.root / "rt")
            codec = make_codec(settings)
            producer = make_producer(settings, self.broker.bootstrap)
            url = f"http://127.0.0.1:{self.collector_port}"
            wait_for_collector(url)
            size = -(-len(events) // self.chunks)
            for i in range(0, len(events), size):
                publish_via_collector(events[i : i + size], url, codec, producer)
                time.sleep(rng.uniform(*self.interval_s))
            # today's orders after the history: their event times are now, while the
            # population's lie in the past (a paused backfill next to live data would
            # let the live sources' event time expire the backfill's open paths)
            self._write_orders(rng.random())
            while len(self.killed) < self.kills:
                time.sleep(0.2)
            done.set()
            killer.join()
            settled = self._settle(timeout_s=240)
            stopped.set()
            supervisor.join()
            self._stop_all()
            return {**self.figures(), "settled": settled}
        finally:
            self._stopped.set()
            with self._broker_lock:  # a restart under way finishes first
                self._stop_all()
            if not self.keep_broker and self.broker is not None:
                self.broker.stop()
                with psycopg.connect(DSN, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {self.oms_schema} CASCADE")

    def _write_orders(self, seed: float) -> None:
        """Orders in waves, as the shop's back office writes them, while data flows."""
        for wave in range(self.oms_waves):
            part = write_sample_orders(
                DSN, self.oms_schema, 20, seed=int(seed * 1000) + wave, first=wave * 20
            )
            self.oms.events.update(part.events)
            time.sleep(0.5)

    def _kill_loop(self, rng: random.Random, done: threading.Event) -> None:
        order: list[str] = []
        while not done.is_set() and len(self.killed) < self.kills:
            time.sleep(rng.uniform(*self.interval_s))
            if not order:  # every component and infrastructure kill once, in a random order
                order = rng.sample([*COMPONENTS, *INFRASTRUCTURE], len(COMPONENTS) + 4)
            name = order.pop()
            if name in COMPONENTS:
                with self._broker_lock:  # never at once with the supervisor's restart
                    self._kill(name)
                    self._start(name)
            elif name == "stack":  # everything at once, then back in order
                with self._broker_lock:
                    for component in COMPONENTS:
                        self._kill(component)
                    self._kill_broker(("broker", "object-store"))
                    time.sleep(rng.uniform(0.5, 2.0))
                    self.broker.restart_dead()
                    for component in COMPONENTS:
                        self._start(component)
            else:
                self._kill_broker((name,))  # the supervisor thread brings it back
            self.killed.append(name)

    def _supervise(self, done: threading.Event) -> None:
        """What ``journeybus up`` does: restart the broker or its store when one died
        (killed here, or exited on its own: Tansu exits when its store is gone in the
        middle of a write), and a component that exited on its own (a stage exits on a
        fatal error, such as a broker that refused its outputs while its store was
        down, and relies on being restarted)."""
        while not done.wait(0.5):
            with self._broker_lock:
                try:
                    if self.broker.dead():
                        self.broker.restart_dead()
                except Exception as exc:  # as `up` does: try again at the next round
                    print(f"crash harness: restarting the broker failed: {exc}", flush=True)
                for name, proc in list(self.procs.items()):
                    if proc.poll() is not None and not self._stopped.is_set():
                        print(f"crash harness: {name} exited ({proc.returncode})", flush=True)
                        self.exited.append(name)
                        self._start(name)

    def _kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def _kill_broker(self, which: tuple[str, ...]) -> None:
        procs = {"broker": self.broker.process, "object-store": self.broker.store.process}
        for name in which:
            proc = procs[name]
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()

    def _stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def query(self, sql: str) -> list[tuple]:
        return read_snapshot(self.root / "read.duckdb", sql)

    def _oms_orders(self) -> list[tuple[str, str, float]]:
        """(customer, order id, total) of every order written to the database, in order."""
        with psycopg.connect(DSN, autocommit=True) as conn:
            return conn.execute(
                f"SELECT customer_id, order_id, order_total::float8 FROM {self.oms_schema}.orders "
                "ORDER BY order_id"
            ).fetchall()

    def _first_orders(self) -> dict[str, str]:
        """customer -> the conversion id of their first purchase (what scoring scores)."""
        first: dict[str, tuple[int, str]] = {}
        for c in self.truth.conversions:
            first[c.customer_id] = min(
                first.get(c.customer_id, (c.time, c.conversion_id)), (c.time, c.conversion_id)
            )
        for customer, order, _ in self._oms_orders():  # written (and captured) in order
            first.setdefault(customer, (0, order))
        return {customer: order for customer, (_, order) in first.items()}

    def _expected(self) -> tuple[int, ...]:
        truth = self.truth
        n = len(truth.conversions) + len(self._oms_orders())
        customers = len(self._first_orders())
        valid = sum(truth.events.values()) + len(self.oms.events)
        return (valid, sum(truth.invalid.values()), n, n, customers, customers)

    def _counts(self) -> tuple:
        rows = self.query("""SELECT (SELECT count(*) FROM touchpoints),
            (SELECT count(*) FROM dead_letters),
            (SELECT count(*) FROM journeys WHERE converted),
            (SELECT count(DISTINCT conversion_id) FROM attribution_credits
             WHERE model = 'markov'),
            (SELECT count(*) FROM customer_scores),
            (SELECT count(*) FROM customer_profiles p, unnest(p.attributes) AS a(attr)
             WHERE attr.name = 'lifetime_value')""")
        return rows[0] if rows else ()

    def _settle(self, timeout_s: float) -> bool:
        return wait_until(
            lambda: self._counts() == self._expected(), timeout_s, stable_s=3, interval_s=1
        )

    def _skipped_offsets(self) -> int:
        """Offsets consumers passed as holes the broker never filled, from the logs."""
        skipped = 0
        for log in self.root.glob("*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if "did not come in" in line and "going on without them" in line:
                    first, last = line.split("offsets ")[1].split(" of ")[0].split(" to ")
                    skipped += int(last) - int(first) + 1
        return skipped

    def figures(self) -> dict:
        truth = self.truth
        valid, invalid, conversions, *_ = self._expected()
        tp_rows, tp_distinct = self.query(
            "SELECT count(*), count(DISTINCT source_event_id) FROM touchpoints"
        )[0]
        journeys = dict(self.query("SELECT conversion_id, path FROM journeys WHERE converted"))
        wrong_paths = sum(
            1 for c in truth.conversions if journeys.get(c.conversion_id) != " > ".join(c.channels)
        )
        credits = self.query("""SELECT model, sum(credit), sum(value_credit),
                                       count(DISTINCT conversion_id)
                                FROM attribution_credits GROUP BY model""")
        oms_orders = self._oms_orders()
        value = sum(c.value for c in truth.conversions) + sum(t for _, _, t in oms_orders)
        first = self._first_orders()
        scored = self.query("SELECT customer_key, first_order_id FROM customer_scores")
        lifetime: dict[str, float] = {}
        for c in truth.conversions:
            lifetime[c.customer_id] = lifetime.get(c.customer_id, 0.0) + c.value
        for customer, _, total in oms_orders:
            lifetime[customer] = lifetime.get(customer, 0.0) + total
        oms_ids = sorted(self.oms.events)
        oms_rows, oms_distinct = self.query(
            "SELECT count(*), count(DISTINCT source_event_id) FROM touchpoints "
            f"WHERE source_event_id IN (SELECT unnest({oms_ids!r}))"
        )[0]
        ltv = dict(
            self.query(
                "SELECT customer_key, CAST(attr.value AS DOUBLE) FROM customer_profiles p, "
                "unnest(p.attributes) AS a(attr) WHERE attr.name = 'lifetime_value'"
            )
        )
        return {
            "kills": len(self.killed),
            "offsets_skipped": self._skipped_offsets(),
            "killed": dict(sorted({n: self.killed.count(n) for n in set(self.killed)}.items())),
            "exited": dict(sorted({n: self.exited.count(n) for n in set(self.exited)}.items())),
            "events": valid + invalid,
            "valid": valid,
            "database_events": len(oms_ids),
            "database_events_lost": len(oms_ids) - oms_distinct,
            "database_events_duplicated": oms_rows - oms_distinct,
            "orders": len(oms_orders),
            "touchpoints": tp_rows,
            "lost": valid - tp_distinct,
            "duplicated": tp_rows - tp_distinct,
            "dead_letters": self.query("SELECT count(*) FROM dead_letters")[0][0],
            "invalid": invalid,
            "conversions": conversions,
            "journeys": len(journeys),
            "wrong_paths": wrong_paths,
            "scores": len(scored),
            "new_customers": len(first),
            "wrong_scores": len(set(scored) ^ set(first.items())),
            "wrong_lifetime_values": sum(
                1 for k, v in lifetime.items() if abs(ltv.get(k, -1.0) - v) > 0.005
            ),
            "credit_errors": {
                m: (round(c - conversions, 9), round(v - value, 6), n - conversions)
                for m, c, v, n in credits
            },
        }
