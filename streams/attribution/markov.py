"""Data-driven attribution: the Markov-chain removal effect, solved exactly.

The conventions of the ChannelAttribution package and Anderl et al. (2016):

- a path is the sequence of channels before a conversion or a null (no
  conversion); consecutive repeats of a channel are collapsed;
- order k: a state is the last k channels (the first states of a path are its
  shorter prefixes); transitions (start) → first state → ... → last state →
  (conversion) or (null), weighted by how many conversions and nulls followed
  that path;
- P(conversion) is the absorption probability from (start) of the absorbing
  chain, solved exactly as a sparse linear system (I - Q) x = r;
- the removal effect of a channel is 1 - P(conversion without it) / P(conversion),
  where removing a channel sends every transition into a state containing it to
  (null);
- a channel's share of conversions (or value) is its removal effect divided by
  the sum of all removal effects.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix, identity
from scipy.sparse.linalg import spsolve

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"


def collapse(channels: Sequence[str]) -> tuple[str, ...]:
    """Consecutive repeats collapsed: A > A > B > A → A > B > A."""
    out: list[str] = []
    for channel in channels:
        if not out or out[-1] != channel:
            out.append(channel)
    return tuple(out)


def path_states(channels: Sequence[str], order: int) -> list[tuple[str, ...]]:
    """The order-k states a (collapsed) path walks through."""
    return [tuple(channels[max(0, i - order + 1) : i + 1]) for i in range(len(channels))]


@dataclass
class MarkovResult:
    order: int
    conversion_probability: float
    removal_effects: dict[str, float]
    conversions: float
    value: float

    @property
    def shares(self) -> dict[str, float]:
        """Each channel's share of the conversions (normalised removal effects)."""
        total = sum(self.removal_effects.values())
        if total <= 0:
            n = len(self.removal_effects)
            return {c: 1.0 / n for c in self.removal_effects} if n else {}
        return {c: re / total for c, re in self.removal_effects.items()}

    def credits(self) -> dict[str, tuple[float, float]]:
        """channel → (attributed conversions, attributed value)."""
        return {c: (s * self.conversions, s * self.value) for c, s in self.shares.items()}

    @property
    def version(self) -> str:
        text = ";".join(f"{c}={re:.12g}" for c, re in sorted(self.removal_effects.items()))
        return f"markov-o{self.order}-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


class MarkovModel:
    """Transition counts of collapsed paths; ``solve`` gives removal effects."""

    def __init__(self, order: int = 1) -> None:
        if not 1 <= order <= 3:
            raise ValueError("order must be 1, 2 or 3")
        self.order = order
        self.paths: Counter[tuple[str, ...]] = Counter()  # collapsed path -> conversions
        self.nulls: Counter[tuple[str, ...]] = Counter()
        self.values: Counter[tuple[str, ...]] = Counter()

    def add(
        self,
        channels: Sequence[str],
        conversions: float = 0.0,
        nulls: float = 0.0,
        value: float = 0.0,
    ) -> None:
        path = collapse(channels)
        if not path:
            return
        if conversions:
            self.paths[path] += conversions
            self.values[path] += value
        if nulls:
            self.nulls[path] += nulls

    @property
    def total_conversions(self) -> float:
        return float(sum(self.paths.values()))

    def _transitions(self) -> Counter[tuple[object, object]]:
        counts: Counter[tuple[object, object]] = Counter()
        for source, end in ((self.paths, CONVERSION), (self.nulls, NULL)):
            for path, weight in source.items():
                states = path_states(path, self.order)
                previous: object = START
                for state in states:
                    counts[(previous, state)] += weight
                    previous = state
                counts[(previous, end)] += weight
        return counts

    def _conversion_probability(self, counts: Counter, removed: str | None) -> float:
        transient: list[object] = [START]
        index: dict[object, int] = {START: 0}
        for a, b in counts:
            for s in (a, b):
                if s not in index and s not in (CONVERSION, NULL):
                    index[s] = len(transient)
                    transient.append(s)
        out_total: Counter[object] = Counter()
        for (a, _b), w in counts.items():
            out_total[a] += w
        rows, cols, vals = [], [], []
        r = np.zeros(len(transient))
        for (a, b), w in counts.items():
            p = w / out_total[a]
            i = index[a]
            if b == CONVERSION:
                r[i] += p
            elif b == NULL or (removed is not None and removed in b):  # type: ignore[operator]
                continue  # to (null): absorbed, contributes nothing
            else:
                rows.append(i)
                cols.append(index[b])
                vals.append(p)
        n = len(transient)
        q = csr_matrix((vals, (rows, cols)), shape=(n, n))
        x = spsolve((identity(n, format="csc") - q).tocsc(), r)
        return float(np.atleast_1d(x)[0])

    def channels(self) -> list[str]:
        return sorted({c for src in (self.paths, self.nulls) for p in src for c in p})

    def solve(self) -> MarkovResult:
        """Removal effects of every channel (exact absorbing-chain solution)."""
        counts = self._transitions()
        channels = self.channels()
        if not counts or not self.paths:
            return MarkovResult(
                self.order,
                0.0,
                dict.fromkeys(channels, 0.0),
                self.total_conversions,
                float(sum(self.values.values())),
            )
        base = self._conversion_probability(counts, None)
        effects = {}
        for channel in channels:
            without = self._conversion_probability(counts, channel)
            effects[channel] = max(0.0, 1.0 - without / base) if base > 0 else 0.0
        return MarkovResult(
            self.order, base, effects, self.total_conversions, float(sum(self.values.values()))
        )


def from_paths(
    rows: Iterable[tuple[Sequence[str], float, float, float]], order: int = 1
) -> MarkovModel:
    """A model from (channels, conversions, value, nulls) rows."""
    model = MarkovModel(order)
    for channels, conversions, value, nulls in rows:
        model.add(channels, conversions=conversions, nulls=nulls, value=value)
    return model
