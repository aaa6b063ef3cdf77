"""Attribution credits of one converting journey under every model.

Rule-based models split the conversion over its touches (``models``). The
data-driven models are global: the Markov model splits a conversion over the
channels present in its path in proportion to their removal effects
(conversions) and value removal effects (value) (``markov``); Shapley, exact
or simplified, in proportion to the channels' Shapley values in the path's
channel set (``shapley``); within a path, a channel's share is split equally
over its touches. A conversion without touches gives its whole credit to
Direct (GA's convention for an unknown source), on the conversion touchpoint
itself, in every model.

The channel totals of these per-conversion credits are not the global totals
ChannelAttribution prints for the Markov model (those also credit channels a
converting path never touched, through the chain); ``journeybus attribution
compute --markov-credit per-conversion`` prints these per-conversion totals.

Guarantee: per conversion and model the credits sum to 1 and the value credits
to the conversion value. Credit ids are deterministic (conversion, model,
touchpoint), so a replayed journey yields the same rows.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.attribution.models import DEFAULT_HALF_LIFE_HOURS, DIRECT, RULE_MODELS, rule_weights
from streams.attribution.shapley import ShapleyResult

RULES_VERSION = "rules-2"
Weights = tuple[str, list[float], list[float], str]  # model, credit, value credit, version


@dataclass(frozen=True)
class Learned:
    """The data-driven models a conversion is credited with, as last adopted (empty
    shares and None: nothing learned yet, so each channel of the path gets an
    equal share)."""

    markov_version: str = "markov-none"
    markov_shares: Mapping[str, float] = field(default_factory=dict)
    markov_value_shares: Mapping[str, float] = field(default_factory=dict)
    shapley: ShapleyResult | None = None
    shapley_simplified: ShapleyResult | None = None

    @property
    def version(self) -> str:
        """The models' versions, as one."""
        results = (self.shapley, self.shapley_simplified)
        return "+".join([self.markov_version, *(r.version for r in results if r is not None)])

    def summary(self) -> dict[str, float]:
        """Every channel share of every model, as one flat map (what a restatement
        tolerance compares)."""
        out = {f"markov:{c}": s for c, s in self.markov_shares.items()}
        out |= {f"markov-value:{c}": s for c, s in self.markov_value_shares.items()}
        for result in (self.shapley, self.shapley_simplified):
            if result is not None:
                out |= {f"{result.model}:{c}": s for c, s in result.shares.items()}
        return out

    def weights(self, channels: list[str]) -> list[Weights]:
        """Per-touch weights of each data-driven model for one path."""
        out: list[Weights] = [
            (
                "markov",
                markov_weights(channels, self.markov_shares),
                markov_weights(channels, self.markov_value_shares or self.markov_shares),
                self.markov_version,
            )
        ]
        for name, result in (
            ("shapley", self.shapley),
            ("shapley_simplified", self.shapley_simplified),
        ):
            shares = result.weights(channels) if result is not None else {}
            weights = markov_weights(channels, shares, clamp=False)
            out.append((name, weights, weights, result.version if result else f"{name}-none"))
        return out


def credit_id(conversion_id: str, model: str, touchpoint_id: str) -> str:
    digest = hashlib.blake2b(
        f"{conversion_id}\x1f{model}\x1f{touchpoint_id}".encode(), digest_size=16
    )
    return "cr-" + digest.hexdigest()


def markov_weights(
    channels: list[str], shares: Mapping[str, float], clamp: bool = True
) -> list[float]:
    """Per-touch weights from channel shares: renormalised over the path's channels,
    each channel's split equally over its touches. ``clamp``: negative shares count
    as 0 (Shapley's may be negative and are kept)."""
    present = sorted(set(channels))
    raw = {c: shares.get(c, 0.0) for c in present}
    if clamp:
        raw = {c: max(0.0, w) for c, w in raw.items()}
    total = sum(raw.values())
    if abs(total) < 1e-15:  # no model yet, or only channels it gives nothing: by channel
        raw = dict.fromkeys(present, 1.0)
        total = float(len(present))
    per_touch_count = defaultdict(int)
    for c in channels:
        per_touch_count[c] += 1
    return [raw[c] / total / per_touch_count[c] for c in channels]


def journey_credits(
    journey: Mapping[str, Any],
    learned: Learned,
    now_ms: int,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
) -> list[dict[str, Any]]:
    """``cust.attribution.v1`` records of a converting journey, for every model."""
    base, ids, channels, hours = _unpack(journey, now_ms)
    models: list[Weights] = []
    for m in RULE_MODELS:
        weights = rule_weights(m, channels, hours, half_life_hours)
        models.append((m, weights, weights, RULES_VERSION))
    return _rows(base, ids, channels, models + learned.weights(channels))


def learned_credits(
    journey: Mapping[str, Any], learned: Learned, now_ms: int
) -> list[dict[str, Any]]:
    """The data-driven models' records of a converting journey alone (a restatement
    under newer models: same credit ids, so they replace the earlier ones). Touches
    need only ``touchpoint_id`` and ``channel``."""
    base, ids, channels, _ = _unpack(journey, now_ms)
    return _rows(base, ids, channels, learned.weights(channels))


def _unpack(
    journey: Mapping[str, Any], now_ms: int
) -> tuple[dict[str, Any], list[str], list[str], list[float]]:
    touches = journey["touchpoints"]
    if touches:
        ids = [t["touchpoint_id"] for t in touches]
        channels = [t["channel"] for t in touches]
        hours = [t.get("hours_to_end", 0.0) for t in touches]
    else:
        ids, channels, hours = [journey["conversion_touchpoint_id"]], [DIRECT], [0.0]
    base = {
        "conversion_id": journey["conversion_id"],
        "journey_id": journey["journey_id"],
        "customer_key": journey["customer_key"],
        "conversion_value": float(journey["conversion_value"] or 0.0),
        "currency": journey["currency"],
        "conversion_time": journey["conversion_time"],
        "computed_at": now_ms,
    }
    return base, ids, channels, hours


def _rows(
    base: dict[str, Any],
    ids: list[str],
    channels: list[str],
    models: list[Weights],
) -> list[dict[str, Any]]:
    value = base["conversion_value"]
    conversion = base["conversion_id"]
    out = []
    distinct = len(set(ids)) == len(ids)
    for model, weights, value_weights, version in models:
        credits: Iterable[tuple[str, str, float, float]]
        if distinct:
            credits = zip(ids, channels, weights, value_weights, strict=True)
        else:  # credits of one touchpoint repeated in a path (cannot happen today) add up
            merged: dict[str, list] = {}
            for tid, channel, w, vw in zip(ids, channels, weights, value_weights, strict=True):
                entry = merged.setdefault(tid, [channel, 0.0, 0.0])
                entry[1] += w
                entry[2] += vw
            credits = [(tid, c, w, vw) for tid, (c, w, vw) in merged.items()]
        for tid, channel, weight, value_weight in credits:
            row = base.copy()
            row["credit_id"] = credit_id(conversion, model, tid)
            row["touchpoint_id"] = tid
            row["channel"] = channel
            row["model"] = model
            row["credit"] = weight
            row["value_credit"] = value_weight * value
            row["model_version"] = version
            out.append(row)
    return out
