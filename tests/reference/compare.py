"""journeybus's attribution against the reference packages themselves.

ChannelAttribution 2.2.5 (heuristic models; Markov by simulation) and
marketing-attribution-models 2.1.1 (``mam``: rule models, Shapley) run on the
same random path sets as journeybus; each function returns the largest absolute
difference it saw. ``python -m tests.reference.compare`` prints the README's
table. Installed by the ``reference`` extra (``make install``), never by the
product.
"""

from __future__ import annotations

import contextlib
import io
import random
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd
import polars as pl

from streams.attribution.paths_file import PathRow, markov_result, rule_credits, shapley_credits

with contextlib.redirect_stdout(io.StringIO()):  # its banner
    import ChannelAttribution as ca
from mam import MAM

CHANNELS = ["Paid Search", "Email", "Direct", "Organic Social", "SMS"]


@dataclass
class Journey:
    channels: list[str]
    hours: list[float]
    converted: bool
    value: float


def journeys(seed: int, n: int = 300) -> list[Journey]:
    """Random journeys with repeats, values and hours; conversions depend on channels."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        channels = [rng.choice(CHANNELS) for _ in range(rng.randint(1, 5))]
        rate = 0.15 + 0.25 * ("Email" in channels) + 0.1 * (channels[-1] == "Direct")
        converted = rng.random() < rate
        hours = sorted((round(rng.uniform(0, 400), 1) for _ in channels), reverse=True)
        out.append(Journey(channels, hours, converted, round(rng.uniform(5, 300), 2) * converted))
    return out


def aggregated(js: list[Journey]) -> list[PathRow]:
    """ChannelAttribution's aggregated rows (one per distinct path)."""
    rows: dict[tuple[str, ...], PathRow] = {}
    for j in js:
        row = rows.setdefault(tuple(j.channels), PathRow(list(j.channels), 0.0, 0.0, 0.0))
        row.conversions += j.converted
        row.value += j.value
        row.nulls += not j.converted
    return list(rows.values())


def _ca_frame(rows: list[PathRow]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": [" > ".join(r.channels) for r in rows],
            "conv": [int(r.conversions) for r in rows],
            "value": [r.value for r in rows],
            "null": [int(r.nulls) for r in rows],
        }
    )


def _largest(ours: dict[str, tuple[float, float]], theirs: dict[str, tuple[float, float]]) -> float:
    channels = set(ours) | set(theirs)
    return max(
        abs(ours.get(c, (0.0, 0.0))[i] - theirs.get(c, (0.0, 0.0))[i])
        for c in channels
        for i in (0, 1)
    )


def channelattribution_heuristics(seed: int) -> dict[str, float]:
    """first_touch, last_touch, linear against ``heuristic_models``."""
    rows = aggregated(journeys(seed))
    with contextlib.redirect_stdout(io.StringIO()):
        ref = ca.heuristic_models(_ca_frame(rows), "path", "conv", var_value="value", flg_pro=False)
    ref = ref.set_index("channel_name")
    out = {}
    for model, prefix in (
        ("first_touch", "first_touch"),
        ("last_touch", "last_touch"),
        ("linear", "linear_touch"),
    ):
        theirs = {
            c: (ref.loc[c, f"{prefix}_conversions"], ref.loc[c, f"{prefix}_value"])
            for c in ref.index
        }
        out[model] = _largest(rule_credits(rows, model), theirs)
    return out


