"""New-customer scores from purchase histories (CDNOW purchases as converting journeys)."""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from pathlib import Path

import pytest

from connectors.generator.population import PopulationGenerator
from streams.scoring import clv
from streams.scoring.model import (
    PurchaseHistory,
    fit_scoring_model,
    percentile_of,
    score_new_customer,
)

CDNOW = Path(__file__).parents[1] / "fixtures" / "cdnow" / "transactions.csv"
CHANNELS = ("Email", "Paid Search", "Organic Search")


def cdnow_journeys(limit_customers: int | None = None) -> list[dict]:
    """Each CDNOW purchase as a converting journey (channel by customer, for segments)."""
    journeys = []
    for n, row in enumerate(csv.DictReader(CDNOW.open())):
        customer = int(row["customer_id"])
        if limit_customers is not None and customer > limit_customers:
            continue
        day = dt.datetime.fromisoformat(row["date"]).replace(tzinfo=dt.UTC)
        journeys.append({
            "journey_id": f"j-{n}", "customer_key": f"c-{customer}", "converted": True,
            "conversion_id": f"o-{n}", "conversion_time": int(day.timestamp() * 1000),
            "conversion_value": float(row["amount"]), "currency": "USD",
            "touchpoints": [{"channel": CHANNELS[customer % 3]}],
        })  # fmt: skip
    return journeys


@pytest.fixture(scope="module")
def history() -> PurchaseHistory:
    history = PurchaseHistory()
    for journey in cdnow_journeys():
        history.apply_journey(journey)
    return history


def test_the_model_is_the_maximum_likelihood_fit_of_the_history(history):
    model = fit_scoring_model(history)
    assert model is not None
    rows = [
        (k, dt.date.fromordinal(719163 + t // 86_400_000), v)
        for k, orders in history.purchases.items()
        for t, v in orders.values()
    ]
    summary = clv.summarise(rows, unit="days")
    direct = clv.fit_bgnbd(summary.x, summary.t_x, summary.T)
    assert model.bgnbd.r == pytest.approx(direct.r, rel=1e-6)
    # in days, the CDNOW rate scale is about 7x the published weekly alpha
    assert 0.1 < model.bgnbd.r < 0.5 and 20 < model.bgnbd.alpha < 60
    assert model.new_purchases[365] > model.new_purchases[90] > 0


def test_a_new_customer_is_scored_against_the_typical_one(history):
    model = fit_scoring_model(history)
    by_value = sorted(history.first.values(), key=lambda f: (f.value, f.customer_key))
    big, small = by_value[-1], by_value[0]
    high = score_new_customer(model, big, ("Jazz", True), 1)
    low = score_new_customer(model, small, None, 1)
    assert high["expected_value_365d"] > model.typical_365d > low["expected_value_365d"]
    assert high["expected_purchases_365d"] == low["expected_purchases_365d"]  # x = 0 for both
    assert high["expected_value_365d"] == pytest.approx(
        model.new_purchases[365] * clv.expected_spend(model.gamma_gamma, 1, big.value)
    )
    assert high["order_value_percentile"] == 100.0 and high["p_alive"] == 1.0
    assert high["first_category"] == "Jazz" and high["discount_used"] is True
    assert low["first_category"] is None
    dims = {d["dimension"]: d for d in high["differences"]}
    assert set(dims) == {"acquisition_channel", "first_category", "order_value", "discount_use"}
    assert dims["order_value"]["customer_value"] == "top quarter"
    assert dims["acquisition_channel"]["lift"] > 0
    assert high["score_id"] == score_new_customer(model, big, None, 2)["score_id"]
    assert high["cohort"] == big_cohort(big.time_ms) and high["model_version"] == model.version


def big_cohort(time_ms: int) -> str:
    return dt.datetime.fromtimestamp(time_ms / 1000, tz=dt.UTC).strftime("%Y-%m")


def test_too_little_history_is_no_model():
    history = PurchaseHistory()
    for journey in cdnow_journeys(limit_customers=10):
        history.apply_journey(journey)
    assert fit_scoring_model(history) is None


def test_a_replayed_journey_changes_nothing(history):
    journey = cdnow_journeys(limit_customers=10)[0]
    history.changed = False
    history.apply_journey(journey)
    assert not history.changed


def test_percentiles():
    assert percentile_of([1, 2, 3, 4], 2) == 50.0
    assert percentile_of([], 9) == 50.0


@pytest.mark.parametrize(("shuffle_seed", "customers"), [(14, 68), (17, 68), (18, 84), (14, 340)])
def test_small_early_samples_still_give_finite_scores(shuffle_seed, customers):
    """The first conversions a live stage sees, in some arrival order. On these samples
    of the generator's population the unbounded likelihood kept rising towards a
    limit (parameters near 1e17) and every score's expected value was NaN."""
    gen = PopulationGenerator(1000, seed=11)
    gen.generate()
    conversions = gen.truth.conversions[:]
    random.Random(shuffle_seed).shuffle(conversions)
    history = PurchaseHistory()
    for c in conversions[:customers]:
        history.apply_journey({
            "customer_key": c.customer_id, "converted": True, "conversion_id": c.conversion_id,
            "conversion_time": c.time, "conversion_value": c.value, "currency": "USD",
            "touchpoints": [{"channel": c.channels[0] if c.channels else "Direct"}],
        })  # fmt: skip
    model = fit_scoring_model(history)
    assert model is not None
    for first in history.first.values():
        score = score_new_customer(model, first, None, 1)
        assert math.isfinite(score["expected_value_365d"]) and score["expected_value_365d"] > 0
        assert math.isfinite(score["typical_expected_value_365d"])


def test_a_refit_from_the_previous_model_finds_the_same_maximum(history):
    half = PurchaseHistory()
    for journey in cdnow_journeys(limit_customers=1200):
        half.apply_journey(journey)
    previous = fit_scoring_model(half)
    cold, warm = fit_scoring_model(history), fit_scoring_model(history, previous)
    assert previous.bgnbd != cold.bgnbd  # a different history: a different start
    for got, want in ((warm.bgnbd, cold.bgnbd), (warm.gamma_gamma, cold.gamma_gamma)):
        for name, value in vars(want).items():
            assert getattr(got, name) == pytest.approx(value, rel=1e-5), name
