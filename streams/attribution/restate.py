"""Data-driven credits (Markov, Shapley) restated as the models learn, kept per
input partition.

The attribution stage credits a conversion with the models it has at that
moment: none at all for the first conversions after a cold start, a model
of a few paths soon after. Each partition's store therefore remembers the
conversions it credited (touches and channels only) with the model epoch they
were credited under. When the stage adopts a model whose shares moved by more
than the tolerance, the partition takes a new epoch and the conversions of
earlier epochs are credited again under it: same credit ids, so the sink
replaces their rows. Conversions older than the window (event time, behind the
partition's newest conversion) are forgotten and keep their last credits.

Guarantees: the store changes are committed with the outputs of the same
batch or tick, so after a crash a conversion is restated again or not at all,
never lost; a restatement replaces rows, it never adds conversions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.runtime.state import PartitionStore

MODEL = "markov-model"  # the models (version, shares, epoch) this partition credits with
CONVERSION = "conv:"  # conv:<journey id> → compact journey; due: epoch it was credited in
EXPIRY = "conv-expiry:"  # conv-expiry:<journey id>; due: its conversion time
NEWEST = "newest_conversion_ms"  # store meta: the newest conversion time seen
ALL = 2**62


def shares_moved(old: Mapping[str, float], new: Mapping[str, float]) -> float:
    """The largest change of any channel's share between two models (0 to 1)."""
    return max((abs(old.get(c, 0.0) - new.get(c, 0.0)) for c in {*old, *new}), default=0.0)


def compact(journey: Mapping[str, Any]) -> dict[str, Any]:
    """What a Markov restatement needs of a converting journey."""
    return {
        "conversion_id": journey["conversion_id"],
        "journey_id": journey["journey_id"],
        "customer_key": journey["customer_key"],
        "conversion_value": journey["conversion_value"],
        "currency": journey["currency"],
        "conversion_time": journey["conversion_time"],
        "conversion_touchpoint_id": journey["conversion_touchpoint_id"],
        "touchpoints": [
            {"touchpoint_id": t["touchpoint_id"], "channel": t["channel"]}
            for t in journey["touchpoints"]
        ],
    }


class PartitionModel:
    """One partition's view of the Markov model and the conversions it credited."""

    def __init__(self, store: PartitionStore, tolerance: float, window_ms: int) -> None:
        self.store = store
        self.tolerance = tolerance
        self.window_ms = window_ms

    def sync(self, version: str, shares: Mapping[str, float], now_ms: int) -> dict[str, Any]:
        """The model this partition credits with, after the stage adopted ``version``:
        a new epoch if its shares moved beyond the tolerance from the partition's
        last model (so earlier conversions are restated), else the same epoch."""
        current = self.store.get(MODEL)
        if current is not None and current["version"] == version:
            return current
        epoch = max(now_ms, current["epoch"] + 1) if current else now_ms
        if current is not None and shares_moved(current["shares"], shares) <= self.tolerance:
            epoch = current["epoch"]  # e.g. re-solved after a restart: the same model
        current = {"version": version, "shares": dict(shares), "epoch": epoch}
        self.store.put(MODEL, current)
        return current

    def remember(self, journey: Mapping[str, Any], epoch: int) -> None:
        """Record a credited conversion (``epoch`` 0: credited without a model)."""
        if self.window_ms <= 0 or journey["conversion_time"] is None:
            return
        jid = journey["journey_id"]
        self.store.put(CONVERSION + jid, compact(journey), due=epoch)
        self.store.put(EXPIRY + jid, 1, due=journey["conversion_time"])
        if journey["conversion_time"] > self.store.meta(NEWEST):
            self.store.set_meta(NEWEST, journey["conversion_time"])

    def stale(self, epoch: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` remembered conversions credited before ``epoch``; each is
        marked as credited in ``epoch`` (the caller emits its new credits)."""
        out = []
        for key in self.store.due_keys(epoch - 1, prefix=CONVERSION, limit=limit):
            journey = self.store.get(key)
            self.store.put(key, journey, due=epoch)
            out.append(journey)
        return out

    def expire(self) -> int:
        """Forget conversions older than the window; returns how many."""
        newest = self.store.meta(NEWEST)
        if not newest:
            return 0
        keys = self.store.due_keys(newest - self.window_ms - 1, prefix=EXPIRY)
        for key in keys:
            self.store.delete(key)
            self.store.delete(CONVERSION + key[len(EXPIRY) :])
        return len(keys)

    def forget(self, customer_keys: set[str]) -> int:
        """Drop the remembered conversions of a forgotten customer; returns how many."""
        dropped = 0
        for key in self.store.due_keys(ALL, prefix=CONVERSION):
            if self.store.get(key, {}).get("customer_key") in customer_keys:
                self.store.delete(key)
                self.store.delete(EXPIRY + key[len(CONVERSION) :])
                dropped += 1
        return dropped
