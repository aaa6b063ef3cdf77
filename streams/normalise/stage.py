"""The normalise stage: raw source topics → customer-keyed touchpoints.

Consumes every raw source topic, validates and normalises each event
(``logic.Normaliser``: channel grouping, device, sentiment, catalogue join,
customer key), and publishes to the internal ``cust.touchpoints.stitched.v1``
keyed by the stitched customer key. Invalid events go to ``<raw topic>.dlq``.
Identity evidence found in events (identify/alias calls, order emails, linked
handles) is published to ``cust.identity.raw.v1``; when evidence changes a
customer's key, a merge command for the old key goes to the journeys stage.

Stateless apart from its side inputs (identity graph, catalogue): offsets are
the consumer group's, committed after the broker acknowledged the outputs.
Guarantee: every raw event becomes exactly one touchpoint id or one dead letter.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from streams.codec import Codec
from streams.errors import InvalidRecord
from streams.identity.graph import IdentityGraph, key_of, node
from streams.normalise.logic import SOURCE_TOPICS, Normaliser
from streams.settings import Settings
from streams.sideinput import SideInput
from streams.stage import BatchContext, Stage, TopicPartitionKey

STITCHED = "cust.touchpoints.stitched.v1"
IDENTITY = "cust.identity.raw.v1"
CATALOG = "cust.catalog.products.v1"


def identity_event(group: list[str], tp: dict[str, Any]) -> dict[str, Any]:
    """A ``cust.identity.raw.v1`` record for evidence found in a touchpoint's source event."""
    identifiers = [{"kind": n.partition(":")[0], "value": n.partition(":")[2]} for n in group]
    return {
        "event_id": f"{tp['touchpoint_id']}-identity",
        "source_system": tp["source_system"],
        "event_type": "identify" if tp["event_type"] in ("identify", "alias") else "observed",
        "customer_id": tp["user_id"],
        "identifiers": identifiers,
        "traits_json": None,
        "occurred_at": tp["event_time"],
        "received_at": tp["received_time"],
    }


def identity_nodes(record: dict[str, Any]) -> list[str]:
    nodes = [node(i["kind"], i["value"]) for i in record["identifiers"]]
    if record.get("customer_id"):
        nodes.append(node("user_id", record["customer_id"]))
    return nodes


class NormaliseStage(Stage):
    """Raw topics → stitched touchpoints (see module docstring)."""

    name = "normalise"
    inputs = SOURCE_TOPICS

    def __init__(self, normaliser: Normaliser | None = None) -> None:
        self.normaliser = normaliser or Normaliser(IdentityGraph(), {})
        self.graph = self.normaliser.graph
        self.normaliser.link = self._link
        self.side_inputs: list[SideInput] = []
        self._pending_merges: list[tuple[str, str]] = []

    def attach_side_inputs(self, codec: Codec, settings: Settings, bootstrap: str) -> None:
        catalog = self.normaliser.catalog

        def apply_product(record: dict[str, Any]) -> None:
            catalog[record["product_id"]] = {
                "category": record["category"],
                "brand": record.get("brand"),
            }

        self.side_inputs = [
            SideInput(IDENTITY, self._apply_identity, codec, settings, bootstrap),
            SideInput(CATALOG, apply_product, codec, settings, bootstrap),
        ]

    def _apply_identity(self, record: dict[str, Any]) -> None:
        self._link(identity_nodes(record))

    def _link(self, nodes: list[str]) -> bool:
        """Link nodes in the graph; remember merges of customer keys it caused."""
        before = {self.graph.customer_key(n) for n in nodes} - {None}
        changed = self.graph.link(nodes)
        if changed:
            after = self.graph.customer_key(nodes[0])
            self._pending_merges += [(old, after) for old in before if old != after]
            # ids seen for the first time might have been used as keys already
            self._pending_merges += [
                (key_of(n), after) for n in nodes if key_of(n) != after and key_of(n) not in before
            ]
        return changed

    def poll_side_inputs(self) -> None:
        for side in self.side_inputs:
            side.poll()

    def close(self) -> None:
        for side in self.side_inputs:
            side.close()
        self.side_inputs = []

    def process(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: Any,
        ctx: BatchContext,
    ) -> None:
        topic = tp[0]
        normalise = self.normaliser.normalise
        now = ctx.now_ms
        for msg, record in items:
            try:
                result = normalise(topic, record, now)
            except InvalidRecord as exc:
                ctx.dead_letter(msg, exc, event_id=record.get("event_id"))
                continue
            touchpoint = result.touchpoint
            # Merges first: the new key must expect the old key's history before
            # it sees any touchpoint keyed by it.
            self._flush_merges(ctx)
            for group in result.identity:
                if len(group) > 1:
                    ctx.emit(
                        IDENTITY, touchpoint["customer_key"], identity_event(group, touchpoint)
                    )
            ctx.emit(
                STITCHED,
                touchpoint["customer_key"],
                {
                    "kind": "touchpoint",
                    "customer_key": touchpoint["customer_key"],
                    "touchpoint": touchpoint,
                    "merge_into": None,
                    "origin": None,
                    "state_json": None,
                    "emitted_at": now,
                },
            )
            ctx.ok()
        self._flush_merges(ctx)

    def _flush_merges(self, ctx: BatchContext) -> None:
        """Tell the journeys stage about changed customer keys: old → new.

        ``expect`` goes to the new key (hold its touchpoints), ``merge`` to the
        old key (send its history over), both before any touchpoint keyed new.
        """
        for old, new in dict.fromkeys(self._pending_merges):
            base = {
                "touchpoint": None,
                "merge_into": None,
                "origin": None,
                "state_json": None,
                "emitted_at": ctx.now_ms,
            }
            ctx.emit(STITCHED, new, {**base, "kind": "expect", "customer_key": new, "origin": old})
            ctx.emit(
                STITCHED, old, {**base, "kind": "merge", "customer_key": old, "merge_into": new}
            )
        self._pending_merges.clear()
