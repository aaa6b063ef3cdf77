"""``journeybus connector``, ``collect``, ``replay`` and ``oms``: the sources' commands."""

from __future__ import annotations

import re
from pathlib import Path

import click

from connectors import registry
from connectors.generator.oms import write_sample_orders
from connectors.scaffold import scaffold
from connectors.sources.http_collector import HttpCollector, hash_write_key
from connectors.sources.postgres_fulfillment import PostgresFulfillmentSource, install_schema
from streams.app.logs import configure_logging
from streams.app.replay import detect_format, progress_total, replay_file
from streams.app.worker import stop_on_signals
from streams.core.catalog import default_catalog
from streams.core.errors import FatalError
from streams.core.settings import get_settings
from streams.core.topics import SOCIAL
from streams.runtime.health import serve_health

SNAKE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def _run_connector(connector) -> None:
    """Run until SIGINT/SIGTERM, serving /metrics, /health, /ready on the metrics port."""

    metrics = connector.settings.metrics
    if metrics.port is not None and not connector.serves_health:
        serve_health(metrics.port, connector.ready, metrics.host)
    connector.run(stop_on_signals())


@click.group()
def connector() -> None:
    """List, run and scaffold connectors."""


@connector.command("list")
def connector_list() -> None:
    """Every registered connector: name, kind, topic, where its settings come from."""

    rows = [("NAME", "KIND", "TOPIC", "SETTINGS", "DESCRIPTION")]
    for name, cls in registry.available().items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        prefix = cls.settings_class.model_config.get("env_prefix", "")
        rows.append((name, cls.kind, getattr(cls, "topic", "") or "-", f"{prefix}*", doc))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )


@connector.command("run")
@click.argument("name")
@click.option("--log-level", default="info", show_default=True)
def connector_run(name: str, log_level: str) -> None:
    """Run connector NAME until Ctrl-C/SIGTERM (settings from CONNECTORS__<NAME>__*)."""

    configure_logging(log_level)
    _run_connector(registry.get(name)(get_settings()))


@connector.command("new")
@click.argument("name")
@click.option("--topic", default=SOCIAL, show_default=True, help="Raw topic.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("connectors/sources"),
    show_default=True,
)
@click.option(
    "--tests", type=click.Path(path_type=Path), default=Path("tests/connectors"), show_default=True
)
@click.option(
    "--package",
    default="connectors.sources",
    show_default=True,
    help="Python package of --dir, for the test's import.",
)
def connector_new(name: str, topic: str, directory: Path, tests: Path, package: str) -> None:
    """Scaffold a one-file source connector NAME and its contract test."""

    if not SNAKE.match(name):
        raise FatalError(f"{name!r}: use lower-case words joined by hyphens, e.g. shopify-orders")
    for path in scaffold(name, topic, directory, tests, package):
        click.echo(f"wrote {path}")


@click.command()
@click.option("--port", type=int, default=None, help="Default: CONNECTORS__HTTP_COLLECTOR__PORT.")
@click.option("--host", default=None)
@click.option("--log-level", default="info", show_default=True)
def collect(port: int | None, host: str | None, log_level: str) -> None:
    """Run the HTTP collector (Segment, Snowplow, webhooks) until Ctrl-C."""

    configure_logging(log_level)
    conf = HttpCollector.settings_class()
    if port is not None:
        conf.port = port
    if host is not None:
        conf.host = host
    _run_connector(HttpCollector(get_settings(), conf=conf))


@click.command("hash-key")
@click.argument("key")
def hash_key(key: str) -> None:
    """Print the digest of a collector write key, as configuration keeps it:
    CONNECTORS__HTTP_COLLECTOR__WRITE_KEYS='{"sha256:...": "web"}'."""

    click.echo(hash_write_key(key))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", required=True, help="Catalogue topic, e.g. cust.social.raw.v1.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default=None,
    help="Default: from the file name.",
)
@click.option("--batch-size", type=int, default=5000, show_default=True)
def replay(file: Path, topic: str, fmt: str | None, batch_size: int) -> None:
    """Publish a JSONL, CSV or Parquet FILE to TOPIC, dead-lettering invalid rows."""

    default_catalog().topic(topic)  # an unknown topic fails before reading anything
    fmt = fmt or detect_format(file)
    with click.progressbar(length=progress_total(file, fmt), label=f"replaying {file.name}") as bar:
        done = [0]

        def progress(n: int) -> None:
            bar.update(n - done[0])
            done[0] = n

        result = replay_file(file, topic, get_settings(), fmt, batch_size, progress)
    click.echo(
        f"{result.accepted} accepted, {result.rejected} rejected (dead-lettered to {topic}.dlq)"
    )


@click.group()
def oms() -> None:
    """The order-management database the postgres-fulfillment source captures."""


def _oms_conf():

    return PostgresFulfillmentSource.settings_class()


@oms.command("init")
def oms_init() -> None:
    """Create the order tables, outbox and triggers (idempotent)."""
    import psycopg

    conf = _oms_conf()
    with psycopg.connect(conf.dsn.get_secret_value(), autocommit=True) as conn:
        install_schema(conn, conf.schema_name)
    click.echo(f"schema {conf.schema_name} ready")


@oms.command("sample")
@click.option("--orders", type=int, default=100, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--first", type=int, default=0, show_default=True, help="Number of the first order.")
def oms_sample(orders: int, seed: int, first: int) -> None:
    """Write sample orders with payments, shipments, returns and tickets."""

    conf = _oms_conf()
    written = write_sample_orders(
        conf.dsn.get_secret_value(), conf.schema_name, orders, seed=seed, first=first
    )
    click.echo(f"wrote {orders} orders: {len(written.events)} fulfilment events to capture")
