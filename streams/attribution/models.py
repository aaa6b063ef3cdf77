"""Rule-based attribution models: how one conversion's credit is split over its touches.

Each model maps a path (touch channels, and hours from each touch to the
conversion for time decay) to one weight per touch; weights sum to 1.

- first touch, last touch: all credit to that touch;
- last non-direct: the last touch that is not Direct (in any letter case; all-
  Direct paths: the last touch, as GA does);
- linear: 1/L each;
- linear over unique channels: 1/U for each of the path's U channels, split
  equally over that channel's touches;
- position-based (U-shaped): 40% first, 40% last, 20% shared by the middle
  touches; one touch gets 1, two touches 50/50;
- W-shaped: 30% each to the first, the middle (index L // 2) and the last
  touch, 10% shared by the others; up to three touches share equally;
- time decay: weight 0.5^(Δt/H) with Δt the hours to the conversion and H the
  half-life (default 7 days), normalised.

The data-driven models (``markov``, ``shapley``, ``shapley_simplified``) learn
from every path; their modules say how. ``ALL_MODELS`` is the one vocabulary
of model names: the CLI, the credits topic, the tables and the dashboard use
exactly these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

DIRECT = "Direct"
RULE_MODELS = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "linear_unique",
    "position_based",
    "w_shaped",
    "time_decay",
)
DATA_MODELS = ("markov", "shapley", "shapley_simplified")
ALL_MODELS = (*RULE_MODELS, *DATA_MODELS)
DEFAULT_HALF_LIFE_HOURS = 7 * 24.0


def is_direct(channel: str) -> bool:
    """Direct in any letter case or padding (``direct``, ``DIRECT ``)."""
    return channel.strip().lower() == "direct"


def first_touch(channels: Sequence[str], hours: Sequence[float] | None = None) -> list[float]:
    return [1.0] + [0.0] * (len(channels) - 1) if channels else []


def last_touch(channels: Sequence[str], hours: Sequence[float] | None = None) -> list[float]:
    return [0.0] * (len(channels) - 1) + [1.0] if channels else []


def last_non_direct(channels: Sequence[str], hours: Sequence[float] | None = None) -> list[float]:
    weights = [0.0] * len(channels)
    for i in range(len(channels) - 1, -1, -1):
        if not is_direct(channels[i]):
            weights[i] = 1.0
            return weights
    return last_touch(channels)


def linear(channels: Sequence[str], hours: Sequence[float] | None = None) -> list[float]:
    n = len(channels)
    return [1.0 / n] * n if n else []


def linear_unique(channels: Sequence[str], hours: Sequence[float] | None = None) -> list[float]:
    counts: dict[str, int] = {}
    for c in channels:
        counts[c] = counts.get(c, 0) + 1
    return [1.0 / len(counts) / counts[c] for c in channels]


def w_shaped(channels: Sequence[str], hours: Sequence[float] | None = None) -> list[float]:
    n = len(channels)
    if n <= 3:
        return linear(channels)
    anchors = {0, n // 2, n - 1}
    return [0.3 if i in anchors else 0.1 / (n - 3) for i in range(n)]


def position_based(
    channels: Sequence[str], hours: Sequence[float] | None = None, ends: float = 0.4
) -> list[float]:
    n = len(channels)
    if n <= 2:
        return linear(channels)
    middle = (1.0 - 2 * ends) / (n - 2)
    return [ends] + [middle] * (n - 2) + [ends]


def time_decay(
    channels: Sequence[str],
    hours: Sequence[float] | None,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
) -> list[float]:
    if not channels:
        return []
    if hours is None or len(hours) != len(channels):
        raise ValueError("time decay needs the hours from each touch to the conversion")
    if not half_life_hours > 0 or half_life_hours == float("inf"):
        raise ValueError(f"the half-life must be a positive number of hours, not {half_life_hours}")
    # Relative to the most recent touch: the same weights once normalised, and never
    # all zero (touches a few thousand half-lives old underflowed to a 0/0).
    ages = [max(0.0, h) for h in hours]
    newest = min(ages)
    raw = [0.5 ** ((age - newest) / half_life_hours) for age in ages]
    total = sum(raw)
    return [w / total for w in raw]


RULES: dict[str, Callable[..., list[float]]] = {
    "first_touch": first_touch,
    "last_touch": last_touch,
    "last_non_direct": last_non_direct,
    "linear": linear,
    "linear_unique": linear_unique,
    "position_based": position_based,
    "w_shaped": w_shaped,
    "time_decay": time_decay,
}


def rule_weights(
    model: str,
    channels: Sequence[str],
    hours: Sequence[float] | None = None,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
) -> list[float]:
    """Per-touch weights (summing to 1) of a rule-based model."""
    if model == "time_decay":
        return time_decay(channels, hours, half_life_hours)
    return RULES[model](channels, hours)
