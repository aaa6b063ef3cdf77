"""Data-driven attribution: the Markov-chain removal effect, solved exactly.

The conventions of ChannelAttribution (2.2.5, ``markov_model``), which it
estimates by simulation and this module solves exactly:

- a path is the sequence of channels before a conversion or a null (no
  conversion), repeats included;
- order k: a state is a window of k consecutive channels of the path (a path
  shorter than k is one state, the whole path); consecutive identical *states*
  are collapsed (``A > A > B`` at order 2 walks ``(A,A) → (A,B)``; at order 1
  this is collapsing repeated channels);
- transitions (start) → first state → ... → last state → (conversion) or
  (null), each weighted by the conversions plus nulls of the path (the last one
  by its conversions, or its nulls);
- P(conversion) is the absorption probability from (start), solved as the
  sparse linear system (I - Q) x = r (ChannelAttribution simulates walks of at
  most the longest path's length; the difference is its simulation error);
- removing a channel sends every transition into a state containing it to
  (null); its removal effect is 1 - P(conversion without it) / P(conversion),
  which is the share of converting walks that visit it;
- value: a walk that converts from last state s is worth the mean value per
  conversion of the paths that ended in s (ChannelAttribution draws it from
  their distribution: the same expectation); the value removal effect is
  1 - V(without it) / V, V the expected value of a walk;
- a channel's conversions are its removal effect over the sum of all removal
  effects, times the total conversions; its value likewise with the value
  removal effects and the total value.

A conversion without touches is a path of one Direct touch (``DIRECT``), in
the chain as in every other model.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.sparse import csc_matrix, identity
from scipy.sparse.linalg import splu

from streams.attribution.models import DIRECT

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"
State = tuple[str, ...]


def collapse(channels: Sequence[str]) -> tuple[str, ...]:
    """Consecutive repeats collapsed: A > A > B > A → A > B > A."""
    out: list[str] = []
    for channel in channels:
        if not out or out[-1] != channel:
            out.append(channel)
    return tuple(out)


def path_states(channels: Sequence[str], order: int) -> list[State]:
    """The order-k states a path walks through (windows of k channels, consecutive
    identical windows collapsed; a path shorter than k is one state)."""
    path = tuple(channels) or (DIRECT,)
    if len(path) <= order:
        return [path]
    return list(collapse([path[i : i + order] for i in range(len(path) - order + 1)]))  # type: ignore[arg-type]


def shares_of(effects: dict[str, float]) -> dict[str, float]:
    """Removal effects normalised to sum to 1 (equal shares when all are 0)."""
    total = sum(effects.values())
    if total <= 0:
        return {c: 1.0 / len(effects) for c in effects} if effects else {}
    return {c: e / total for c, e in effects.items()}


@dataclass
class MarkovResult:
    order: int
    conversion_probability: float
    removal_effects: dict[str, float]
    conversions: float
    value: float
    value_removal_effects: dict[str, float] | None = None  # None: no value in the data

    @property
    def shares(self) -> dict[str, float]:
        """Each channel's share of the conversions (normalised removal effects)."""
        return shares_of(self.removal_effects)

    @property
    def value_shares(self) -> dict[str, float]:
        """Each channel's share of the value (normalised value removal effects; the
        conversion shares when the data has no value)."""
        if self.value_removal_effects is None:
            return self.shares
        return shares_of(self.value_removal_effects)

    def credits(self) -> dict[str, tuple[float, float]]:
        """channel → (attributed conversions, attributed value)."""
        value_shares = self.value_shares
        return {
            c: (s * self.conversions, value_shares[c] * self.value) for c, s in self.shares.items()
        }

    @cached_property
    def version(self) -> str:
        value = self.value_removal_effects or {}
        text = ";".join(
            f"{c}={re:.12g}/{value.get(c, 0.0):.12g}"
            for c, re in sorted(self.removal_effects.items())
        )
        return f"markov-o{self.order}-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


