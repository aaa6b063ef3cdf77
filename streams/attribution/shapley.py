"""Shapley-value attribution over the channel sets of paths, exact and simplified.

The conventions of marketing-attribution-models (2.1.1, ``run_shapley`` with
``value_column="conv_rate"``) and of Zhao, Mahboobi and Bagheri (2018):

- a path's coalition is the set of its channels (order and repeats ignored;
  a path without touches is {Direct});
- the worth of a set T is its conversion rate: the conversions over the paths
  (conversions plus nulls) whose channel set is exactly T, 0 for a set never
  seen;
- ``shapley`` (exact): for each converting set S, the Shapley value of each of
  its channels in that game over S's subsets, every subset enumerated
  (2^|S|; sets of more than ``MAX_EXACT_CHANNELS`` channels take the
  simplified form, and say so in the model version);
- ``shapley_simplified`` (Zhao et al.): the game v(S) = sum of rate(T) over the
  subsets T of S, whose Shapley value has the closed form
  phi_j = sum over T subset of S containing j of rate(T) / |T|;
- a set's conversions and value are split over its channels in proportion to
  phi (equally when the phi sum to 0); within one path a channel's share is
  split equally over its touches. Exact Shapley values can be negative (a
  channel whose sets convert worse with it): so can its credits, which still
  sum to 1 per conversion.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from math import factorial

import numpy as np

from streams.attribution.models import DIRECT

MAX_EXACT_CHANNELS = 15  # 2^15 coalitions per set: milliseconds; 2^20 would take seconds
Coalition = frozenset[str]


def coalition(channels: Sequence[str]) -> Coalition:
    """The channel set of a path ({Direct} for a path without touches)."""
    return frozenset(channels) or frozenset((DIRECT,))


def shapley_values(players: Sequence[str], worth: dict[Coalition, float]) -> dict[str, float]:
    """Exact Shapley values of ``players`` in the game whose coalitions are worth
    ``worth`` (0 when absent), every subset enumerated."""
    n = len(players)
    masks = np.arange(1 << n)
    size = np.zeros(1 << n, dtype=np.int64)
    for i in range(n):
        size += (masks >> i) & 1
    v = np.array(
        [worth.get(frozenset(p for i, p in enumerate(players) if m >> i & 1), 0.0) for m in masks]
    )
    weight = np.array([factorial(k) * factorial(n - k - 1) / factorial(n) for k in range(n)])
    out = {}
    for i, player in enumerate(players):
        without = masks[(masks >> i) & 1 == 0]
        out[player] = float(np.sum(weight[size[without]] * (v[without | (1 << i)] - v[without])))
    return out


def simplified_values(players: Sequence[str], rates: dict[Coalition, float]) -> dict[str, float]:
    """Zhao et al.'s closed form: phi_j = sum of rate(T) / |T| over the seen sets T
    within ``players`` that contain j."""
    within = frozenset(players)
    out = dict.fromkeys(players, 0.0)
    if (1 << len(players)) < len(rates):  # fewer subsets than seen sets: look each up
        seen = (
            (members, rates.get(members, 0.0))
            for size in range(1, len(players) + 1)
            for members in map(frozenset, combinations(players, size))
        )
    else:
        seen = ((m, r) for m, r in rates.items() if m <= within)
    for members, rate in seen:
        if rate:
            for player in members:
                out[player] += rate / len(members)
    return out


@dataclass
class ShapleyResult:
    """Set conversion rates and what each converting set credits its channels."""

    simplified: bool
    rates: dict[Coalition, float]
    conversions: dict[Coalition, float]
    values: dict[Coalition, float]
    _cache: dict[Coalition, dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        return "shapley_simplified" if self.simplified else "shapley"

    def weights(self, channels: Sequence[str]) -> dict[str, float]:
        """Share of each channel of a path's set (summing to 1)."""
        members = coalition(channels)
        cached = self._cache.get(members)
        if cached is None:
            players = sorted(members)
            if self.simplified or len(players) > MAX_EXACT_CHANNELS:
                phi = simplified_values(players, self.rates)
            else:
                phi = shapley_values(players, self.rates)
            total = sum(phi.values())
            if abs(total) < 1e-15:
                cached = {p: 1.0 / len(players) for p in players}
            else:
                cached = {p: phi[p] / total for p in players}
            self._cache[members] = cached
        return cached

    def credits(self) -> dict[str, tuple[float, float]]:
        """channel → (attributed conversions, attributed value)."""
        out: dict[str, list[float]] = {}
        for members, conversions in self.conversions.items():
            if not conversions:
                continue
            for channel, share in self.weights(sorted(members)).items():
                entry = out.setdefault(channel, [0.0, 0.0])
                entry[0] += share * conversions
                entry[1] += share * self.values.get(members, 0.0)
        return {c: (v[0], v[1]) for c, v in out.items()}

    @cached_property
    def shares(self) -> dict[str, float]:
        """Each channel's share of all the conversions."""
        credits = self.credits()
        total = sum(c for c, _ in credits.values())
        return {c: v[0] / total for c, v in credits.items()} if total else {}

    @cached_property
    def version(self) -> str:
        text = ";".join(
            f"{','.join(sorted(m))}={r:.12g}" for m, r in sorted(self.rates.items(), key=_key)
        )
        return f"{self.model}-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def _key(item: tuple[Coalition, float]) -> tuple[str, ...]:
    return tuple(sorted(item[0]))


class ShapleyModel:
    """Conversions, paths and value per channel set; ``solve`` gives the rates."""

    def __init__(self) -> None:
        self.conversions: Counter[Coalition] = Counter()
        self.paths: Counter[Coalition] = Counter()
        self.values: Counter[Coalition] = Counter()

    def add(
        self,
        channels: Sequence[str],
        conversions: float = 0.0,
        nulls: float = 0.0,
        value: float = 0.0,
    ) -> None:
        members = coalition(channels)
        self.paths[members] += conversions + nulls
        if conversions:
            self.conversions[members] += conversions
            self.values[members] += value

    def solve(self, simplified: bool = False) -> ShapleyResult:
        rates = {m: self.conversions[m] / n for m, n in self.paths.items() if n > 0}
        return ShapleyResult(simplified, rates, dict(self.conversions), dict(self.values))