def channelattribution_markov(seed: int, order: int, simulations: float = 2e5) -> dict[str, float]:
    """Removal effects (of conversions and of value) and the channel totals against
    ``markov_model``, its walks not cut short (``max_step``: the exact solution
    has no step limit; by default it stops a walk at the longest path's length)."""
    rows = aggregated(journeys(seed, n=150))
    with contextlib.redirect_stdout(io.StringIO()):
        ref = ca.markov_model(
            _ca_frame(rows),
            "path",
            "conv",
            var_value="value",
            var_null="null",
            order=order,
            out_more=True,
            verbose=False,
            flg_pro=False,
            nsim_start=simulations,
            max_step=1000,
            seed=seed,
        )
    result = markov_result(rows, order)
    effects = ref["removal_effects"].set_index("channel_name")
    totals = ref["result"].set_index("channel_name")
    effect_diff = max(
        max(
            abs(effects.loc[c, "removal_effects_conversion"] - result.removal_effects[c]),
            abs(
                effects.loc[c, "removal_effects_conversion_value"] - result.value_removal_effects[c]
            ),
        )
        for c in result.removal_effects
    )
    theirs = {
        c: (totals.loc[c, "total_conversions"], totals.loc[c, "total_conversion_value"])
        for c in totals.index
    }
    credits = result.credits()
    return {
        "removal_effect": effect_diff,
        "conversions": max(abs(credits[c][0] - theirs[c][0]) for c in credits),
        "value": max(abs(credits[c][1] - theirs[c][1]) for c in credits),
        "total_value": result.value,
    }


def _mam(js: list[Journey]) -> MAM:
    frame = pl.DataFrame(
        {
            "journey_id": [str(i) for i in range(len(js))],
            "channels": [" > ".join(j.channels) for j in js],
            "hours": [" > ".join(str(h) for h in j.hours) for j in js],
            "converted": [j.converted for j in js],
            "value": [j.value for j in js],
        }
    )
    return MAM(
        frame,
        "journey",
        "channels",
        "converted",
        time_till_conv_colname="hours",
        user_id_colname="journey_id",
        conversion_value_colname="value",
    )


def _mam_values(result) -> dict[str, float]:
    frame = result.to_polars()
    return dict(zip(frame["channels"].cast(pl.Utf8), frame["attribution"], strict=True))


def mam_models(seed: int) -> dict[str, float]:
    """The value each model credits each channel, against ``mam``."""
    js = journeys(seed)
    m = _mam(js)
    rows = [
        PathRow(j.channels, float(j.converted), j.value, float(not j.converted), j.hours)
        for j in js
    ]
    runs = {
        "first_touch": m.run_first_click,
        "last_touch": m.run_last_click,
        "linear": m.run_linear,
        "position_based": m.run_position_based,
        "time_decay": lambda: m.run_time_decay(half_life_hours=168.0),
        "shapley": lambda: m.run_shapley(max_size=len(CHANNELS)),
    }
    out = {}
    for model, run in runs.items():
        theirs = _mam_values(run())
        if model == "shapley":
            ours = shapley_credits(rows, simplified=False)
        else:
            ours = rule_credits(rows, model)
        out[model] = max(
            abs(ours.get(c, (0, 0))[1] - theirs.get(c, 0.0)) for c in set(ours) | set(theirs)
        )
    return out


def table(seeds: range = range(5)) -> str:
    """The README's table: model, reference, largest difference over ``seeds``."""
    worst: dict[tuple[str, str], float] = defaultdict(float)
    for seed in seeds:
        for model, diff in channelattribution_heuristics(seed).items():
            worst[(model, "ChannelAttribution heuristic_models")] = max(
                worst[(model, "ChannelAttribution heuristic_models")], diff
            )
        for model, diff in mam_models(seed).items():
            worst[(model, "marketing-attribution-models")] = max(
                worst[(model, "marketing-attribution-models")], diff
            )
        for order in (1, 2, 3):
            found = channelattribution_markov(seed, order)
            ref = "ChannelAttribution markov_model (2e5 walks)"
            key = (f"markov order {order}: removal effects", ref)
            worst[key] = max(worst[key], found["removal_effect"])
            key = (f"markov order {order}: value credits, share of the total value", ref)
            worst[key] = max(worst[key], found["value"] / found["total_value"])
    lines = ["| model | reference | largest difference |", "|---|---|---|"]
    lines += [f"| {m} | {r} | {d:.3g} |" for (m, r), d in worst.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
