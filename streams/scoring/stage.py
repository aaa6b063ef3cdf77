"""The scoring stage: a customer's first purchase → ``cust.customer-scores.v1``.

Consumes ``cust.journeys.v1`` (keyed by customer, so one customer's conversions
arrive in order: the first converting journey is the first purchase). The model
is global: every scoring worker reads all journeys (with their orders'
category and discount use) as a side input and refits BG/NBD + Gamma-Gamma at
most every ``fit_interval_s`` when purchases grew by 5% (or an hour passed, or a
customer was forgotten; ``streams.scoring.model``).

A first purchase is held in the partition's state until a model exists (a
minimum of customers and repeat customers).
State (scored customers, holds) is committed with the input offset, so a
restarted worker scores nobody twice; the score id is deterministic (customer
and first order), so a replayed score replaces itself downstream. Each score
carries the model version it came from.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Message

from streams.core.codec import Codec
from streams.core.errors import InvalidRecord
from streams.core.settings import Settings
from streams.core.topics import JOURNEYS, SCORES
from streams.journeys.logic import check_conversion
from streams.runtime.erasures import request_keys
from streams.runtime.sideinput import SideInput
from streams.runtime.stage import OFF_PATH_FETCH_WAIT_MS, BatchContext, Stage, TopicPartitionKey
from streams.runtime.state import PartitionStore
from streams.scoring.model import (
    FirstPurchase,
    PurchaseHistory,
    ScoringModel,
    fit_scoring_model,
    order_details,
    score_new_customer,
)

SCORED = "scored:"
HOLD = "hold:"
FIT_TIME_SHARE_INVERSE = 10  # a refit waits ten times the last fit's duration


class ScoringStage(Stage):
    """First purchases → new-customer scores (see module docstring)."""

    name = "scoring"
    inputs = (JOURNEYS,)
    stateful = True
    fetch_wait_ms = OFF_PATH_FETCH_WAIT_MS  # not on the touchpoints' freshness path

    def __init__(
        self,
        settings: Settings,
        fit_interval_s: float = 10.0,
        model_wait_ms: int = 2_000,
        refit_growth: float = 0.05,
        max_fit_age_s: float = 3_600.0,
    ) -> None:
        self.history = PurchaseHistory()
        self.model: ScoringModel | None = None
        self.fit_interval_s = fit_interval_s
        self.model_wait_ms = model_wait_ms
        self.refit_growth = refit_growth
        self.max_fit_age_s = max_fit_age_s
        self._fitted_at = 0.0
        self._fit_seconds = 0.0  # how long the last fit took
        self._fitted_orders = 0
        self._forgot = False  # an erasure since the last fit
        self.side_inputs: list[SideInput] = []

    def attach_side_inputs(self, codec: Codec, settings: Settings, bootstrap: str) -> None:
        self.side_inputs = [SideInput(JOURNEYS, self._apply_journey, codec, settings, bootstrap)]

    def _apply_journey(self, journey: dict[str, Any]) -> None:
        if not self.erasures.hides(journey["customer_key"], journey["emitted_at"]):
            self.history.apply_journey(journey)

    def erasure_subject(self, record: dict[str, Any]) -> tuple[str | None, int | None] | None:
        return record["customer_key"], record["emitted_at"]

    def forget(self, store: PartitionStore, request: dict[str, Any]) -> None:
        for key in request_keys(request):
            store.delete(SCORED + key)
            store.delete(HOLD + key)

    def on_erasure(self, request: dict[str, Any]) -> None:
        """The forgotten customer's purchases leave the model's training data (the next
        fit no longer sees them)."""
        self.history.forget(request_keys(request))
        self._forgot = True

    def poll_side_inputs(self) -> None:
        super().poll_side_inputs()
        now = time.monotonic()
        if self._fit_due(now):
            self.history.changed = self._forgot = False
            self._fitted_orders = self.history.orders
            self.model = fit_scoring_model(self.history, self.model) or self.model
            self._fitted_at = time.monotonic()
            self._fit_seconds = self._fitted_at - now

    def _fit_due(self, now: float) -> bool:
        """Refit only when it can matter: no model yet, a forgotten customer to drop,
        purchases grown by ``refit_growth`` since the last fit, or new purchases and a
        fit older than ``max_fit_age_s``; and at most every ``fit_interval_s`` or ten
        times the last fit's duration, whichever is longer, so fitting takes at most
        a tenth of the stage's time. (Refits every 10 s were three quarters of the
        stage's CPU under load, and a fit's cost grows with the history.)"""
        wait = max(self.fit_interval_s, FIT_TIME_SHARE_INVERSE * self._fit_seconds)
        if not self.history.changed or now - self._fitted_at < wait:
            return False
        if self.model is None or self._forgot:
            return True
        grown = self.history.orders >= self._fitted_orders * (1 + self.refit_growth)
        return grown or now - self._fitted_at >= self.max_fit_age_s

    def process(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: PartitionStore | None,
        ctx: BatchContext,
    ) -> None:
        assert store is not None
        for msg, journey in items:
            if journey["converted"]:
                try:
                    check_conversion(journey)
                except InvalidRecord as exc:
                    ctx.dead_letter(msg, exc, event_id=journey["journey_id"] or None)
                    continue
            ctx.ok()
            if not journey["converted"]:
                continue
            key = journey["customer_key"]
            if store.get(SCORED + key) is not None or store.get(HOLD + key) is not None:
                continue  # a repeat purchase, or the first one already waiting
            touches = journey["touchpoints"]
            first = {
                "customer_key": key,
                "order_id": journey["conversion_id"],
                "time_ms": int(journey["conversion_time"]),
                "value": float(journey["conversion_value"]),
                "currency": journey["currency"],
                "channel": touches[0]["channel"] if touches else "Direct",
                "details": order_details(journey),
            }
            store.put(HOLD + key, first, due=ctx.now_ms)
        self.tick(tp, store, ctx)

    def tick(self, tp: TopicPartitionKey, store: PartitionStore | None, ctx: BatchContext) -> None:
        """Score the held first purchases once a model exists."""
        if store is None:
            return
        for hold_key in store.due_keys(ctx.now_ms, HOLD):
            held = store.get(hold_key)
            if self.model is None:
                store.put(hold_key, held, due=ctx.now_ms + self.model_wait_ms)
                continue
            # holds from before journeys revision 2 have no details and a deadline
            details = held.get("details")
            first = FirstPurchase(
                **{k: v for k, v in held.items() if k not in ("details", "deadline")}
            )
            score = score_new_customer(
                self.model, first, tuple(details) if details else None, ctx.now_ms
            )
            ctx.emit(SCORES, first.customer_key, score)
            store.delete(hold_key)
            store.put(SCORED + first.customer_key, first.order_id)
