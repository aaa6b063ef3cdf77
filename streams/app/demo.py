"""``journeybus demo``: the whole stack on the embedded defaults, with demo data.

Runs ``journeybus up`` in this process, sends a generated population (with
known ground truth) through the HTTP collector as Segment calls and webhooks
(orders straight to their topic, as the order system's source does), waits
until the DuckDB tables hold every event of this run, its conversions, their
attribution credits and new customers' scores, then prints the report and a few
example queries and stops the stack. The DuckDB files stay in the runtime
directory for ``journeybus query`` and the dashboard.

The runtime directory is reused: its log, state and tables keep what earlier
runs sent (the same seed again changes nothing: every id is the same; another
seed adds its population), the wait is for this run's own events, and the
report says which runs its tables hold. ``--fresh`` starts from nothing.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import socket
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx
import pyarrow as pa

from connectors.generator.population import ExpectedJourney, PopulationGenerator
from connectors.generator.via_collector import publish_via_collector
from connectors.sinks.duckdb.query import connect_read_only, run_query, run_report
from connectors.sinks.duckdb.sink import DuckDBSinkSettings
from streams.app.demo_activation import run_campaign, wait_until_quiet
from streams.app.supervisor import Supervisor
from streams.core.broker import LOG_DIR, running_embedded_bootstrap
from streams.core.codec import make_codec
from streams.core.kafka import make_producer
from streams.core.settings import Settings, get_settings
from streams.core.topics import RAW_SOURCES
from streams.scoring.model import DAY_MS, MIN_CUSTOMERS, MIN_REPEAT_CUSTOMERS

log = logging.getLogger(__name__)

EXAMPLE_QUERIES = [
    (
        "Attribution by channel, every model side by side",
        "PIVOT (SELECT model, channel, round(conversions, 1) AS conversions "
        "FROM channel_performance) ON model USING sum(conversions) ORDER BY channel",
    ),
    (
        "The chain of touches behind purchases (most frequent transitions)",
        "SELECT from_channel, to_channel, transitions FROM path_transitions "
        "ORDER BY transitions DESC LIMIT 8",
    ),
    (
        "New customers: predicted 365-day value by acquisition channel vs the typical one",
        "SELECT acquisition_channel, sum(customers) AS customers, "
        "round(sum(avg_expected_value_365d * customers) / sum(customers), 1) AS value_365d, "
        "round(any_value(typical_expected_value_365d), 1) AS typical "
        "FROM new_customer_cohorts GROUP BY ALL ORDER BY value_365d DESC",
    ),
    (
        "Journeys of one customer",
        "SELECT journey_id, converted, path, conversion_value FROM journeys "
        "WHERE customer_key = (SELECT customer_key FROM journeys WHERE converted "
        "ORDER BY touch_count DESC, customer_key LIMIT 1)",
    ),
]


TRY_QUERY = "SELECT * FROM conversion_paths ORDER BY conversions DESC, path LIMIT 5"


def cli_command() -> str:
    """How to run ``journeybus`` from here: its name when that is on PATH, else the
    path of the script beside this Python (``.venv/bin/journeybus`` after ``make
    install``), else ``python -m streams.app.cli``."""
    script = Path(sys.executable).parent / "journeybus"
    on_path = shutil.which("journeybus")
    if on_path and (not script.exists() or Path(on_path).resolve() == script.resolve()):
        return "journeybus"
    if script.exists():
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return f"{shlex.quote(sys.executable)} -m streams.app.cli"


def hints(command: str, snapshot: Path) -> list[str]:
    """What the demo suggests next, each a command that runs as printed
    (tests/e2e/test_demo.py runs them)."""
    return [
        f"DuckDB: {snapshot}",
        f"  try: {command} query {shlex.quote(TRY_QUERY)}",
        f"  and: {command} report",
        f"Dashboard: {command} dashboard, then open http://127.0.0.1:8050",
    ]


def _progress(run: DemoRun, settings: Settings) -> tuple[int, int, int, int]:
    """(this run's events ingested since it started, its conversions' journeys,
    those attributed, its new customers scored)."""
    try:
        with connect_read_only(settings) as db:
            db.register("demo_events", pa.table({"id": run.event_ids}))
            db.register("demo_conversions", pa.table({"id": run.conversion_ids}))
            db.register("demo_customers", pa.table({"id": run.customers}))
            return db.execute(
                "SELECT (SELECT count(*) FROM touchpoints WHERE source_event_id IN "
                "(SELECT id FROM demo_events) "
                "AND _ingested_at >= make_timestamp(?::BIGINT * 1000)), "
                "(SELECT count(*) FROM journeys WHERE converted AND conversion_id IN "
                "(SELECT id FROM demo_conversions)), "
                "(SELECT count(DISTINCT conversion_id) FROM attribution_credits WHERE "
                "conversion_id IN (SELECT id FROM demo_conversions)), "
                "(SELECT count(*) FROM customer_scores WHERE customer_key IN "
                "(SELECT id FROM demo_customers))",
                [run.started_ms],
            ).fetchone()
    except Exception:  # the first snapshot is not there yet
        return (0, 0, 0, 0)


def buyers_and_repeaters(conversions: list[ExpectedJourney]) -> tuple[int, int]:
    """(customers who bought, those who bought on more than one day): what the
    scoring model counts before it fits (``streams.scoring.model``)."""
    days: dict[str, set[int]] = defaultdict(set)
    for conversion in conversions:
        days[conversion.customer_id].add(conversion.time // DAY_MS)
    return len(days), sum(len(d) > 1 for d in days.values())


def scorable(buyers: int, repeat: int) -> bool:
    return buyers >= MIN_CUSTOMERS and repeat >= MIN_REPEAT_CUSTOMERS


def _null_paths(settings: Settings) -> int:
    try:
        with connect_read_only(settings) as db:
            return db.execute("SELECT count(*) FROM journeys WHERE NOT converted").fetchone()[0]
    except Exception:
        return 0


def _wait_for_null_paths(settings: Settings, quiet_s: float = 4.0, timeout_s: float = 30.0) -> None:
    """Null paths close a little after the conversions: wait until they stop changing."""
    wait_until_quiet(lambda: _null_paths(settings), quiet_s, timeout_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_collector(url: str, timeout_s: float = 30.0) -> None:
    """Return once the collector at ``url`` answers ``/health``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise click.ClickException(f"the collector did not come up at {url}")


