"""Attribution credits of one converting journey under every model.

Rule-based models split the conversion over its touches (``models``). The
Markov model splits it over the channels present in the path in proportion to
their global removal effects (``markov``), then equally over each channel's
touches. A conversion without touches gives its whole credit to Direct (GA's
convention for an unknown source), on the conversion touchpoint itself.

Guarantee: per conversion and model the credits sum to 1 and the value credits
to the conversion value. Credit ids are deterministic (conversion, model,
touchpoint), so a replayed journey yields the same rows.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from streams.attribution.models import DEFAULT_HALF_LIFE_HOURS, DIRECT, RULE_MODELS, rule_weights

RULES_VERSION = "rules-1"


def credit_id(conversion_id: str, model: str, touchpoint_id: str) -> str:
    digest = hashlib.blake2b(
        f"{conversion_id}\x1f{model}\x1f{touchpoint_id}".encode(), digest_size=16
    )
    return "cr-" + digest.hexdigest()


def markov_weights(channels: list[str], shares: Mapping[str, float]) -> list[float]:
    """Per-touch weights from channel shares: renormalised over the path's channels."""
    present = sorted(set(channels))
    raw = {c: max(0.0, shares.get(c, 0.0)) for c in present}
    total = sum(raw.values())
    if total <= 0:  # no model yet, or only channels it gives nothing: split by channel
        raw = dict.fromkeys(present, 1.0)
        total = float(len(present))
    per_touch_count = defaultdict(int)
    for c in channels:
        per_touch_count[c] += 1
    return [raw[c] / total / per_touch_count[c] for c in channels]


def journey_credits(
    journey: Mapping[str, Any],
    markov_shares: Mapping[str, float],
    markov_version: str,
    now_ms: int,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
) -> list[dict[str, Any]]:
    """``cust.attribution.v1`` records of a converting journey, for every model."""
    base, ids, channels, hours = _unpack(journey, now_ms)
    models: list[tuple[str, list[float], str]] = [
        (m, rule_weights(m, channels, hours, half_life_hours), RULES_VERSION) for m in RULE_MODELS
    ]
    models.append(("markov", markov_weights(channels, markov_shares), markov_version))
    return _rows(base, ids, channels, models)


def markov_credits(
    journey: Mapping[str, Any], markov_shares: Mapping[str, float], markov_version: str, now_ms: int
) -> list[dict[str, Any]]:
    """The Markov records of a converting journey alone (a restatement under a newer
    model: same credit ids, so they replace the earlier ones). Touches need only
    ``touchpoint_id`` and ``channel``."""
    base, ids, channels, _ = _unpack(journey, now_ms)
    return _rows(
        base, ids, channels, [("markov", markov_weights(channels, markov_shares), markov_version)]
    )


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
    models: list[tuple[str, list[float], str]],
) -> list[dict[str, Any]]:
    value = base["conversion_value"]
    out = []
    for model, weights, version in models:
        # Credits of one touchpoint repeated in a path (cannot happen today) add up.
        merged: dict[str, list] = {}
        for tid, channel, w in zip(ids, channels, weights, strict=True):
            entry = merged.setdefault(tid, [channel, 0.0])
            entry[1] += w
        for tid, (channel, weight) in merged.items():
            out.append(
                {
                    **base,
                    "credit_id": credit_id(base["conversion_id"], model, tid),
                    "touchpoint_id": tid,
                    "channel": channel,
                    "model": model,
                    "credit": weight,
                    "value_credit": weight * value,
                    "model_version": version,
                }
            )
    return out
