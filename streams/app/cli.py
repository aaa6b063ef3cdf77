"""The ``journeybus`` command."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import math
import os
import sys
import threading
from pathlib import Path

import click
import httpx

from connectors import registry
from connectors.generator.population import PopulationGenerator
from connectors.generator.publish import publish_events
from connectors.generator.via_collector import publish_via_collector
from connectors.sinks.duckdb.dashboard.server import DashboardServer
from connectors.sinks.duckdb.query import (
    existing_database,
    format_rows,
    run_query,
    run_report,
    snapshot_path,
)
from connectors.sinks.duckdb.sink import DuckDBSink
from streams.app.agent_cli import agent
from streams.app.asyncapi import asyncapi_document
from streams.app.connector_cli import collect, connector, hash_key, oms
from streams.app.connector_cli import replay as replay_command
from streams.app.demo import run_demo
from streams.app.dlq import dlq_topics, read_dead_letters
from streams.app.dlq import replay as replay_dead_letters
from streams.app.dlq import summarise as summarise_dead_letters
from streams.app.forget import forget as publish_forget
from streams.app.logs import configure_logging
from streams.app.register_schemas import register_catalog, registry_http
from streams.app.registry import serve_registry
from streams.app.supervisor import Supervisor
from streams.app.worker import STAGES, run_worker, stop_on_signals
from streams.attribution.models import ALL_MODELS
from streams.attribution.paths_file import (
    HOURS_NEEDED,
    MARKOV_CREDITS,
    compute_csv,
    lacks_hours,
    read_paths,
    removal_effects_csv,
)
from streams.core.admin import admin_client, create_topics, list_topic_partitions
from streams.core.broker import (
    BrokerUnavailable,
    clear_state,
    embedded_broker,
    resolve_bootstrap,
    running_embedded_bootstrap,
    write_state,
)
from streams.core.catalog import default_catalog, load_catalog
from streams.core.codec import make_codec
from streams.core.errors import JourneybusError
from streams.core.kafka import make_producer
from streams.core.schemacheck import check_catalog
from streams.core.settings import get_settings
from streams.runtime.health import serve_health
from streams.scoring.clv import fit_parameters, summarise


class _Group(click.Group):
    """Prints typed journeybus errors as one line and exits 1, without a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except JourneybusError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="journeybus", prog_name="journeybus")
def main() -> None:
    """journeybus: a customer event bus for retailers."""


# -- broker --------------------------------------------------------------------
@main.command()
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 (default: a free one).")
def broker(port: int | None) -> None:
    """Run the embedded Kafka-protocol broker (Tansu) until Ctrl-C or SIGTERM.

    Prints the bootstrap address and records it in the runtime directory so that
    the other commands find it. With KAFKA_BOOTSTRAP_SERVERS set, starts nothing.
    """
    settings = get_settings()
    if settings.kafka.bootstrap_servers:
        click.echo(
            f"KAFKA_BOOTSTRAP_SERVERS is set: using {settings.kafka.bootstrap_servers}, "
            "not starting an embedded broker"
        )
        return
    running = running_embedded_bootstrap(settings.runtime_dir)
    if running:
        raise BrokerUnavailable(
            f"an embedded broker already runs at {running} ({settings.runtime_dir / 'broker.json'})"
        )

    stop = stop_on_signals(grace_s=30.0)  # its own stop is bounded
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    emb = embedded_broker(settings, port or 0)
    bootstrap = emb.start()
    where = f"log in {emb.data_dir}" if emb.durable else "log in memory: kept until it stops"
    try:
        write_state(settings.runtime_dir, bootstrap, emb.process.pid)  # type: ignore[union-attr]
        click.echo(bootstrap, nl=True)
        click.echo(f"embedded broker ready on {bootstrap}, {where} (Ctrl-C to stop)", err=True)
        sys.stdout.flush()
        while not stop.wait(0.5):
            restarted = emb.restart_dead()  # the store first, on the same ports
            if restarted:
                click.echo(f"restarted the embedded {' and '.join(restarted)}", err=True)
                write_state(settings.runtime_dir, bootstrap, emb.process.pid)  # type: ignore[union-attr]
    finally:
        clear_state(settings.runtime_dir)
        emb.stop()
        click.echo("embedded broker stopped", err=True)


