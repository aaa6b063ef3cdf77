"""The attribution stage: converting journeys → credits under every model.

Consumes ``cust.journeys.v1`` and publishes ``cust.attribution.v1`` keyed by
customer key. Rule-based credits depend on the journey alone. The Markov
model is global: every attribution worker reads all journeys (conversions and
null paths) as a side input, keeps their collapsed paths by journey id (a
replayed journey replaces itself, it is not counted twice), and re-solves the
removal effects when paths changed, at most every ``recompute_interval_s``.
Each credit row carries the model version it was computed with.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Message

from streams.attribution.credits import journey_credits
from streams.attribution.markov import MarkovModel, MarkovResult, collapse
from streams.codec import Codec
from streams.settings import Settings
from streams.sideinput import SideInput
from streams.stage import BatchContext, Stage, TopicPartitionKey

JOURNEYS = "cust.journeys.v1"
ATTRIBUTION = "cust.attribution.v1"


class GlobalPaths:
    """Collapsed paths of every journey, by journey id, for the Markov model."""

    def __init__(self, order: int = 1) -> None:
        self.order = order
        self.by_journey: dict[str, tuple[tuple[str, ...], bool, float]] = {}
        self.changed = False

    def apply(self, journey: dict[str, Any]) -> None:
        entry = (
            collapse([t["channel"] for t in journey["touchpoints"]]),
            bool(journey["converted"]),
            float(journey["conversion_value"] or 0.0),
        )
        if self.by_journey.get(journey["journey_id"]) != entry:
            self.by_journey[journey["journey_id"]] = entry
            self.changed = True

    def model(self) -> MarkovModel:
        model = MarkovModel(self.order)
        for path, converted, value in self.by_journey.values():
            if converted:
                model.add(path, conversions=1, value=value)
            else:
                model.add(path, nulls=1)
        return model


class AttributionStage(Stage):
    """Journeys → attribution credits (see module docstring)."""

    name = "attribution"
    inputs = (JOURNEYS,)

    def __init__(
        self, order: int = 1, recompute_interval_s: float = 5.0, half_life_hours: float = 168.0
    ) -> None:
        self.paths = GlobalPaths(order)
        self.recompute_interval_s = recompute_interval_s
        self.half_life_hours = half_life_hours
        self.result: MarkovResult | None = None
        self._solved_at = 0.0
        self.side_inputs: list[SideInput] = []

    def attach_side_inputs(self, codec: Codec, settings: Settings, bootstrap: str) -> None:
        self.side_inputs = [SideInput(JOURNEYS, self.paths.apply, codec, settings, bootstrap)]

    def erasure_subject(self, record: dict[str, Any]) -> tuple[str | None, int | None] | None:
        # The Markov model keeps every journey's channel path by journey id: counts
        # of anonymous paths, no identifier, so a forgotten customer's paths stay.
        return record["customer_key"], record["emitted_at"]

    def poll_side_inputs(self) -> None:
        super().poll_side_inputs()
        now = time.monotonic()
        if self.paths.changed and now - self._solved_at >= self.recompute_interval_s:
            self.result = self.paths.model().solve()
            self.paths.changed = False
            self._solved_at = now

    def process(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: Any,
        ctx: BatchContext,
    ) -> None:
        shares = self.result.shares if self.result else {}
        version = self.result.version if self.result else f"markov-o{self.paths.order}-none"
        for _msg, journey in items:
            if journey["converted"]:
                for credit in journey_credits(
                    journey, shares, version, ctx.now_ms, self.half_life_hours
                ):
                    ctx.emit(ATTRIBUTION, journey["customer_key"], credit)
            ctx.ok()
