"""The attribution stage: converting journeys → credits under every model.

Consumes ``cust.journeys.v1`` and publishes ``cust.attribution.v1`` keyed by
customer key. Rule-based credits depend on the journey alone. The data-driven
models (Markov, Shapley exact and simplified) are global: every attribution
worker reads all journeys (conversions and null paths) as a side input, keeps
their channel paths by journey id (a replayed journey replaces itself, it is
not counted twice), and re-solves the models when paths changed, at most
every ``recompute_interval_s``. Solved models are adopted only when some
channel's share under one of them moved by more than ``restate_tolerance``;
each partition then restates the data-driven credits of its earlier
conversions under them (``restate.py``). Each credit row carries the model
version it was computed with.

Guarantees: credits of a conversion are keyed by customer key (the journey's
partition order) with deterministic ids, so a replayed journey or a
restatement replaces rows and never adds any; the remembered conversions are
committed with the input offsets.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Message

from streams.attribution.credits import Learned, journey_credits, learned_credits
from streams.attribution.markov import MarkovModel
from streams.attribution.restate import PartitionModel, shares_moved
from streams.attribution.shapley import ShapleyModel
from streams.core.codec import Codec
from streams.core.errors import InvalidRecord
from streams.core.settings import AttributionSettings, Settings
from streams.core.topics import ATTRIBUTION, JOURNEYS
from streams.journeys.logic import check_conversion
from streams.runtime.erasures import request_keys
from streams.runtime.sideinput import SideInput
from streams.runtime.stage import OFF_PATH_FETCH_WAIT_MS, BatchContext, Stage, TopicPartitionKey
from streams.runtime.state import PartitionStore

RESTATE_PER_TICK = 2_000  # conversions restated per partition and tick (bounded batches)
DAY_MS = 86_400_000


class GlobalPaths:
    """The channel path of every journey, by journey id, for the data-driven models."""

    def __init__(self, order: int = 1) -> None:
        self.order = order
        self.by_journey: dict[str, tuple[tuple[str, ...], bool, float]] = {}
        self.changed = False

    def apply(self, journey: dict[str, Any]) -> None:
        if journey["converted"]:
            check_conversion(journey)  # the stage dead-letters it: it is no conversion
        entry = (
            tuple(t["channel"] for t in journey["touchpoints"]),
            bool(journey["converted"]),
            float(journey["conversion_value"] or 0.0),
        )
        if self.by_journey.get(journey["journey_id"]) != entry:
            self.by_journey[journey["journey_id"]] = entry
            self.changed = True

    def models(self) -> tuple[MarkovModel, ShapleyModel]:
        markov, shapley = MarkovModel(self.order), ShapleyModel()
        for path, converted, value in self.by_journey.values():
            for model in (markov, shapley):
                if converted:
                    model.add(path, conversions=1, value=value)
                else:
                    model.add(path, nulls=1)
        return markov, shapley

    def learn(self) -> Learned:
        """Every data-driven model solved over the paths held now."""
        markov, shapley = self.models()
        result = markov.solve()
        return Learned(
            result.version,
            result.shares,
            result.value_shares,
            shapley.solve(simplified=False),
            shapley.solve(simplified=True),
        )


class AttributionStage(Stage):
    """Journeys → attribution credits (see module docstring)."""

    name = "attribution"
    inputs = (JOURNEYS,)
    stateful = True  # the conversions each partition credited, for restatements
    fetch_wait_ms = OFF_PATH_FETCH_WAIT_MS  # not on the touchpoints' freshness path

    def __init__(self, settings: Settings, config: AttributionSettings | None = None) -> None:
        self.config = config or settings.attribution
        self.paths = GlobalPaths(self.config.markov_order)
        self.learned = Learned(f"markov-o{self.config.markov_order}-none")  # adopted
        self.shares: dict[str, float] = {}  # the adopted models' summary(); empty: none yet
        self._solved_at = 0.0
        self.side_inputs: list[SideInput] = []

    def attach_side_inputs(self, codec: Codec, settings: Settings, bootstrap: str) -> None:
        self.side_inputs = [SideInput(JOURNEYS, self.paths.apply, codec, settings, bootstrap)]

    def erasure_subject(self, record: dict[str, Any]) -> tuple[str | None, int | None] | None:
        # The Markov model keeps every journey's channel path by journey id: counts
        # of anonymous paths, no identifier, so a forgotten customer's paths stay.
        return record["customer_key"], record["emitted_at"]

    def forget(self, store: PartitionStore, request: dict[str, Any]) -> None:
        self._partition(store).forget(request_keys(request))

    def poll_side_inputs(self) -> None:
        super().poll_side_inputs()
        now = time.monotonic()
        if self.paths.changed and now - self._solved_at >= self.config.recompute_interval_s:
            learned = self.paths.learn()
            self.paths.changed = False
            self._solved_at = now
            shares = learned.summary()
            if not self.shares or shares_moved(self.shares, shares) > self.config.restate_tolerance:
                self.learned, self.shares = learned, shares

    def _partition(self, store: PartitionStore) -> PartitionModel:
        return PartitionModel(
            store, self.config.restate_tolerance, self.config.restate_days * DAY_MS
        )

    def process(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: PartitionStore | None,
        ctx: BatchContext,
    ) -> None:
        assert store is not None
        partition = self._partition(store)
        epoch = 0
        if self.shares:
            epoch = partition.sync(self.learned.version, self.shares, ctx.now_ms)["epoch"]
        for msg, journey in items:
            if journey["converted"]:
                try:
                    check_conversion(journey)
                except InvalidRecord as exc:
                    ctx.dead_letter(msg, exc, event_id=journey["journey_id"] or None)
                    continue
                for credit in journey_credits(
                    journey, self.learned, ctx.now_ms, self.config.half_life_hours
                ):
                    ctx.emit(ATTRIBUTION, journey["customer_key"], credit)
                partition.remember(journey, epoch)
            ctx.ok()

    def tick(self, tp: TopicPartitionKey, store: PartitionStore | None, ctx: BatchContext) -> None:
        """Restate conversions credited under an earlier model, a bounded number per
        tick, and forget those past the window."""
        if store is None:
            return
        partition = self._partition(store)
        partition.expire()
        if not self.shares:
            return
        model = partition.sync(self.learned.version, self.shares, ctx.now_ms)
        for journey in partition.stale(model["epoch"], RESTATE_PER_TICK):
            for credit in learned_credits(journey, self.learned, ctx.now_ms):
                ctx.emit(ATTRIBUTION, journey["customer_key"], credit)
