"""The journeys stage: sessions, published touchpoints and journeys, per customer.

Consumes ``cust.touchpoints.stitched.v1`` (keyed by customer key, so each
customer is on one partition, in order of arrival). Per customer it keeps the
journey state (``logic.JourneyBuilder``) in the partition's store, committed
with the input offset: a crash never applies a touchpoint twice. Publishes
every touchpoint with its session to ``cust.touchpoints.v1`` and every
converting or expired path to ``cust.journeys.v1``, both keyed by customer key.

Timers, in the partition store: ``h:<customer>`` is due when a held conversion's
grace is over (processing time); ``c:<customer>`` (the state itself) is due
when its pending path expires (event time, against the partition watermark).

Identity merges: a ``merge`` record for key A moves A's state to its new key B
(a ``transfer`` record keyed B) and marks A as merged, so late touchpoints of
A are forwarded to B; B holds its touchpoints from the ``expect`` record until
that transfer arrives.
"""

from __future__ import annotations

from typing import Any

import fastavro
import fastavro.validation
import orjson
from confluent_kafka import Message

from streams.core.catalog import default_catalog
from streams.core.codec import Codec, strip_logical_types
from streams.core.errors import InvalidRecord
from streams.core.settings import Settings
from streams.core.timecheck import sane_time
from streams.core.topics import JOURNEYS, RAW_SOURCES, STITCHED, TOUCHPOINTS
from streams.journeys import watermarks
from streams.journeys.logic import JourneyBuilder, JourneyConfig, new_state, parse_transfer
from streams.runtime.erasures import request_keys
from streams.runtime.stage import BatchContext, Stage, TopicPartitionKey
from streams.runtime.state import PartitionStore

WATERMARK = "watermark"
STATE, HOLD = "c:", "h:"
HOLD_RECHECK_MS = 200  # how often a conversion the watermark holds is looked at
EXPIRY_SCAN_MS = 200  # how often a partition's expired paths are looked for
SOURCES = "w:sources"  # normalise workers' reports of their raw partitions (watermarks.py)


KINDS = frozenset({"touchpoint", "watermark", "expect", "merge", "transfer"})


def check_stitched(rec: dict[str, Any]) -> None:
    """Raise ``InvalidRecord`` for a stitched record that lacks what its kind needs, or
    a touchpoint at a time no stage can compute with (``sane_time``)."""
    kind = rec["kind"]
    if kind not in KINDS:
        raise InvalidRecord("unknown_event_type", f"unknown stitched record kind {kind!r}")
    if kind == "touchpoint":
        if rec["touchpoint"] is None:
            raise InvalidRecord("missing_id", "a touchpoint record without its touchpoint")
        event_ms = rec["touchpoint"]["event_time"]
        if not sane_time(event_ms):
            raise InvalidRecord("impossible_timestamp", f"event time {event_ms}")
    if kind in ("watermark", "expect", "transfer") and not rec["origin"]:
        raise InvalidRecord("missing_id", f"a {kind} record without its origin")
    if kind != "watermark" and not rec["customer_key"]:
        raise InvalidRecord("missing_id", f"a {kind} record without a customer key")


