"""The profiles stage: touchpoints (and new-customer scores) → ``cust.profiles.v1``.

Consumes ``cust.touchpoints.v1`` (keyed by customer, in order per customer) and
keeps one profile per customer key in the partition's state, committed with the
input offset. After each batch every profile that changed is published once,
with a version one higher (consumers keep the highest; the sink's
``customer_profiles`` and ``channel_responsiveness`` tables do). New-customer
scores come in as a side input (``cust.customer-scores.v1``, every score) and
set the inferred ``predicted_value_365d`` of the customer's profile.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Message

from streams.core.codec import Codec
from streams.core.settings import Settings
from streams.core.topics import PROFILES, SCORES, TOUCHPOINTS
from streams.profiles.logic import apply_score, apply_touchpoint, new_profile, profile_record
from streams.runtime.erasures import request_keys
from streams.runtime.sideinput import SideInput
from streams.runtime.stage import OFF_PATH_FETCH_WAIT_MS, BatchContext, Stage, TopicPartitionKey
from streams.runtime.state import PartitionStore

PROFILE = "profile:"


class ProfilesStage(Stage):
    """Touchpoints → customer profiles with confidence (see module docstring)."""

    name = "profiles"
    inputs = (TOUCHPOINTS,)
    stateful = True
    fetch_wait_ms = OFF_PATH_FETCH_WAIT_MS  # not on the touchpoints' freshness path

    def __init__(self, settings: Settings) -> None:
        self.scores: dict[str, dict[str, Any]] = {}
        self.pending_scores: set[str] = set()
        self.side_inputs: list[SideInput] = []

    def attach_side_inputs(self, codec: Codec, settings: Settings, bootstrap: str) -> None:
        self.side_inputs = [SideInput(SCORES, self._take_score, codec, settings, bootstrap)]

    def erasure_subject(self, record: dict[str, Any]) -> tuple[str | None, int | None] | None:
        return record["customer_key"], record["received_time"]

    def forget(self, store: PartitionStore, request: dict[str, Any]) -> None:
        for key in request_keys(request):
            store.delete(PROFILE + key)

    def on_erasure(self, request: dict[str, Any]) -> None:
        for key in request_keys(request):
            self.scores.pop(key, None)
            self.pending_scores.discard(key)

    def _take_score(self, score: dict[str, Any]) -> None:
        key = score["customer_key"]
        if self.erasures.hides(key, score["scored_at"]):
            return
        if self.scores.get(key, {}).get("score_id") != score["score_id"]:
            self.scores[key] = score
            self.pending_scores.add(key)

    def process(
        self,
        tp: TopicPartitionKey,
        items: list[tuple[Message, dict[str, Any]]],
        store: PartitionStore | None,
        ctx: BatchContext,
    ) -> None:
        assert store is not None
        profiles: dict[str, dict[str, Any]] = {}
        changed: set[str] = set()
        for _msg, touchpoint in items:
            ctx.ok()
            key = touchpoint["customer_key"]
            if key not in profiles:
                profiles[key] = store.get(PROFILE + key) or new_profile()
            if apply_touchpoint(profiles[key], touchpoint):
                changed.add(key)
        for key in changed:
            self._publish(key, profiles[key], store, ctx)
        self.tick(tp, store, ctx)

    def tick(self, tp: TopicPartitionKey, store: PartitionStore | None, ctx: BatchContext) -> None:
        """Scores that arrived for customers of this partition update their profiles."""
        if store is None or not self.pending_scores:
            return
        for key in list(self.pending_scores):
            profile = store.get(PROFILE + key)
            if profile is not None:  # the customer lives on this partition
                self.pending_scores.discard(key)
                self._publish(key, profile, store, ctx)

    def _publish(
        self, key: str, profile: dict[str, Any], store: PartitionStore, ctx: BatchContext
    ) -> None:
        score = self.scores.get(key)
        if score is not None:
            apply_score(profile, score)
            self.pending_scores.discard(key)
        ctx.emit(PROFILES, key, profile_record(key, profile))
        store.put(PROFILE + key, profile)
