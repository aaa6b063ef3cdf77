"""Which topic feeds which DuckDB table, keyed by what, and how rows are made.

Every table is keyed by the deterministic record id of its topic, so a
replayed or duplicated record replaces its row instead of adding one. Tables
whose topic is "latest wins" (profiles, catalogue) only take a row whose
version is at least the stored one. A table may also be the rows of an array
field of a topic (``explode``), each with some fields of its parent record and
its position in the array.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.sinks.duckdb.ddl import Column, array_item_schema, record_columns
from streams.core.catalog import Catalog
from streams.core.topics import (
    ATTRIBUTION,
    AUDIENCES,
    CATALOG,
    CHANNEL_DECISIONS,
    JOURNEYS,
    MESSAGE_DECISIONS,
    MESSAGE_REQUESTS,
    PROFILES,
    RECOMMENDATIONS,
    SCORES,
    TOUCHPOINTS,
)

INGESTED_AT = Column("_ingested_at", "TIMESTAMP", "When the sink committed this row, UTC.")
PRODUCED_AT = Column(
    "_produced_at",
    "TIMESTAMP",
    "When the record of this row was produced (its Kafka timestamp), UTC; erasure uses it.",
)
POSITION = Column("position", "INTEGER", "Position in the array, from 0.")


@dataclass
class TableSpec:
    """A sink table: its columns, key, optional version column and where rows come from."""

    name: str
    topics: tuple[str, ...]
    key: tuple[str, ...]
    columns: list[Column]
    version: str | None = None
    explode: str | None = None  # array field whose items are the rows
    parent: dict[str, str] = field(default_factory=dict)  # parent field -> column
    description: str = ""
    defaults: dict[str, object] = field(default_factory=dict)  # column -> Avro default

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _pick(columns: list[Column], names: dict[str, str]) -> list[Column]:
    by_name = {c.name: c for c in columns}
    return [
        Column(out, by_name[src].duck_type, by_name[src].doc, by_name[src].pii)
        for src, out in names.items()
    ]


def _defaults(schema: dict) -> dict[str, object]:
    return {f["name"]: f["default"] for f in schema["fields"] if f.get("default") is not None}


def table_specs(catalog: Catalog) -> list[TableSpec]:
    """Every sink table, built from the catalogue's newest schemas."""

    def schema(topic: str) -> dict:
        return catalog.value_schema(topic).raw

    journeys = schema(JOURNEYS)
    profiles = schema(PROFILES)
    journey_parent = {
        "journey_id": "journey_id",
        "customer_key": "customer_key",
        "converted": "converted",
        "conversion_id": "conversion_id",
        "conversion_time": "conversion_time",
    }
    profile_parent = {"customer_key": "customer_key", "version": "profile_version"}
    recommendations = schema(RECOMMENDATIONS)
    feed_parent = {
        "feed_id": "feed_id",
        "customer_key": "customer_key",
        "generated_at": "generated_at",
    }
    dlq_topics = tuple(t for t in catalog.topics if t.endswith(".dlq"))
    dead_letter = catalog.latest("cust.dead-letter.v1").raw

    def plain(
        name: str, topic: str, key: tuple[str, ...], description: str, version: str | None = None
    ) -> TableSpec:
        raw = schema(topic)
        return TableSpec(
            name,
            (topic,),
            key,
            record_columns(raw),
            version=version,
            description=description,
            defaults=_defaults(raw),
        )

    return [
        plain(
            "touchpoints",
            TOUCHPOINTS,
            ("touchpoint_id",),
            "Every customer interaction on every channel.",
        ),
        plain("journeys", JOURNEYS, ("journey_id",), "Conversion paths and null paths."),
        TableSpec(
            "journey_touchpoints",
            (JOURNEYS,),
            ("journey_id", "position"),
            [
                *_pick(record_columns(journeys), journey_parent),
                POSITION,
                *record_columns(array_item_schema(journeys, "touchpoints")),
            ],
            explode="touchpoints",
            parent=journey_parent,
            description="The touches of each journey, one row per touch.",
        ),
        plain(
            "attribution_credits",
            ATTRIBUTION,
            ("credit_id",),
            "Credit per conversion, touch and model.",
        ),
        plain(
            "customer_scores",
            SCORES,
            ("score_id",),
            "New-customer scores at first purchase.",
        ),
        plain(
            "customer_profiles",
            PROFILES,
            ("customer_key",),
            "Latest profile per customer.",
            version="version",
        ),
        TableSpec(
            "channel_responsiveness",
            (PROFILES,),
            ("customer_key", "channel"),
            [
                *_pick(record_columns(profiles), profile_parent),
                POSITION,
                *record_columns(array_item_schema(profiles, "channel_responsiveness")),
            ],
            version="profile_version",
            explode="channel_responsiveness",
            parent=profile_parent,
            description="Responsiveness per customer and messaging channel.",
        ),
        plain(
            "products",
            CATALOG,
            ("product_id",),
            "Product catalogue, latest state per product.",
            version="updated_at",
        ),
        plain(
            "audience_changes",
            AUDIENCES,
            ("change_id",),
            "Every entry into and exit from an audience (the history; audience_members is now).",
        ),
        plain(
            "channel_decisions",
            CHANNEL_DECISIONS,
            ("decision_id",),
            "Every change of a customer's keep/reduce/suppress decision per channel.",
        ),
        plain(
            "message_requests",
            MESSAGE_REQUESTS,
            ("request_id",),
            "Requests to send a customer a message of an audience's set.",
        ),
        plain(
            "message_decisions",
            MESSAGE_DECISIONS,
            ("decision_id",),
            "The variant, channel and attributes chosen for each message request.",
        ),
        plain(
            "recommendations",
            RECOMMENDATIONS,
            ("feed_id",),
            "Each product feed computed for a customer (the newest per customer is in force).",
        ),
        TableSpec(
            "recommendation_items",
            (RECOMMENDATIONS,),
            ("feed_id", "rank"),
            [
                *_pick(record_columns(recommendations), feed_parent),
                *record_columns(array_item_schema(recommendations, "items")),
            ],
            explode="items",
            parent=feed_parent,
            description="The ranked products of each product feed, one row per item.",
        ),
        TableSpec(
            "dead_letters",
            dlq_topics,
            ("dead_letter_id",),
            record_columns(dead_letter),
            description="Every dead letter of every stage.",
            defaults=_defaults(dead_letter),
        ),
    ]