# -- topics --------------------------------------------------------------------
@main.group()
def topics() -> None:
    """Create, list and describe the catalogue's topics."""


def _admin():

    settings = get_settings()
    return admin_client(settings.kafka.confluent_config(resolve_bootstrap(settings)))


@topics.command("create")
@click.option(
    "--replication-factor",
    type=int,
    default=None,
    help="Default: 1 on the embedded broker, 3 on a configured cluster.",
)
def topics_create(replication_factor: int | None) -> None:
    """Create every catalogue topic (idempotent: existing topics are kept)."""

    settings = get_settings()
    if replication_factor is None:
        replication_factor = 3 if settings.kafka.bootstrap_servers else 1
    result = create_topics(
        _admin(), default_catalog().topics.values(), replication_factor=replication_factor
    )
    click.echo(f"created {len(result.created)} topics, {len(result.existing)} already existed")
    for name in result.created:
        click.echo(f"  + {name}")


@topics.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also topics that are not in the catalogue.")
def topics_list(show_all: bool) -> None:
    """List the catalogue's topics with their partitions on the cluster."""

    on_cluster = list_topic_partitions(_admin())
    catalog = default_catalog()
    click.echo(f"{'TOPIC':44} {'PARTITIONS':>10}  {'OWNER':24} SCHEMA")
    for name, spec in catalog.topics.items():
        parts = str(on_cluster[name]) if name in on_cluster else "missing"
        click.echo(f"{name:44} {parts:>10}  {spec.owner:24} {spec.schema}")
    if show_all:
        for name in sorted(set(on_cluster) - set(catalog.topics)):
            click.echo(f"{name:44} {on_cluster[name]:>10}  {'(not in catalogue)':24}")


@topics.command("describe")
@click.argument("name")
def topics_describe(name: str) -> None:
    """Owner, key, schema, guarantees, producers, consumers and an example of a topic."""
    catalog = default_catalog()
    spec = catalog.topic(name)
    revision = catalog.latest(spec.schema)
    out = {
        "name": spec.name,
        "owner": spec.owner,
        "description": spec.description,
        "key": spec.key,
        "partitions": spec.partitions,
        "retention": spec.retention,
        "cleanup_policy": spec.cleanup_policy,
        "compatibility": spec.compatibility,
        "guarantees": spec.guarantees,
        "producers": spec.producers,
        "consumers": spec.consumers,
        "pii": spec.pii,
        "dead_letter_topic": spec.dlq_topic,
        "schema": {
            "name": spec.schema,
            "revision": revision.revision,
            "id": catalog.ids.get(revision.fingerprint),
            "subject": spec.subject,
            "avro": revision.raw,
        },
    }
    examples = catalog.examples(name)
    if examples:
        out["example"] = examples[0][1]
    click.echo(json.dumps(out, indent=2))


# -- catalogue and schemas -------------------------------------------------------
@main.command("catalog")
@click.option(
    "--asyncapi",
    "as_asyncapi",
    is_flag=True,
    required=True,
    help="Write an AsyncAPI 3.0 document of every topic and schema.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (.json or .yaml); default: YAML on standard output.",
)
def catalog_cmd(as_asyncapi: bool, output: Path | None) -> None:
    """Export the topic catalogue for downstream teams."""
    import yaml

    settings = get_settings()
    bootstrap = settings.kafka.bootstrap_servers or "127.0.0.1:9092"
    doc = asyncapi_document(default_catalog(), bootstrap=bootstrap)
    if output and output.suffix == ".json":
        text = json.dumps(doc, indent=2)
    else:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    if output:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


@main.group()
def schemas() -> None:
    """Check the catalogue, assign schema ids, register into a Schema Registry."""


@schemas.command("check")
def schemas_check() -> None:
    """Every example valid, every revision backward compatible with the one before."""

    problems = check_catalog(default_catalog())
    for problem in problems:
        click.echo(f"  - {problem}")
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in the schema catalogue")
    click.echo("schema catalogue OK")


