"""Read-only queries over the sink's read snapshot: ``journeybus query`` and ``report``."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import duckdb
import orjson

from connectors.sinks.duckdb.settings import DuckDBSinkSettings
from streams.core.errors import FatalError
from streams.core.settings import Settings


def snapshot_path(database: Path | None, settings: Settings) -> Path:
    """``database``, else the sink's read snapshot (``CONNECTORS__DUCKDB__SNAPSHOT``, by
    default under the runtime directory)."""
    if database is not None:
        return database
    return DuckDBSinkSettings().resolved(settings).snapshot


def sandboxed(path: Path, allow_external_access: bool = False) -> duckdb.DuckDBPyConnection:
    """A read-only connection to ``path`` that reaches nothing else: no other file
    (``read_csv('/etc/passwd')``, ``COPY … TO``, ``ATTACH``), no network, no extension
    download, and SQL cannot turn that back on. ``allow_external_access`` is the
    operator's explicit opt-in (``--allow-external-access``)."""
    config: dict[str, Any] = {
        "enable_external_access": allow_external_access,
        "autoinstall_known_extensions": allow_external_access,
        "autoload_known_extensions": allow_external_access,
        "lock_configuration": True,
    }
    return duckdb.connect(str(path), read_only=True, config=config)


def connect_read_only(
    settings: Settings, database: Path | None = None, allow_external_access: bool = False
) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed connection to the published snapshot (never blocks the
    sink)."""
    return sandboxed(existing_database(database, settings), allow_external_access)


def existing_database(database: Path | None, settings: Settings) -> Path:
    """``snapshot_path(database, settings)``, or a ``FatalError`` that says it is missing
    and how to make it."""
    path = snapshot_path(database, settings)
    if not path.exists():
        raise FatalError(
            f"no database at {path}: run the sink (`journeybus sink`, "
            "`journeybus up` or `journeybus demo`) first"
        )
    return path


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else "NaN"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def format_rows(columns: list[str], rows: list[tuple], fmt: str) -> str:
    if fmt == "json":
        return (
            orjson.dumps(
                [dict(zip(columns, r, strict=True)) for r in rows],
                option=orjson.OPT_INDENT_2,
                default=str,
            ).decode()
            + "\n"
        )
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in r] for r in rows])
        return buf.getvalue()
    cells = [[_text(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"


def run_query(
    sql: str,
    settings: Settings,
    fmt: str = "table",
    database: Path | None = None,
    allow_external_access: bool = False,
) -> str:
    """Every statement of ``sql`` in turn, each result formatted (``table``, ``csv``
    or ``json``); results are separated by a blank line, a statement without rows
    prints nothing."""
    with connect_read_only(settings, database, allow_external_access) as db:
        try:
            statements = db.extract_statements(sql)
        except duckdb.Error as exc:
            raise FatalError(f"query failed: {exc}") from None
        results = []
        for n, statement in enumerate(statements, 1):
            try:
                cursor = db.execute(statement)
            except duckdb.Error as exc:
                where = f" (statement {n} of {len(statements)})" if len(statements) > 1 else ""
                raise FatalError(f"query failed{where}: {exc}") from None
            if cursor.description is not None:
                columns = [d[0] for d in cursor.description]
                results.append(format_rows(columns, cursor.fetchall(), fmt))
        return "\n".join(results)


REPORT_QUERIES = [
    (
        "Totals",
        """
        SELECT (SELECT count(*) FROM touchpoints) AS touchpoints,
               (SELECT count(DISTINCT customer_key) FROM touchpoints) AS customer_keys,
               (SELECT count(*) FROM journeys WHERE converted) AS conversions,
               (SELECT round(sum(conversion_value), 2) FROM journeys WHERE converted) AS revenue,
               (SELECT count(*) FROM journeys WHERE NOT converted) AS null_paths,
               (SELECT count(*) FROM dead_letters) AS dead_letters""",
    ),
    (
        "Touches by channel",
        """
        SELECT channel, count(*) AS touches, count(DISTINCT journey_id) AS journeys
        FROM journey_touchpoints GROUP BY channel ORDER BY touches DESC LIMIT 12""",
    ),
    (
        "Top channels by model (attributed conversions)",
        """
        SELECT model, channel, round(conversions, 2) AS conversions, round(value, 2) AS value
        FROM (SELECT *, row_number() OVER (PARTITION BY model ORDER BY conversions DESC) AS r
              FROM channel_performance) WHERE r <= 3 ORDER BY model, conversions DESC""",
    ),
    (
        "Top conversion paths",
        """
        SELECT path, conversions, journeys, round(conversion_rate, 3) AS conversion_rate
        FROM conversion_paths WHERE conversions > 0 ORDER BY conversions DESC LIMIT 8""",
    ),
    (
        "Audiences: members now (entries and exits so far)",
        """
        SELECT audience, count(*) FILTER (WHERE change = 'entered') AS entries,
               count(*) FILTER (WHERE change = 'exited') AS exits,
               (SELECT count(*) FROM audience_members m WHERE m.audience = c.audience)
                   AS members
        FROM audience_changes c GROUP BY audience ORDER BY members DESC, audience""",
    ),
    (
        "Channel decisions now: customers per channel (suppress = stop sending there)",
        """
        SELECT channel,
               coalesce(sum(customers) FILTER (WHERE decision = 'keep'), 0) AS keep,
               coalesce(sum(customers) FILTER (WHERE decision = 'reduce'), 0) AS reduce,
               coalesce(sum(customers) FILTER (WHERE decision = 'suppress'), 0) AS suppress
        FROM channel_decision_counts GROUP BY channel ORDER BY channel""",
    ),
    (
        "Curated messages: share of each audience's decisions per variant",
        """
        SELECT audience, variant, decisions, round(share, 3) AS share
        FROM message_variant_share ORDER BY audience, decisions DESC, variant""",
    ),
    (
        "Product feed: customers with a feed, items and categories per list (latest lists)",
        """
        SELECT count(*) AS customers, round(avg(len(items)), 2) AS items_per_list,
               round(avg(categories), 2) AS categories_per_list
        FROM (SELECT *, row_number() OVER (PARTITION BY customer_key
                                           ORDER BY generated_at DESC) AS n
              FROM recommendations) WHERE n = 1""",
    ),
    (
        "Dead letters by reason",
        """
        SELECT source_topic, error_type, count(*) AS dead_letters FROM dead_letters
        GROUP BY ALL ORDER BY dead_letters DESC""",
    ),
    (
        "Freshness",
        """
        SELECT name AS table_name, rows, last_write, round(seconds_since_last_write, 1) AS age_s
        FROM pipeline_health WHERE kind = 'table' ORDER BY name""",
    ),
]


def run_report(settings: Settings, database: Path | None = None) -> str:
    out = []
    with connect_read_only(settings, database) as db:
        for title, sql in REPORT_QUERIES:
            cursor = db.execute(sql)
            columns = [d[0] for d in cursor.description]
            out.append(f"== {title}\n" + format_rows(columns, cursor.fetchall(), "table"))
    return "\n".join(out)
