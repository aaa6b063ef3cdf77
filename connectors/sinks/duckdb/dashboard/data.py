"""What the dashboard shows, read from the sink's views (aggregated in SQL, never raw rows).

Every panel is one query over a view that ``journeybus query`` can run too, so a
number on the page can be checked against the command line. A period is a
number of days ending on the latest day with conversions (demo and backfilled
data lie in the past; live data ends today).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from connectors.sinks.duckdb.query import sandboxed
from streams.attribution.models import ALL_MODELS

PERIODS = {"7d": 7, "30d": 30, "90d": 90, "all": None}
MODELS = ALL_MODELS  # the attribution models, in the order the page shows them
TOP_PATHS = 10
TOP_TRANSITIONS = 40


@dataclass
class Period:
    """Days ``start``..``end`` (inclusive); None bounds: all time."""

    name: str
    start: dt.date | None
    end: dt.date | None

    @property
    def label(self) -> str:
        if self.end is None:
            return "no data yet"
        if self.start is None:
            return f"all time, up to {self.end.isoformat()}"
        days = (self.end - self.start).days + 1
        return f"the {days} days {self.start.isoformat()} to {self.end.isoformat()}"

    def where(self, column: str = "day") -> tuple[str, list[Any]]:
        """A SQL condition on a DATE column and its parameters."""
        if self.start is None:
            return "TRUE", []
        return f"{column} BETWEEN ? AND ?", [self.start, self.end]


@dataclass
class Dashboard:
    """Everything one page shows; empty lists where there is no data yet."""

    period: Period
    attribution: list[dict] = field(default_factory=list)
    paths: list[dict] = field(default_factory=list)
    transitions: list[dict] = field(default_factory=list)
    cohorts_by_channel: list[dict] = field(default_factory=list)
    cohorts_by_category: list[dict] = field(default_factory=list)
    typical_value: float | None = None
    responsiveness: list[dict] = field(default_factory=list)
    ingest: list[dict] = field(default_factory=list)
    freshness: list[dict] = field(default_factory=list)
    dead_letters: list[dict] = field(default_factory=list)
    audiences: list[dict] = field(default_factory=list)
    audience_days: list[dict] = field(default_factory=list)
    channel_decisions: list[dict] = field(default_factory=list)
    variant_share: list[dict] = field(default_factory=list)
    feed: list[dict] = field(default_factory=list)


def _rows(db: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict]:
    cursor = db.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def resolve_period(db: duckdb.DuckDBPyConnection, name: str) -> Period:
    """The period ``name`` (a key of ``PERIODS``) ending on the latest conversion day."""
    (end,) = db.execute("SELECT max(day) FROM attribution_daily").fetchone()
    days = PERIODS[name]
    if end is None or days is None:
        return Period(name, None, end)
    return Period(name, end - dt.timedelta(days=days - 1), end)


def has_views(db: duckdb.DuckDBPyConnection) -> bool:
    (count,) = db.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = 'attribution_daily'"
    ).fetchone()
    return count > 0


def load(
    database: Path, period_name: str = "30d", allow_external_access: bool = False
) -> Dashboard:
    """Read every panel's data from the read snapshot at ``database``.

    A missing file or a database the sink has not set up yet gives an empty
    dashboard (the page then says there is no data yet).
    """
    if period_name not in PERIODS:
        raise ValueError(f"unknown period {period_name!r}; one of {', '.join(PERIODS)}")
    if not database.exists():
        return Dashboard(Period(period_name, None, None))
    with sandboxed(database, allow_external_access) as db:
        if not has_views(db):
            return Dashboard(Period(period_name, None, None))
        return read_panels(db, resolve_period(db, period_name))


def read_panels(db: duckdb.DuckDBPyConnection, period: Period) -> Dashboard:
    cond, params = period.where()
    board = Dashboard(period)
    board.attribution = _rows(
        db,
        "SELECT model, channel, sum(conversions) AS conversions, sum(value) AS value "
        f"FROM attribution_daily WHERE {cond} GROUP BY model, channel "
        "ORDER BY model, channel",
        params,
    )
    board.paths = _rows(
        db,
        "SELECT path, sum(conversions) AS conversions, sum(null_paths) AS null_paths, "
        "sum(conversions) / (sum(conversions) + sum(null_paths)) AS conversion_rate, "
        "sum(value) AS value "
        f"FROM conversion_paths_daily WHERE {cond} AND path <> '' GROUP BY path "
        f"HAVING sum(conversions) > 0 ORDER BY conversions DESC, path LIMIT {TOP_PATHS}",
        params,
    )
    board.transitions = _rows(
        db,
        "SELECT from_channel, to_channel, sum(transitions) AS transitions "
        f"FROM path_transitions_daily WHERE {cond} GROUP BY from_channel, to_channel "
        f"ORDER BY transitions DESC, from_channel, to_channel LIMIT {TOP_TRANSITIONS}",
        params,
    )
    cohort_cond, cohort_params = _cohort_condition(period)
    for dimension, target in (
        ("acquisition_channel", "cohorts_by_channel"),
        ("first_category", "cohorts_by_category"),
    ):
        setattr(
            board,
            target,
            _rows(
                db,
                f"SELECT {dimension} AS name, sum(customers) AS customers, "
                "sum(avg_expected_value_365d * customers) / sum(customers) AS expected_value, "
                "sum(avg_first_order_value * customers) / sum(customers) AS first_order_value "
                f"FROM new_customer_cohorts WHERE {cohort_cond} GROUP BY {dimension} "
                "ORDER BY expected_value DESC, name",
                cohort_params,
            ),
        )
    (board.typical_value,) = db.execute(
        "SELECT sum(typical_expected_value_365d * customers) / sum(customers) "
        f"FROM new_customer_cohorts WHERE {cohort_cond}",
        cohort_params,
    ).fetchone()
    board.responsiveness = _rows(
        db,
        "SELECT channel, recommendation, preferred_channel, customers "
        "FROM suppression_by_preferred_channel "
        "ORDER BY channel, recommendation, preferred_channel",
    )
    board.ingest = _rows(
        db, "SELECT bucket_start, per_minute FROM ingest_rate ORDER BY bucket_start"
    )
    board.freshness = _rows(
        db,
        "SELECT name, rows, last_write, seconds_since_last_write FROM pipeline_health "
        "WHERE kind = 'table' ORDER BY name",
    )
    board.dead_letters = _rows(
        db,
        "SELECT reason, sum(rows) AS dead_letters FROM pipeline_health "
        "WHERE kind = 'dead_letters' GROUP BY reason ORDER BY dead_letters DESC, reason",
    )
    read_activation(db, board)
    return board


def read_activation(db: duckdb.DuckDBPyConnection, board: Dashboard) -> None:
    """What the activation agents decided: audience sizes now and by day (the last two
    weeks), channel decisions now, the variants' shares of message decisions, and the
    latest feed per customer by the number of categories it spans (not limited to the
    period: decisions are current state)."""
    board.audiences = _rows(
        db,
        "SELECT audience, count(*) AS members FROM audience_members "
        "GROUP BY audience ORDER BY members DESC, audience",
    )
    board.audience_days = _rows(
        db,
        "SELECT audience, day, members, entered, exited FROM audience_size_daily "
        "WHERE day > (SELECT max(day) FROM audience_size_daily) - 14 ORDER BY day, audience",
    )
    board.channel_decisions = _rows(
        db,
        "SELECT channel, decision, customers FROM channel_decision_counts "
        "ORDER BY channel, decision",
    )
    board.variant_share = _rows(
        db,
        "SELECT audience, variant, decisions, share FROM message_variant_share "
        "ORDER BY audience, decisions DESC, variant",
    )
    board.feed = _rows(
        db,
        "SELECT categories, count(*) AS customers, avg(len(items)) AS items "
        "FROM (SELECT *, row_number() OVER (PARTITION BY customer_key "
        "ORDER BY generated_at DESC) AS n FROM recommendations) WHERE n = 1 "
        "GROUP BY categories ORDER BY categories",
    )


def _cohort_condition(period: Period) -> tuple[str, list[Any]]:
    """Cohorts (acquisition months, ``YYYY-MM``) that overlap the period."""
    if period.start is None:
        return "TRUE", []
    return "cohort BETWEEN ? AND ?", [
        period.start.strftime("%Y-%m"),
        period.end.strftime("%Y-%m") if period.end else period.start.strftime("%Y-%m"),
    ]