@schemas.command("catalog")
@click.option("--write", is_flag=True, help="Update schemas/catalog.json (new ids only).")
def schemas_catalog(write: bool) -> None:
    """Show (or write) the schema ids of the embedded default."""
    catalog = load_catalog()
    doc = catalog.assign_ids()
    text = json.dumps(doc, indent=2) + "\n"
    if write:
        (catalog.root / "catalog.json").write_text(text)
        click.echo(f"wrote {catalog.root / 'catalog.json'} ({len(doc['schemas'])} schemas)")
    else:
        click.echo(text)


@schemas.command("register")
@click.option("--url", required=True, help="Schema Registry URL.")
def schemas_register(url: str) -> None:
    """Put every topic's schema revisions into a Schema Registry under <topic>-value,
    each with its catalogue id (import mode); fails naming any id the registry holds
    otherwise."""
    if url.startswith("mock://"):
        raise click.UsageError(
            "mock:// is an in-memory registry inside one process: registering into it "
            "from this command would be lost at once. Point --url at a running registry "
            "(journeybus up serves the catalogue's on http://127.0.0.1:8081)."
        )
    auth = get_settings().schema_registry.basic_auth_user_info
    try:
        with registry_http(url, auth.get_secret_value() if auth else None) as client:
            imported = register_catalog(client, default_catalog(), click.echo)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"schema registry at {url}: {exc}") from None
    click.echo(f"every revision has its catalogue id ({imported} imported)")


@main.group("registry")
def registry_group() -> None:
    """The embedded Schema Registry (the catalogue, read-only, Confluent's API)."""


@registry_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8081, show_default=True)
def registry_serve(host: str, port: int) -> None:
    """Serve the schema catalogue as a Confluent-compatible registry until Ctrl-C."""
    stop = stop_on_signals()
    metrics = get_settings().metrics
    if metrics.port is not None:  # /metrics, /health, /ready, as every process of `up`
        serve_health(metrics.port, host=metrics.host)
    asyncio.run(
        serve_registry(
            default_catalog(),
            host,
            port,
            stop,
            on_port=lambda p: click.echo(f"schema registry: http://{host}:{p}"),
        )
    )


# -- pipeline processes ----------------------------------------------------------------
@main.command()
@click.option("--stage", "stages", multiple=True, help="Stage to run (default: all).")
@click.option("--log-level", default="info", show_default=True)
def worker(stages: tuple[str, ...], log_level: str) -> None:
    """Run the stream stages (normalise, journeys, ...) until Ctrl-C."""

    unknown = set(stages) - set(STAGES)
    if unknown:
        raise click.BadParameter(
            f"unknown stage(s) {sorted(unknown)}; choose from {sorted(STAGES)}"
        )
    configure_logging(log_level)
    run_worker(list(stages) or None)


@main.command()
@click.option("--log-level", default="info", show_default=True)
def sink(log_level: str) -> None:
    """Run the DuckDB sink until Ctrl-C."""

    configure_logging(log_level)
    DuckDBSink(get_settings()).run(stop_on_signals())


@main.command()
@click.option("--customers", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--days",
    type=int,
    default=60,
    show_default=True,
    help="Simulated period the journeys are spread over.",
)
@click.option(
    "--invalid-rate",
    type=float,
    default=0.01,
    show_default=True,
    help="Share of events made invalid on purpose (they must be dead-lettered).",
)
@click.option("--rate", type=float, default=None, help="Events per second (default: max).")
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the ground truth JSON here.",
)
@click.option(
    "--via",
    type=click.Choice(["kafka", "collector"]),
    default="kafka",
    show_default=True,
    help="Produce to the raw topics, or send through the HTTP collector as trackers would.",
)
@click.option("--collector-url", default="http://127.0.0.1:8088", show_default=True)
def generate(
    customers: int,
    seed: int,
    days: int,
    invalid_rate: float,
    rate: float | None,
    truth: Path | None,
    via: str,
    collector_url: str,
) -> None:
    """Publish a generated multi-channel population with known ground truth."""

    gen = PopulationGenerator(customers, seed=seed, days=days, invalid_rate=invalid_rate)
    events = gen.generate()
    settings = get_settings()
    codec, producer = make_codec(settings), make_producer(settings)
    if via == "collector":
        count = publish_via_collector(events, collector_url, codec, producer, rate=rate)
    else:
        count = publish_events(events, codec, producer, rate=rate)
    summary = gen.truth.as_dict()
    if truth:
        truth.write_text(json.dumps(summary, indent=2))
    click.echo(
        f"published {count} events of {customers} customers: "
        f"{summary['valid_event_total']} valid, {summary['invalid_event_total']} invalid, "
        f"{summary['conversion_total']} conversions "
        f"(strongest true channel: {summary['strongest_channel']})"
    )