class JourneysStage(Stage):
    """Stitched touchpoints → touchpoints with sessions + journeys (see module docstring)."""

    name = "journeys"
    inputs = (STITCHED,)
    stateful = True

    def __init__(
        self,
        settings: Settings,
        config: JourneyConfig | None = None,
        origin_timeout_ms: int = 30_000,
    ) -> None:
        if config is None:
            conf = settings.journeys
            config = JourneyConfig(
                lookback_days=conf.lookback_days,
                conversion_grace_ms=conf.conversion_grace_ms,
                null_path_grace_ms=conf.null_path_grace_ms,
            )
        self.builder = JourneyBuilder(config)
        self.origin_timeout_ms = origin_timeout_ms
        # the lateness normalise workers hold their reports back by (the same setting)
        self.lateness_ms = settings.journeys.source_lateness_ms
        self._watermarks: dict[TopicPartitionKey, int] = {}
        self._expiry_scanned: dict[TopicPartitionKey, int] = {}  # processing time, ms
        self.source_partitions: set[str] = set()  # every raw partition there is
        touchpoint = default_catalog().value_schema(TOUCHPOINTS).raw
        self._touchpoint_schema = fastavro.parse_schema(strip_logical_types(touchpoint))

    def attach_side_inputs(self, codec: Codec, settings: Settings, bootstrap: str) -> None:
        """Learn which raw source partitions exist: each must be reported before the
        source watermark can pass (see ``watermarks``)."""
        from confluent_kafka.admin import AdminClient

        meta = AdminClient(settings.kafka.confluent_config(bootstrap)).list_topics(timeout=30)
        self.source_partitions = {
            watermarks.partition_id(topic, partition)
            for topic in RAW_SOURCES
            if topic in meta.topics
            for partition in meta.topics[topic].partitions
        }

    def erasure_subject(self, record: dict[str, Any]) -> tuple[str | None, int | None] | None:
        kind = record["kind"]
        if kind == "watermark":
            return None
        if kind == "touchpoint":
            return record["customer_key"], record["touchpoint"]["received_time"]
        return record["customer_key"], record["emitted_at"]  # merges and transfers

    def forget(self, store: PartitionStore, request: dict[str, Any]) -> None:
        """Drop the journey state (touches, sessions, held conversions) of every key of
        the forgotten customer, merged keys included."""
        for key in request_keys(request):
            store.delete(STATE + key)
            store.delete(HOLD + key)

    def _load(self, store: PartitionStore, key: str) -> dict[str, Any]:
        return store.get(STATE + key) or new_state()

    def _save(self, store: PartitionStore, key: str, state: dict[str, Any]) -> None:
        store.put(STATE + key, state, due=self.builder.due(state))
        release = self.builder.release_due(state)
        if release is None:
            store.delete(HOLD + key)
        else:
            store.put(HOLD + key, 1, due=release)

    def process(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: PartitionStore | None,
        ctx: BatchContext,
    ) -> None:
        assert store is not None
        watermark = self._watermarks.get(tp)
        if watermark is None:  # first batch since assignment: the committed watermark
            watermark = store.meta(WATERMARK)
        for _msg, rec in items:
            kind = rec["kind"]
            check_stitched(rec)
            if kind == "watermark":
                # A record without source_partitions comes from a normalise worker of
                # an earlier release (revision 2): its partitions count as unreported
                # until an upgraded worker owns them, which holds conversions back.
                if rec.get("source_partitions") is not None:
                    reports = store.get(SOURCES) or watermarks.new_reports()
                    watermarks.record_report(
                        reports, rec["origin"], rec["source_partitions"], ctx.now_ms
                    )
                    watermarks.forget_silent(reports, ctx.now_ms, self.origin_timeout_ms)
                    store.put(SOURCES, reports)
                ctx.ok()
                continue
            key = rec["customer_key"]
            moved = self._transfer(rec) if kind == "transfer" else None
            state = self._load(store, key)
            if kind == "touchpoint":
                watermark = max(watermark, rec["touchpoint"]["event_time"])
                if not self.builder.hold(state, rec["touchpoint"], ctx.now_ms):
                    self._apply(ctx, state, key, rec["touchpoint"])
                for late in self.builder.release_stale(state, ctx.now_ms):
                    self._apply(ctx, state, key, late)
            elif kind == "expect":
                self.builder.expect(state, rec["origin"])
            elif kind == "merge":
                into = rec["merge_into"]
                if into and into != key:
                    moved_out = self.builder.take_for_transfer(state, into)
                    ctx.emit(
                        STITCHED,
                        into,
                        self._record(
                            "transfer",
                            into,
                            ctx,
                            origin=key,
                            state_json=orjson.dumps(moved_out).decode(),
                        ),
                    )
            elif kind == "transfer":
                if state["merged_into"] and state["merged_into"] != key:
                    ctx.emit(
                        STITCHED,
                        state["merged_into"],
                        {**rec, "customer_key": state["merged_into"]},
                    )
                else:
                    self.builder.absorb(state, moved)
                    for held in self.builder.arrived(state, rec["origin"]):
                        self._apply(ctx, state, key, held)
            self.builder.prune(state, watermark)
            self._save(store, key, state)
            ctx.ok()
        self._watermarks[tp] = watermark
        store.set_meta(WATERMARK, watermark)

    def revoked(self, tp: TopicPartitionKey) -> None:
        """The partition's watermark is read from its store again when it comes back."""
        self._watermarks.pop(tp, None)
        self._expiry_scanned.pop(tp, None)

    def _transfer(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The moved state of a transfer record, checked before anything is applied."""
        try:
            return parse_transfer(rec["state_json"], self._valid_touchpoint)
        except ValueError as exc:
            raise InvalidRecord("invalid_value", f"a transfer's state_json: {exc}") from None

    def _valid_touchpoint(self, tp: Any) -> bool:
        return fastavro.validation.validate(tp, self._touchpoint_schema, raise_errors=False)

    def _apply(
        self, ctx: BatchContext, state: dict[str, Any], key: str, touch: dict[str, Any]
    ) -> None:
        into = state["merged_into"]
        if into and into != key:  # a late touchpoint of a merged key: to its new key
            ctx.emit(
                STITCHED,
                into,
                self._record("touchpoint", into, ctx, touchpoint={**touch, "customer_key": into}),
            )
            return
        ctx.emit(TOUCHPOINTS, key, self.builder.apply_touchpoint(state, key, touch, ctx.now_ms))

    @staticmethod
    def _record(kind: str, key: str, ctx: BatchContext, **fields: Any) -> dict[str, Any]:
        """A ``cust.touchpoints.stitched.v1`` record."""
        return {
            "kind": kind,
            "customer_key": key,
            "touchpoint": None,
            "merge_into": None,
            "origin": None,
            "state_json": None,
            "emitted_at": ctx.now_ms,
            **fields,
        }

    def source_watermark(self, store: PartitionStore, now_ms: int) -> int | None:
        """Event time before which every raw source partition has been processed, by
        the normalise workers heard from in the last ``origin_timeout_ms``."""
        reports = store.get(SOURCES) or watermarks.new_reports()
        watermarks.forget_silent(reports, now_ms, self.origin_timeout_ms)
        return watermarks.source_watermark(
            reports, self.source_partitions, self.lateness_ms, now_ms=now_ms
        )

    def tick(self, tp: TopicPartitionKey, store: PartitionStore | None, ctx: BatchContext) -> None:
        """Publish journeys of released conversions and null paths of expired paths."""
        if store is None:
            return
        source = self.source_watermark(store, ctx.now_ms)
        for hold_key in store.due_keys(ctx.now_ms, HOLD):
            key = hold_key[len(HOLD) :]
            state = self._load(store, key)
            journeys = self.builder.release(state, key, ctx.now_ms, source)
            if not journeys:
                # Still held (the sources' watermark has not passed it): look again in
                # a moment, not at every batch. Under load every batch loaded and
                # rewrote each held customer's whole state (a tenth of the stage's CPU).
                again = max(ctx.now_ms + HOLD_RECHECK_MS, self.builder.release_due(state) or 0)
                store.put(hold_key, 1, due=again)
                continue
            for journey in journeys:
                ctx.emit(JOURNEYS, key, journey)
            self._save(store, key, state)
        # Paths expire only by the sources' watermark: the partition's own runs
        # ahead of slower sources in a backfill, and no watermark means a
        # normalise worker is down or catching up.
        if source is None:
            return
        # At most every EXPIRY_SCAN_MS per partition: a path past the watermark that
        # waits (its null-path grace, a held conversion) stays due, and scanning and
        # rewriting those at every batch was a tenth of the stage's CPU under load.
        if ctx.now_ms - self._expiry_scanned.get(tp, 0) < EXPIRY_SCAN_MS:
            return
        self._expiry_scanned[tp] = ctx.now_ms
        watermark = source
        for state_key in store.due_keys(watermark, STATE):
            key = state_key[len(STATE) :]
            state = self._load(store, key)
            waiting_since = state.get("expired_at")
            journey = self.builder.expire(state, key, watermark, ctx.now_ms)
            if journey is not None:
                ctx.emit(JOURNEYS, key, journey)
            elif state.get("expired_at") == waiting_since:
                continue  # still waiting, nothing changed: nothing to write
            self._save(store, key, state)
