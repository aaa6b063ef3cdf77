"""ChannelAttribution's aggregated path format, for analysts migrating from it.

Input CSV columns: ``path`` (channels separated by ``>``), ``total_conversions``,
``total_conversion_value``, ``total_null``; optionally ``hours`` (the hours from
each touch to the conversion, ``>``-separated like the path) for time decay.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from streams.attribution.markov import MarkovModel, MarkovResult
from streams.attribution.models import DEFAULT_HALF_LIFE_HOURS, RULE_MODELS, rule_weights
from streams.core.errors import FatalError


@dataclass
class PathRow:
    channels: list[str]
    conversions: float
    value: float
    nulls: float
    hours: list[float] | None = None


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
                hours = _split(rec["hours"]) if rec.get("hours") else None
                row = PathRow(
                    _split(rec["path"]),
                    float(rec["total_conversions"] or 0),
                    float(rec.get("total_conversion_value") or 0),
                    float(rec.get("total_null") or 0),
                    [float(h) for h in hours] if hours else None,
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
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        if not row.conversions or not row.channels:
            continue
        if model == "time_decay" and row.hours is None:
            raise FatalError("time decay needs the 'hours' column")
        for channel, w in zip(
            row.channels, rule_weights(model, row.channels, row.hours, half_life_hours), strict=True
        ):
            out[channel][0] += w * row.conversions
            out[channel][1] += w * row.value
    return {c: (v[0], v[1]) for c, v in out.items()}


def markov_result(rows: Iterable[PathRow], order: int = 1) -> MarkovResult:
    model = MarkovModel(order)
    for row in rows:
        model.add(row.channels, conversions=row.conversions, nulls=row.nulls, value=row.value)
    return model.solve()


def compute_csv(
    rows: list[PathRow],
    models: list[str],
    order: int = 1,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
) -> str:
    """Channel credits per model as CSV (model, channel, conversions, value)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "channel", "total_conversions", "total_conversion_value"])
    for model in models:
        if model == "markov":
            credits = markov_result(rows, order).credits()
        elif model in RULE_MODELS:
            if model == "time_decay" and any(r.hours is None for r in rows if r.conversions):
                continue  # no hours in the file: time decay cannot be computed
            credits = rule_credits(rows, model, half_life_hours)
        else:
            raise FatalError(f"unknown model {model!r}")
        for channel in sorted(credits, key=lambda c: (-credits[c][0], c)):
            conversions, value = credits[channel]
            writer.writerow([model, channel, f"{conversions:.6f}", f"{value:.6f}"])
    return buf.getvalue()


def removal_effects_csv(rows: list[PathRow], order: int = 1) -> str:
    result = markov_result(rows, order)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["channel", "removal_effect", "share"])
    shares = result.shares
    for channel in sorted(result.removal_effects, key=lambda c: -result.removal_effects[c]):
        writer.writerow(
            [channel, f"{result.removal_effects[channel]:.6f}", f"{shares[channel]:.6f}"]
        )
    return buf.getvalue()