ALLOW_EXTERNAL_ACCESS = click.option(
    "--allow-external-access",
    is_flag=True,
    help="Let SQL read and write other files and the network (DuckDB's external "
    "access); off by default.",
)


@main.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option(
    "--database",
    type=click.Path(path_type=Path),
    default=None,
    help="Default: the sink's read snapshot.",
)
@ALLOW_EXTERNAL_ACCESS
def query(sql: str, fmt: str, database: Path | None, allow_external_access: bool) -> None:
    """Run SQL against the tables and views (read-only, while the pipeline runs).

    The query reaches the database and nothing else: no other file, no network."""

    click.echo(run_query(sql, get_settings(), fmt, database, allow_external_access), nl=False)


@main.command()
@click.option("--port", type=int, default=8050, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--database",
    type=click.Path(path_type=Path),
    default=None,
    help="Default: the sink's read snapshot.",
)
@click.option("--refresh", type=int, default=10, show_default=True, help="Seconds; 0: never.")
@ALLOW_EXTERNAL_ACCESS
def dashboard(
    port: int, host: str, database: Path | None, refresh: int, allow_external_access: bool
) -> None:
    """Serve the dashboard web page (attribution, paths, cohorts, responsiveness, health)."""

    settings = get_settings()
    # a file named on the command line must exist; the sink's own snapshot may appear
    # later (the page says "No data yet" until the sink publishes it)
    path = existing_database(database, settings) if database else snapshot_path(None, settings)
    server = DashboardServer(path, host, port, refresh, allow_external_access)
    stop = stop_on_signals()
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    if server.started.wait(30):
        click.echo(f"dashboard on http://{host}:{server.port} (Ctrl-C stops it)")
    thread.join()


@main.command()
@click.option("--database", type=click.Path(path_type=Path), default=None)
def report(database: Path | None) -> None:
    """A short summary: events, customers, conversions, top channels, dead letters."""

    click.echo(run_report(get_settings(), database), nl=False)


# -- dead letters ------------------------------------------------------------------------
@main.group()
def dlq() -> None:
    """List dead letters and replay them after a fix (see streams/app/dlq.py)."""


def _dead_letters(topic: str | None, reason: str | None):

    settings = get_settings()
    codec = make_codec(settings)
    topics_ = dlq_topics(default_catalog(), topic)
    letters = read_dead_letters(settings, resolve_bootstrap(settings), codec, topics_, reason)
    return settings, codec, letters


@dlq.command("list")
@click.option("--topic", default=None, help="A source topic or its .dlq (default: all).")
@click.option("--reason", default=None, help="Only this error type, e.g. unknown_event_type.")
@click.option("--show", type=int, default=0, help="Also print the first N dead letters.")
def dlq_list(topic: str | None, reason: str | None, show: int) -> None:
    """Dead letters per topic and reason, with counts."""

    _, _, letters = _dead_letters(topic, reason)
    click.echo(
        format_rows(["dlq_topic", "reason", "count"], summarise_dead_letters(letters), "table"),
        nl=False,
    )
    if show:
        rows = [
            (
                d.dlq_topic,
                d.record["event_id"],
                d.reason,
                d.record["stage"],
                d.record["error_message"][:120],
            )
            for d in letters[:show]
        ]
        head = ["dlq_topic", "event_id", "reason", "stage", "message"]
        click.echo(format_rows(head, rows, "table"), nl=False)


