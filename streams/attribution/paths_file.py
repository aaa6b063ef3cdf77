"""ChannelAttribution's aggregated path format, for analysts migrating from it.

Input CSV columns: ``path`` (channels separated by ``>``), ``total_conversions``,
``total_conversion_value``, ``total_null``; optionally ``hours`` (the hours from
each touch to the conversion, ``>``-separated like the path) for time decay.
Counts, values and hours are finite and not negative; a path may be empty (a
conversion without touches: Direct, as on the bus).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from streams.attribution.credits import markov_weights
from streams.attribution.markov import MarkovModel, MarkovResult
from streams.attribution.models import (
    ALL_MODELS,
    DEFAULT_HALF_LIFE_HOURS,
    DIRECT,
    rule_weights,
)
from streams.attribution.shapley import ShapleyModel
from streams.core.errors import FatalError

MARKOV_CREDITS = ("total", "per-conversion")  # ChannelAttribution's; the bus's credits
HOURS_NEEDED = "time_decay needs the 'hours' column, which this file lacks"
M = TypeVar("M", MarkovModel, ShapleyModel)


@dataclass
class PathRow:
    channels: list[str]
    conversions: float
    value: float
    nulls: float
    hours: list[float] | None = None

    def touches(self) -> tuple[list[str], list[float] | None]:
        """Channels and hours, a path without touches being one Direct touch."""
        if self.channels:
            return self.channels, self.hours
        return [DIRECT], [0.0] if self.hours is not None else None


def _number(text: str | None, column: str) -> float:
    value = float(text or 0)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{column} must be a finite number, not negative: {text!r}")
    return value


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(">") if part.strip()]


def read_paths(source: Path | io.TextIOBase) -> list[PathRow]:
    """Rows of an aggregated paths CSV; a bad row is an error naming its line."""
    handle = source.open(newline="") if isinstance(source, Path) else source
    with handle:
        reader = csv.DictReader(handle)
        missing = {"path", "total_conversions"} - set(reader.fieldnames or [])
        if missing:
            raise FatalError(f"paths file lacks column(s) {sorted(missing)}")
        rows = []
        for line, rec in enumerate(reader, start=2):
            try:
                channels = _split(rec["path"] or "")
                hours = _split(rec.get("hours") or "")
                if not hours and (channels or "hours" not in rec):
                    hours = None  # a path without touches has its (no) hours
                row = PathRow(
                    channels,
                    _number(rec["total_conversions"], "total_conversions"),
                    _number(rec.get("total_conversion_value"), "total_conversion_value"),
                    _number(rec.get("total_null"), "total_null"),
                    None if hours is None else [_number(h, "hours") for h in hours],
                )
            except ValueError as exc:
                raise FatalError(f"line {line}: {exc}") from None
            if row.hours is not None and len(row.hours) != len(row.channels):
                raise FatalError(
                    f"line {line}: {len(row.hours)} hours for {len(row.channels)} touches"
                )
            rows.append(row)
    return rows


def rule_credits(
    rows: Iterable[PathRow], model: str, half_life_hours: float = DEFAULT_HALF_LIFE_HOURS
) -> dict[str, tuple[float, float]]:
    """channel → (conversions, value) under a rule-based model."""
    rows = list(rows)
    if model == "time_decay" and lacks_hours(rows):
        raise FatalError(HOURS_NEEDED)
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        if not row.conversions:
            continue
        channels, hours = row.touches()
        for channel, w in zip(
            channels, rule_weights(model, channels, hours, half_life_hours), strict=True
        ):
            out[channel][0] += w * row.conversions
            out[channel][1] += w * row.value
    return {c: (v[0], v[1]) for c, v in out.items()}


def lacks_hours(rows: Iterable[PathRow]) -> bool:
    """Whether time decay cannot be computed: a converting row has no hours."""
    return any(r.hours is None and r.conversions for r in rows)


def _fill(model: M, rows: Iterable[PathRow]) -> M:
    for row in rows:
        model.add(row.channels, conversions=row.conversions, nulls=row.nulls, value=row.value)
    return model


def markov_result(rows: Iterable[PathRow], order: int = 1) -> MarkovResult:
    return _fill(MarkovModel(order), rows).solve()


def markov_credits(
    rows: list[PathRow], order: int, how: str = "total"
) -> dict[str, tuple[float, float]]:
    """channel → (conversions, value) under the Markov model: ChannelAttribution's
    totals (``total``), or the sums of the bus's per-conversion credits."""
    result = markov_result(rows, order)
    if how == "total":
        return result.credits()
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        if not row.conversions:
            continue
        channels, _ = row.touches()
        weights = markov_weights(channels, result.shares)
        value_weights = markov_weights(channels, result.value_shares)
        for channel, w, vw in zip(channels, weights, value_weights, strict=True):
            out[channel][0] += w * row.conversions
            out[channel][1] += vw * row.value
    return {c: (v[0], v[1]) for c, v in out.items()}


def shapley_credits(rows: Iterable[PathRow], simplified: bool) -> dict[str, tuple[float, float]]:
    return _fill(ShapleyModel(), rows).solve(simplified).credits()


def compute_csv(
    rows: list[PathRow],
    models: list[str],
    order: int = 1,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
    markov_credit: str = "total",
) -> str:
    """Channel credits per model as CSV (model, channel, conversions, value)."""
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown:
        raise FatalError(f"unknown model(s) {unknown}; the models are {', '.join(ALL_MODELS)}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "channel", "total_conversions", "total_conversion_value"])
    for model in models:
        if model == "markov":
            credits = markov_credits(rows, order, markov_credit)
        elif model in ("shapley", "shapley_simplified"):
            credits = shapley_credits(rows, simplified=model == "shapley_simplified")
        else:
            credits = rule_credits(rows, model, half_life_hours)
        for channel in sorted(credits, key=lambda c: (-credits[c][0], c)):
            conversions, value = credits[channel]
            writer.writerow([model, channel, f"{conversions:.6f}", f"{value:.6f}"])
    return buf.getvalue()


def removal_effects_csv(rows: list[PathRow], order: int = 1) -> str:
    result = markov_result(rows, order)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["channel", "removal_effect", "share", "value_removal_effect", "value_share"])
    shares, value_shares = result.shares, result.value_shares
    value_effects = result.value_removal_effects or result.removal_effects
    for channel in sorted(result.removal_effects, key=lambda c: -result.removal_effects[c]):
        writer.writerow(
            [
                channel,
                f"{result.removal_effects[channel]:.6f}",
                f"{shares[channel]:.6f}",
                f"{value_effects[channel]:.6f}",
                f"{value_shares[channel]:.6f}",
            ]
        )
    return buf.getvalue()
