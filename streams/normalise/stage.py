"""The normalise stage: raw source topics → customer-keyed touchpoints.

Consumes every raw source topic, validates and normalises each event
(``logic.Normaliser``: channel grouping, device, sentiment, catalogue join,
customer key), and publishes to the internal ``cust.touchpoints.stitched.v1``
keyed by the stitched customer key. Invalid events go to ``<raw topic>.dlq``.
Identity evidence found in events (identify/alias calls, order emails, linked
handles) is published to ``cust.identity.raw.v1``; when evidence changes a
customer's key, a merge command for the old key goes to the journeys stage.

Source watermarks: after each batch the stage tells every stitched partition
how far, in event time, it has processed each raw partition it owns (its latest
event time whose outputs the broker acknowledged, less ``lateness_ms``) and
which of them are caught up. The journeys stage takes the minimum over every
raw partition, whoever owns it now (``streams.journeys.watermarks``), and waits
for it before it closes a conversion or a null path, so activity still in
flight on a slower source, or on a partition that just changed hands, is not
missed.

Erasure: a forgotten customer's identity group leaves the graph, and their
events (and identity evidence) received before the request, or at any time
after an opt-out, are suppressed: counted in
``journeybus_events_suppressed_total``, never published.

Stateless apart from its side inputs (identity graph, catalogue): offsets are
the consumer group's, committed after the broker acknowledged the outputs.
Guarantee: every raw event becomes exactly one touchpoint id or one dead letter,
or is suppressed as a forgotten customer's.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

from streams.core import metrics
from streams.core.codec import Codec
from streams.core.errors import InvalidRecord
from streams.core.keys import key_of, node, nodes_for_key
from streams.core.settings import Settings
from streams.core.topics import CATALOG, IDENTITY, RAW_SOURCES, STITCHED
from streams.identity.graph import IdentityGraph
from streams.normalise.logic import Normaliser
from streams.runtime.erasures import request_nodes
from streams.runtime.sideinput import SideInput
from streams.runtime.stage import BatchContext, Stage, TopicPartitionKey


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
    inputs = RAW_SOURCES

    def __init__(
        self,
        settings: Settings,
        normaliser: Normaliser | None = None,
        lateness_ms: int | None = None,
        heartbeat_s: float = 1.0,
    ) -> None:
        self.origin = f"normalise-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lateness_ms = (
            lateness_ms if lateness_ms is not None else settings.journeys.source_lateness_ms
        )
        self.heartbeat_s = heartbeat_s
        # raw partition -> max event time of its valid records processed so far
        self.progress: dict[TopicPartitionKey, int] = {}
        self.stitched_partitions = 0
        # raw partition -> max event time of records whose outputs the broker acked
        self.acked: dict[TopicPartitionKey, float] = {}
        self._next_acked: dict[TopicPartitionKey, float] = {}
        self._last_watermark: int | None = None
        self._last_report: list[dict[str, Any]] = []
        self._last_emit = 0.0
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
        for side in self.side_inputs:
            side.catch_up()  # restore the identity graph and catalogue before any event
        meta = self.side_inputs[0].consumer.list_topics(STITCHED, timeout=30)
        self.stitched_partitions = len(meta.topics[STITCHED].partitions)

    def _apply_identity(self, record: dict[str, Any]) -> None:
        nodes = identity_nodes(record)
        if self.erasures.keys:  # evidence about a forgotten customer is not relearned
            received = record["received_at"]
            nodes = [n for n in nodes if not self.erasures.hides(key_of(n), received)]
        self._link(nodes, always=False)

    def on_erasure(self, request: dict[str, Any]) -> None:
        """Forget the customer's identity group: the identifiers named in the request,
        and whatever this worker's graph has linked to them since."""
        self.graph.forget(request_nodes(request) + nodes_for_key(request["customer_key"]))

    def _suppressed(self, touchpoint: dict[str, Any], identity: list[list[str]]) -> bool:
        """True for an event of a forgotten customer received before the erasure (a
        replay) or after an opt-out; the identity evidence it taught the graph is
        forgotten again and its merges are not sent."""
        keys = [touchpoint[f] for f in ("customer_key", "anonymous_id", "user_id", "device_id")]
        keys += [key_of(n) for group in identity for n in group]
        if not self.erasures.hides_any(keys, touchpoint["received_time"]):
            return False
        self.graph.forget([n for group in identity for n in group])
        self._pending_merges.clear()
        return True

    def _link(self, nodes: list[str], always: bool = True) -> bool:
        """Link nodes in the graph; remember the customer-key merges this evidence implies.

        Every identifier of the group that was (or may have been) used as a key
        merges into the group's key. Evidence in the stage's own input emits its
        merges every time it is processed (a batch replayed after a crash may
        find the link already known, while its merges never reached the broker);
        a repeated merge moves nothing twice. Evidence read back from the
        identity topic (``always=False``) only does when it taught this worker
        something new, so a restart does not replay the whole history's merges.
        """
        before = {self.graph.customer_key(n) for n in nodes} - {None}
        changed = self.graph.link(nodes)
        after = self.graph.customer_key(nodes[0]) if nodes else None
        if after is not None and (always or changed):
            olds = before | {key_of(n) for n in nodes}
            self._pending_merges += [(old, after) for old in sorted(olds) if old != after]
        return changed

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
        progress = self.progress.get(tp, 0)
        for msg, record in items:
            try:
                result = normalise(topic, record, now)
            except InvalidRecord as exc:
                ctx.dead_letter(msg, exc, event_id=record.get("event_id"))
                continue
            touchpoint = result.touchpoint
            if self.erasures.keys and self._suppressed(touchpoint, result.identity):
                metrics.EVENTS_SUPPRESSED.labels(self.name, "erased").inc()
                ctx.ok()
                continue
            # Merges first: the new key must expect the old key's history before
            # it sees any touchpoint keyed by it.
            self._flush_merges(ctx)
            for group in result.identity:
                if len(group) > 1:
                    ctx.emit(
                        IDENTITY, touchpoint["customer_key"], identity_event(group, touchpoint)
                    )
            progress = max(progress, touchpoint["event_time"])
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
        self.progress[tp] = progress
        self._flush_merges(ctx)

    def discard(self) -> None:
        """Merges of a batch being redone are not sent (the redo finds them again)."""
        self._pending_merges.clear()

    def source_watermark(
        self, assignment: set[TopicPartitionKey], caught_up: set[TopicPartitionKey]
    ) -> int | None:
        """Event time up to which every owned raw partition has been processed and
        its outputs acknowledged by the broker.

        The minimum over the partitions that still have records to read; a
        caught-up partition does not hold it back. None while a partition with
        records to read has delivered none yet. Only ``acked`` progress counts:
        a batch's watermark may reach one stitched partition while the same
        batch's records for another (a merge, an anonymous key's touchpoints)
        are lost in a crash and replayed later.
        """
        acked = self.acked
        behind = [tp for tp in assignment if tp not in caught_up]
        if any(tp not in acked for tp in behind):
            return None
        known = [acked[tp] for tp in assignment if tp in acked]
        pending = [acked[tp] for tp in behind]
        low = min(pending) if pending else max(known, default=0)
        return int(low) - self.lateness_ms if low > 0 else None

    def partition_progress(
        self, assignment: set[TopicPartitionKey], caught_up: set[TopicPartitionKey]
    ) -> list[dict[str, Any]]:
        """The ``source_partitions`` of a watermark record: per owned raw partition,
        the event time its acknowledged records reached less ``lateness_ms`` (None:
        none yet) and whether it is caught up."""
        report = []
        for tp in sorted(assignment):
            acked = self.acked.get(tp)
            report.append(
                {
                    "topic": tp[0],
                    "partition": tp[1],
                    "progress": int(acked) - self.lateness_ms if acked else None,
                    "caught_up": tp in caught_up,
                }
            )
        return report

    def after_batch(
        self,
        ctx: BatchContext,
        assignment: set[TopicPartitionKey],
        caught_up: Callable[[], set[TopicPartitionKey]],
    ) -> None:
        """Publish the progress of every owned raw partition to every stitched partition
        when it changed, and at least every ``heartbeat_s`` (the journeys stage forgets
        a worker it has not heard from), also before anything was processed: a
        partition reported without progress holds conversions back."""
        now = time.monotonic()
        # after_batch runs once the previous batch's outputs were acknowledged:
        # what this batch processed is acknowledged at the next call.
        acked_now, self._next_acked = (
            self._next_acked,
            dict(self.progress),
        )
        self.acked.update(acked_now)
        if now - self._last_emit < 0.2 or not self.stitched_partitions or not assignment:
            return  # at most five per second
        done = caught_up()
        report = self.partition_progress(assignment, done)
        if report == self._last_report and now - self._last_emit < self.heartbeat_s:
            return
        watermark = self.source_watermark(assignment, done)
        if watermark is not None:  # revision 2's per-worker minimum, for its readers
            self._last_watermark = max(watermark, self._last_watermark or watermark)
        self._last_report = report
        self._last_emit = now
        for partition in range(self.stitched_partitions):
            ctx.emit(
                STITCHED,
                None,
                {
                    "kind": "watermark",
                    "customer_key": "",
                    "touchpoint": None,
                    "merge_into": None,
                    "origin": self.origin,
                    "state_json": None,
                    "watermark": self._last_watermark,
                    "source_partitions": report,
                    "emitted_at": ctx.now_ms,
                },
                partition=partition,
            )

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