class MarkovModel:
    """Transition counts of paths (ChannelAttribution's states); ``solve`` gives the
    removal effects of conversions and of value."""

    def __init__(self, order: int = 1) -> None:
        if not 1 <= order <= 3:
            raise ValueError("order must be 1, 2 or 3")
        self.order = order
        self.paths: Counter[State] = Counter()  # path -> conversions
        self.nulls: Counter[State] = Counter()
        self.values: Counter[State] = Counter()

    def add(
        self,
        channels: Sequence[str],
        conversions: float = 0.0,
        nulls: float = 0.0,
        value: float = 0.0,
    ) -> None:
        # Runs longer than the order walk the same states as runs of the order's length.
        path = _trim_runs(tuple(channels) or (DIRECT,), self.order)
        if conversions:
            self.paths[path] += conversions
            self.values[path] += value
        if nulls:
            self.nulls[path] += nulls

    @property
    def total_conversions(self) -> float:
        return float(sum(self.paths.values()))

    @property
    def total_value(self) -> float:
        return float(sum(self.values.values()))

    def channels(self) -> list[str]:
        return sorted({c for src in (self.paths, self.nulls) for p in src for c in p})

    def solve(self) -> MarkovResult:
        """Removal effects of every channel (exact absorbing-chain solution)."""
        chain = _Chain.build(self)
        channels = self.channels()
        with_value = any(self.values.values())
        if chain is None or not self.paths:
            zeros = dict.fromkeys(channels, 0.0)
            return MarkovResult(
                self.order, 0.0, zeros, self.total_conversions, self.total_value, None
            )
        base, base_value = chain.absorb(None)
        effects, value_effects = {}, {}
        for channel in channels:
            without, without_value = chain.absorb(channel)
            effects[channel] = _effect(without, base)
            value_effects[channel] = _effect(without_value, base_value)
        return MarkovResult(
            self.order,
            base,
            effects,
            self.total_conversions,
            self.total_value,
            value_effects if with_value else None,
        )


def _effect(without: float, base: float) -> float:
    return min(1.0, max(0.0, 1.0 - without / base)) if base > 0 else 0.0


def _trim_runs(path: State, order: int) -> State:
    out: list[str] = []
    run = 0
    for channel in path:
        run = run + 1 if out and out[-1] == channel else 1
        if run <= order:
            out.append(channel)
    return tuple(out)


@dataclass
class _Chain:
    """The transient states, their transition probabilities and what converting from
    each is worth."""

    states: list[State]
    rows: np.ndarray
    cols: np.ndarray
    probs: np.ndarray
    to_conversion: np.ndarray  # P(state → conversion)
    value_per_conversion: np.ndarray  # mean value of a conversion from the state

    @classmethod
    def build(cls, model: MarkovModel) -> _Chain | None:
        counts: Counter[tuple[State, State]] = Counter()
        value_sum: Counter[State] = Counter()
        converted: Counter[State] = Counter()
        start: State = ()
        for path in model.paths.keys() | model.nulls.keys():
            conversions, nulls = model.paths.get(path, 0.0), model.nulls.get(path, 0.0)
            weight = conversions + nulls
            previous = start
            for state in path_states(path, model.order):
                counts[(previous, state)] += weight
                previous = state
            if conversions:
                counts[(previous, (CONVERSION,))] += conversions
                value_sum[previous] += model.values.get(path, 0.0)
                converted[previous] += conversions
            if nulls:
                counts[(previous, (NULL,))] += nulls
        if not counts:
            return None
        index: dict[State, int] = {start: 0}
        for a, b in counts:
            for s in (a, b):
                if s not in index and s not in ((CONVERSION,), (NULL,)):
                    index[s] = len(index)
        out_total: Counter[State] = Counter()
        for (a, _b), w in counts.items():
            out_total[a] += w
        n = len(index)
        to_conversion = np.zeros(n)
        rows, cols, probs = [], [], []
        for (a, b), w in counts.items():
            p = w / out_total[a]
            if b == (CONVERSION,):
                to_conversion[index[a]] += p
            elif b != (NULL,):
                rows.append(index[a])
                cols.append(index[b])
                probs.append(p)
        value = np.zeros(n)
        for state, total in value_sum.items():
            value[index[state]] = total / converted[state]
        return cls(
            list(index),
            np.array(rows, dtype=np.int64),
            np.array(cols, dtype=np.int64),
            np.array(probs),
            to_conversion,
            value,
        )

    def absorb(self, removed: str | None) -> tuple[float, float]:
        """(P(conversion), expected value) of a walk from (start), with transitions
        into states containing ``removed`` sent to (null)."""
        keep = np.ones(len(self.probs), dtype=bool)
        if removed is not None:
            holds = np.array([removed in s for s in self.states])
            keep = ~holds[self.cols]
        n = len(self.states)
        q = csc_matrix((self.probs[keep], (self.rows[keep], self.cols[keep])), shape=(n, n))
        rhs = np.column_stack([self.to_conversion, self.to_conversion * self.value_per_conversion])
        solved = splu((identity(n, format="csc") - q).tocsc()).solve(rhs)
        return float(solved[0, 0]), float(solved[0, 1])
