"""``journeybus demo``: the whole stack on the embedded defaults, with demo data.

Runs ``journeybus up`` in this process, sends a generated population (with
known ground truth) through the HTTP collector as Segment calls and webhooks
(orders straight to their topic, as the order system's source does), waits
until the DuckDB tables hold
every event, conversion and attribution credit, then prints the report and a
few example queries and stops the stack. The DuckDB files stay in the runtime
directory for ``journeybus query`` and the dashboard.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import click
import httpx

from connectors.generator.population import PopulationGenerator
from connectors.generator.via_collector import publish_via_collector
from connectors.sinks.duckdb.query import connect_read_only, run_query, run_report
from streams.codec import make_codec
from streams.kafka import make_producer
from streams.settings import get_settings
from streams.supervisor import Supervisor

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


def _progress() -> tuple[int, int, int, int]:
    try:
        with connect_read_only() as db:
            return db.execute(
                "SELECT (SELECT count(*) FROM touchpoints), "
                "(SELECT count(*) FROM journeys WHERE converted), "
                "(SELECT count(DISTINCT conversion_id) FROM attribution_credits), "
                "(SELECT count(*) FROM customer_scores)"
            ).fetchone()
    except Exception:  # the first snapshot is not there yet
        return (0, 0, 0, 0)


def _null_paths() -> int:
    try:
        with connect_read_only() as db:
            return db.execute("SELECT count(*) FROM journeys WHERE NOT converted").fetchone()[0]
    except Exception:
        return 0


def _wait_for_null_paths(quiet_s: float = 4.0, timeout_s: float = 30.0) -> None:
    """Null paths close a little after the conversions: wait until they stop changing."""
    deadline = time.monotonic() + timeout_s
    last, since = _null_paths(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = _null_paths()
        if now != last:
            last, since = now, time.monotonic()


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


def run_demo(customers: int = 2000, seed: int = 7, timeout_s: float = 240.0) -> None:
    settings = get_settings()
    port = free_port()
    supervisor = Supervisor(settings, collector_port=port)
    stop = threading.Event()
    click.echo("starting the stack (broker, topics, stages, sink, HTTP collector) ...")
    bootstrap = supervisor.start()
    thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        click.echo(f"bus: {bootstrap}; logs in {settings.runtime_dir / 'logs'}")
        gen = PopulationGenerator(customers, seed=seed)
        events = gen.generate()
        truth = gen.truth
        started = time.monotonic()
        url = f"http://127.0.0.1:{port}"
        wait_for_collector(url)
        sent = publish_via_collector(
            events, url, make_codec(settings), make_producer(settings, bootstrap)
        )
        click.echo(
            f"sent {sent} events of {customers} customers through the collector ({url}) and "
            f"the order system's topic ({sum(truth.invalid.values())} deliberately invalid)"
        )
        new_customers = len({c.customer_id for c in truth.conversions})
        expected = (
            sum(truth.events.values()),
            len(truth.conversions),
            len(truth.conversions),
            new_customers,
        )
        got = (0, 0, 0, 0)
        while time.monotonic() - started < timeout_s:
            got = _progress()
            if got == expected:
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        click.echo(
            f"tables: {got[0]}/{expected[0]} touchpoints, {got[1]}/{expected[1]} "
            f"conversion journeys, {got[2]}/{expected[2]} attributed, {got[3]}/{expected[3]} "
            f"new customers scored, after {elapsed:.1f} s"
        )
        if got != expected:
            raise click.ClickException(
                "the pipeline did not process the demo data in time; "
                f"see {settings.runtime_dir / 'logs'}"
            )
        _wait_for_null_paths()
        click.echo("\n" + run_report())
        for title, sql in EXAMPLE_QUERIES:
            click.echo(f'== {title}\n$ journeybus query "{sql}"')
            click.echo(run_query(sql))
        click.echo(f"strongest true channel of the generated population: {truth.strongest_channel}")
        click.echo(
            f"DuckDB: {settings.runtime_dir / 'journeybus-read.duckdb'} "
            '(try: journeybus query "SELECT * FROM conversion_paths LIMIT 5")'
        )
        click.echo("Dashboard: journeybus dashboard, then open http://127.0.0.1:8050")
    finally:
        stop.set()
        thread.join(timeout=5)
        supervisor.stop()