@dlq.command("replay")
@click.option("--topic", default=None, help="A source topic or its .dlq (default: all).")
@click.option("--reason", default=None, help="Only this error type.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; publish nothing.")
def dlq_replay(topic: str | None, reason: str | None, dry_run: bool) -> None:
    """Send dead letters' original input back to their source topics, after a fix."""

    settings, codec, letters = _dead_letters(topic, reason)
    bootstrap = resolve_bootstrap(settings)
    result = replay_dead_letters(
        settings, bootstrap, codec, default_catalog(), letters, dry_run=dry_run
    )
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {result.total} of {len(letters)} dead letters")
    for (source, why), count in sorted(result.replayed.items()):
        click.echo(f"  {verb} {count:>6}  {source}  ({why})")
    for (source, why), count in sorted(result.not_replayable.items()):
        click.echo(f"  not replayable {count:>6}  {source}  ({why})")


# -- privacy -----------------------------------------------------------------------------
@main.command()
@click.argument("customer_key")
@click.option(
    "--opt-out",
    is_flag=True,
    help="The customer also opted out: suppress their later events too.",
)
@click.option("--reason", default=None, help="For the audit trail, e.g. a ticket number.")
def forget(customer_key: str, opt_out: bool, reason: str | None) -> None:
    """Forget a customer (right to be forgotten): every stage drops their state and the
    sink deletes their rows from every table (see streams/erasure)."""

    settings = get_settings()
    request = publish_forget(
        settings,
        resolve_bootstrap(settings),
        make_codec(settings),
        customer_key,
        opt_out=opt_out,
        reason=reason,
    )
    kinds = sorted({i["kind"] for i in request["identifiers"]})
    click.echo(
        f"published erasure request {request['request_id']}: "
        f"{len(request['identifiers'])} identifiers ({', '.join(kinds)})"
        + (", later events suppressed" if opt_out else "")
    )


# -- analytics ---------------------------------------------------------------------------
@main.group()
def attribution() -> None:
    """Attribution models over path files (ChannelAttribution's aggregated format)."""


def _half_life(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number of hours, not {value}")
    return value


@attribution.command("compute")
@click.option(
    "--paths",
    "paths_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with path, total_conversions, total_conversion_value, total_null [, hours].",
)
@click.option(
    "--model",
    "models",
    type=click.Choice(["all", *ALL_MODELS]),
    multiple=True,
    default=("all",),
    show_default=True,
    help="A model to compute (repeat for several); the names of the attribution tables.",
)
@click.option(
    "--order", type=click.IntRange(1, 3), default=1, show_default=True, help="Markov chain order."
)
@click.option(
    "--half-life-hours",
    type=float,
    default=168.0,
    show_default=True,
    callback=_half_life,
    help="Time-decay half-life (positive).",
)
@click.option(
    "--markov-credit",
    type=click.Choice(MARKOV_CREDITS),
    default="total",
    show_default=True,
    help="Markov totals as ChannelAttribution prints them, or the sums of the bus's "
    "per-conversion credits (only channels on each converting path).",
)
@click.option("--removal-effects", is_flag=True, help="Print the Markov removal effects.")
def attribution_compute(
    paths_file: Path,
    models: tuple[str, ...],
    order: int,
    half_life_hours: float,
    markov_credit: str,
    removal_effects: bool,
) -> None:
    """Channel credits (conversions and value) per model, as CSV."""

    rows = read_paths(paths_file)
    if removal_effects:
        click.echo(removal_effects_csv(rows, order), nl=False)
        return
    chosen = list(
        dict.fromkeys(m for name in models for m in (ALL_MODELS if name == "all" else [name]))
    )
    if "time_decay" in chosen and lacks_hours(rows):
        raise click.UsageError(
            f"{HOURS_NEEDED}; add it, or name the models to compute "
            "(--model markov --model linear ...)"
        )
    click.echo(compute_csv(rows, chosen, order, half_life_hours, markov_credit), nl=False)


# -- whole stack -----------------------------------------------------------------
@main.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Processes per stream stage (they share partitions).",
)
@click.option(
    "--metrics-base-port",
    type=int,
    default=9400,
    show_default=True,
    help="Child processes serve /metrics, /health, /ready from this port up.",
)
@click.option(
    "--collector-port",
    type=int,
    default=8088,
    show_default=True,
    help="Port of the HTTP collector (Segment, Snowplow, webhooks); 0: no collector.",
)
@click.option(
    "--registry-port",
    type=int,
    default=8081,
    show_default=True,
    help="Port of the schema registry serving the catalogue; 0: none.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="A polling source connector to run too (repeatable). postgres-fulfillment runs "
    "by default when CONNECTORS__POSTGRES_FULFILLMENT__DSN is set.",
)
@click.option(
    "--activation/--no-activation",
    default=True,
    show_default=True,
    help="Run the activation agents (audiences, channel and message decisions, product feed).",
)
@click.option("--log-level", default="info", show_default=True)
def up(
    workers: int, metrics_base_port: int, collector_port: int, registry_port: int,
    sources: tuple[str, ...], activation: bool, log_level: str,
) -> None:  # fmt: skip
    """Run the whole local stack as supervised processes until Ctrl-C."""
    if os.environ.get("CONNECTORS__POSTGRES_FULFILLMENT__DSN"):
        sources = tuple(dict.fromkeys((*sources, "postgres-fulfillment")))
    for name in sources:
        registry.get(name)  # an unknown name fails before anything starts
    configure_logging(log_level)
    stop = stop_on_signals(grace_s=30.0)  # its own stop is bounded
    supervisor = Supervisor(
        get_settings(),
        workers=workers,
        base_metrics_port=metrics_base_port,
        collector_port=collector_port or None,
        registry_port=registry_port or None,
        sources=sources,
        activation=activation,
        stopping=stop,
    )
    try:
        bootstrap = supervisor.start()
        click.echo(f"journeybus is up on {bootstrap} (Ctrl-C to stop)")
        if collector_port:
            click.echo(f"collector: http://127.0.0.1:{collector_port} (write keys: local-web, ...)")
        if registry_port:
            click.echo(f"schema registry: http://127.0.0.1:{registry_port}")
        supervisor.run()
    finally:
        supervisor.stop()


