"""Which topic feeds which DuckDB table, keyed by what, and how rows are made.

Every table is keyed by the deterministic record id of its topic, so a
replayed or duplicated record updates its row instead of adding one. Tables
whose topic is "latest wins" (profiles, catalogue) only take a row whose
version is at least the stored one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from connectors.sinks.duckdb.ddl import Column, array_item_schema, record_columns
from streams.catalog import Catalog

INGESTED_AT = Column(
    "_ingested_at", "TIMESTAMP", pa.timestamp("ms"), "When the sink committed this row, UTC."
)


@dataclass
class TableSpec:
    """A sink table: its columns, key, optional version column and row builder."""

    name: str
    topics: tuple[str, ...]
    key: tuple[str, ...]
    columns: list[Column]
    version: str | None = None
    rows: Callable[[dict[str, Any]], list[dict[str, Any]]] = field(default=lambda r: [r])
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _exploded(
    parent_cols: dict[str, str], array_field: str
) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of an array of records, each with some parent fields and its position."""

    def rows(record: dict[str, Any]) -> list[dict[str, Any]]:
        parent = {out: record[src] for src, out in parent_cols.items()}
        return [{**parent, "position": i, **item} for i, item in enumerate(record[array_field])]

    return rows


def _pick(columns: list[Column], names: dict[str, str]) -> list[Column]:
    by_name = {c.name: c for c in columns}
    return [
        Column(
            out, by_name[src].duck_type, by_name[src].arrow_type, by_name[src].doc, by_name[src].pii
        )
        for src, out in names.items()
    ]


def table_specs(catalog: Catalog) -> list[TableSpec]:
    """Every sink table, built from the catalogue's newest schemas."""

    def schema(topic: str) -> dict[str, Any]:
        return catalog.value_schema(topic).raw

    position = Column("position", "INTEGER", pa.int32(), "Position in the array, from 0.")
    journeys = schema("cust.journeys.v1")
    profiles = schema("cust.profiles.v1")
    journey_parent = {
        "journey_id": "journey_id",
        "customer_key": "customer_key",
        "converted": "converted",
        "conversion_id": "conversion_id",
        "conversion_time": "conversion_time",
    }
    profile_parent = {"customer_key": "customer_key", "version": "profile_version"}
    dlq_topics = tuple(t for t in catalog.topics if t.endswith(".dlq"))
    return [
        TableSpec(
            "touchpoints",
            ("cust.touchpoints.v1",),
            ("touchpoint_id",),
            record_columns(schema("cust.touchpoints.v1")),
            description="Every customer interaction on every channel.",
        ),
        TableSpec(
            "journeys",
            ("cust.journeys.v1",),
            ("journey_id",),
            record_columns(journeys),
            description="Conversion paths and null paths.",
        ),
        TableSpec(
            "journey_touchpoints",
            ("cust.journeys.v1",),
            ("journey_id", "position"),
            [
                *_pick(record_columns(journeys), journey_parent),
                position,
                *record_columns(array_item_schema(journeys, "touchpoints")),
            ],
            rows=_exploded(journey_parent, "touchpoints"),
            description="The touches of each journey, one row per touch.",
        ),
        TableSpec(
            "attribution_credits",
            ("cust.attribution.v1",),
            ("credit_id",),
            record_columns(schema("cust.attribution.v1")),
            description="Credit per conversion, touch and model.",
        ),
        TableSpec(
            "customer_scores",
            ("cust.customer-scores.v1",),
            ("score_id",),
            record_columns(schema("cust.customer-scores.v1")),
            description="New-customer scores at first purchase.",
        ),
        TableSpec(
            "customer_profiles",
            ("cust.profiles.v1",),
            ("customer_key",),
            record_columns(profiles),
            version="version",
            description="Latest profile per customer.",
        ),
        TableSpec(
            "channel_responsiveness",
            ("cust.profiles.v1",),
            ("customer_key", "channel"),
            [
                *_pick(record_columns(profiles), profile_parent),
                position,
                *record_columns(array_item_schema(profiles, "channel_responsiveness")),
            ],
            version="profile_version",
            rows=_exploded(profile_parent, "channel_responsiveness"),
            description="Responsiveness per customer and messaging channel.",
        ),
        TableSpec(
            "products",
            ("cust.catalog.products.v1",),
            ("product_id",),
            record_columns(schema("cust.catalog.products.v1")),
            version="updated_at",
            description="Product catalogue, latest state per product.",
        ),
        TableSpec(
            "dead_letters",
            dlq_topics,
            ("dead_letter_id",),
            record_columns(catalog.latest("cust.dead-letter.v1").raw),
            description="Every dead letter of every stage.",
        ),
    ]