@dataclass
class DemoRun:
    """What one demo run sent, to wait for it and say what the tables hold."""

    seed: int
    customers_count: int
    started_ms: int
    event_ids: list[str] = field(default_factory=list)  # valid events' source ids
    conversion_ids: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)  # those who converted


RUNS_FILE = "demo-runs.json"


def remember_run(runtime: Path, run: DemoRun) -> list[dict]:
    """Add ``run`` to the runs the runtime directory's tables hold; all of them."""
    path = runtime / RUNS_FILE
    runs = [
        r for r in _runs(path) if r["seed"] != run.seed or r["customers"] != run.customers_count
    ]
    runs.append({"seed": run.seed, "customers": run.customers_count, "at": run.started_ms})
    path.write_text(json.dumps(runs))
    return runs


def _runs(path: Path) -> list[dict]:
    try:
        return list(json.loads(path.read_text()))
    except (OSError, ValueError):
        return []


def start_fresh(settings: Settings) -> None:
    """Remove what earlier runs left in the runtime directory: the broker's log, stage
    state, source positions, logs, the sink's database and its read snapshot."""
    runtime = settings.runtime_dir
    sink = DuckDBSinkSettings().resolved(settings)
    for path in (runtime / LOG_DIR, runtime / "state", runtime / "sources", runtime / "logs"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (sink.database, sink.snapshot, runtime / RUNS_FILE):
        for leftover in path.parent.glob(path.name + "*"):  # .wal, .tmp copies
            leftover.unlink(missing_ok=True)


def run_demo(
    customers: int = 2000, seed: int = 7, timeout_s: float = 240.0, fresh: bool = False
) -> None:
    settings = get_settings()
    running = running_embedded_bootstrap(settings.runtime_dir)
    if running:
        raise click.ClickException(
            f"a journeybus stack already runs on {settings.runtime_dir} ({running}); stop it "
            "first, or set JOURNEYBUS__RUNTIME_DIR to another directory"
        )
    if fresh:
        start_fresh(settings)
        click.echo(f"starting fresh: {settings.runtime_dir} emptied")
    port = free_port()
    supervisor = Supervisor(settings, collector_port=port)
    click.echo("starting the stack (broker, topics, stages, sink, HTTP collector) ...")
    bootstrap = supervisor.start()
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        click.echo(f"bus: {bootstrap}; logs in {settings.runtime_dir / 'logs'}")
        gen = PopulationGenerator(customers, seed=seed)
        events = gen.generate()
        truth = gen.truth
        started = time.monotonic()
        run = DemoRun(
            seed,
            customers,
            int(time.time() * 1000),
            [e.record["event_id"] for e in events if e.topic in RAW_SOURCES and not e.invalid],
            [c.conversion_id for c in truth.conversions],
            sorted({c.customer_id for c in truth.conversions}),
        )
        url = f"http://127.0.0.1:{port}"
        wait_for_collector(url)
        sent = publish_via_collector(
            events, url, make_codec(settings), make_producer(settings, bootstrap)
        )
        click.echo(
            f"sent {sent} events of {customers} customers through the collector ({url}) and "
            f"the order system's topic ({sum(truth.invalid.values())} deliberately invalid)"
        )
        expected = (
            sum(truth.events.values()),
            len(truth.conversions),
            len(truth.conversions),
            len(run.customers),
        )
        buyers, repeat = buyers_and_repeaters(truth.conversions)
        # too few buyers for a model: nobody is scored until more data arrive, so the
        # wait does not count on scores (earlier populations may still make a model)
        needed = slice(0, 4 if scorable(buyers, repeat) else 3)
        got = (0, 0, 0, 0)
        while time.monotonic() - started < timeout_s:
            got = _progress(run, settings)
            if got[needed] == expected[needed]:
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        click.echo(
            f"tables: {got[0]}/{expected[0]} touchpoints, {got[1]}/{expected[1]} "
            f"conversion journeys, {got[2]}/{expected[2]} attributed, {got[3]}/{expected[3]} "
            f"new customers scored, after {elapsed:.1f} s"
        )
        if needed.stop == 3:
            click.echo(
                f"(no scoring model from this population alone: it has {buyers} buyers, "
                f"{repeat} of them repeat; a model needs {MIN_CUSTOMERS} and "
                f"{MIN_REPEAT_CUSTOMERS})"
            )
        if got[needed] != expected[needed]:
            raise click.ClickException(
                "the pipeline did not process the demo data in time; "
                f"see {settings.runtime_dir / 'logs'}"
            )
        _wait_for_null_paths(settings)
        if supervisor.activation:
            click.echo(run_campaign(settings, bootstrap, seed))
        runs = remember_run(settings.runtime_dir, run)
        held = ", ".join(f"seed {r['seed']} ({r['customers']:,} customers)" for r in runs)
        click.echo(
            f"\nThe tables hold {len(runs)} demo population{'s' if len(runs) > 1 else ''}: "
            f"{held}; the report covers all of it (--fresh starts from nothing)."
        )
        click.echo("\n" + run_report(settings))
        command = cli_command()
        for title, sql in EXAMPLE_QUERIES:
            click.echo(f"== {title}\n$ {command} query {shlex.quote(sql)}")
            click.echo(run_query(sql, settings))
        click.echo(f"strongest true channel of the generated population: {truth.strongest_channel}")
        for line in hints(command, DuckDBSinkSettings().resolved(settings).snapshot):
            click.echo(line)
    finally:
        supervisor.stopping.set()
        thread.join(timeout=5)
        supervisor.stop()