@main.command()
@click.option("--customers", type=int, default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--fresh",
    is_flag=True,
    help="Empty the runtime directory first (log, state, tables); by default what earlier "
    "runs sent is kept and the report says so.",
)
@click.option("--log-level", default="warning", show_default=True)
def demo(customers: int, seed: int, fresh: bool, log_level: str) -> None:
    """Run the stack on the embedded defaults with demo data, then print the report."""

    configure_logging(log_level)
    run_demo(customers=customers, seed=seed, fresh=fresh)


# -- scoring -----------------------------------------------------------------------------
@main.group()
def scoring() -> None:
    """Customer lifetime value models (BG/NBD purchases, Gamma-Gamma spend)."""


@scoring.command("fit")
@click.option(
    "--transactions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV with columns customer_id, date (ISO), amount.",
)
@click.option("--calibration-end", default=None, help="Last date to use (default: the last).")
@click.option("--unit", type=click.Choice(["days", "weeks"]), default="weeks", show_default=True)
def scoring_fit(transactions: Path, calibration_end: str | None, unit: str) -> None:
    """Fit BG/NBD and Gamma-Gamma by maximum likelihood; print the parameters as JSON."""

    with transactions.open(newline="", encoding="utf-8") as handle:
        rows = [
            (r["customer_id"], dt.date.fromisoformat(r["date"][:10]), float(r["amount"]))
            for r in csv.DictReader(handle)
        ]
    end = dt.date.fromisoformat(calibration_end) if calibration_end else None
    summary = summarise(rows, end, unit)
    fitted = {
        "customers": len(summary.customers),
        "repeat_customers": int((summary.x > 0).sum()),
        "unit": unit,
        "calibration_end": str(end or max(r[1] for r in rows)),
        **fit_parameters(summary),
    }
    click.echo(json.dumps(fitted, indent=2))


# -- sources -----------------------------------------------------------------------------
def _add_source_commands() -> None:

    for command in (connector, collect, hash_key, replay_command, oms, agent):
        main.add_command(command)


_add_source_commands()


if __name__ == "__main__":
    main()
