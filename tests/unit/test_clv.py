"""BG/NBD and Gamma-Gamma against the published CDNOW fits and hand-checkable cases."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from streams.app.cli import main
from streams.scoring import clv

CDNOW = Path(__file__).parents[1] / "fixtures" / "cdnow"


@pytest.fixture(scope="module")
def cdnow():
    rows = list(csv.DictReader((CDNOW / "summary.csv").open()))
    return {k: np.array([float(r[k]) for r in rows]) for k in ("x", "t_x", "T", "zbar")}


def test_bgnbd_reproduces_the_published_cdnow_fit(cdnow):
    fit = clv.fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert fit.r == pytest.approx(0.2426, abs=5e-4)
    assert fit.alpha == pytest.approx(4.4135, abs=5e-3)
    assert fit.a == pytest.approx(0.7929, abs=5e-4)
    assert fit.b == pytest.approx(2.4258, abs=5e-3)
    # the published log-likelihood at that optimum
    ll = clv.bgnbd_log_likelihood(fit, cdnow["x"], cdnow["t_x"], cdnow["T"]).sum()
    assert ll == pytest.approx(-9582.4, abs=0.1)


def test_gamma_gamma_reproduces_the_published_cdnow_fit(cdnow):
    fit = clv.fit_gamma_gamma(cdnow["x"], cdnow["zbar"])
    assert (fit.p, fit.q, fit.v) == pytest.approx((6.25, 3.74, 15.44), abs=0.01)


def test_expected_purchases_of_a_new_customer_agree_with_a_simulation():
    params = clv.BgNbd(0.2426, 4.4135, 0.7929, 2.4258)
    rng = np.random.default_rng(5)
    n, horizon = 400_000, 39.0
    rate = rng.gamma(params.r, 1 / params.alpha, n)
    dropout = rng.beta(params.a, params.b, n)
    clock, purchases, active = np.zeros(n), np.zeros(n), np.ones(n, dtype=bool)
    for _ in range(200):  # each round: the next purchase of every still-active customer
        clock = clock + rng.exponential(1 / np.maximum(rate, 1e-12))
        active &= clock <= horizon
        purchases += active
        active &= rng.random(n) >= dropout  # after a purchase, the customer may drop out
    simulated = purchases.mean()
    error = purchases.std() / np.sqrt(n)
    assert clv.expected_purchases(params, horizon, 0, 0, 0) == pytest.approx(
        simulated, abs=4 * error
    )


def test_p_alive_and_conditional_expectations_behave():
    params = clv.BgNbd(0.2426, 4.4135, 0.7929, 2.4258)
    assert clv.p_alive(params, 0, 0, 38.86) == 1.0  # no repeat purchase: no chance to drop
    assert clv.p_alive(params, 2, 30, 38.86) > clv.p_alive(params, 2, 5, 38.86)
    recent = clv.expected_purchases(params, 39, 2, 30.43, 38.86)
    lapsed = clv.expected_purchases(params, 39, 2, 5.0, 38.86)
    assert recent > lapsed > 0
    assert clv.expected_purchases(params, 39, 10, 38, 38.86) > recent


def test_expected_spend_shrinks_towards_the_population_mean():
    params = clv.GammaGamma(6.25, 3.74, 15.44)
    population = params.p * params.v / (params.q - 1)
    assert clv.expected_spend(params, 0, 0) == pytest.approx(population)
    few, many = clv.expected_spend(params, 1, 100), clv.expected_spend(params, 20, 100)
    assert population < few < many < 100


def test_summary_counts_days_not_transactions():
    day = dt.date(2026, 1, 1)
    rows = [("c", day, 10.0), ("c", day, 5.0), ("c", day + dt.timedelta(7), 20.0), ("d", day, 1.0)]
    summary = clv.summarise(rows, end=day + dt.timedelta(14), unit="weeks")
    by = dict(
        zip(
            summary.customers,
            zip(summary.x, summary.t_x, summary.T, summary.m, strict=True),
            strict=True,
        )
    )
    assert by["c"] == (1, 1.0, 2.0, 20.0)
    assert by["d"] == (0, 0.0, 2.0, 0.0)


def cdnow_summary_x() -> np.ndarray:
    return np.array([float(r["x"]) for r in csv.DictReader((CDNOW / "summary.csv").open())])


def test_scoring_fit_cli_on_cdnow_transactions():
    result = CliRunner().invoke(
        main,
        ["scoring", "fit", "--transactions", str(CDNOW / "transactions.csv"),
         "--calibration-end", "1997-09-30", "--unit", "weeks"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.output)
    assert fitted["customers"] == 2357
    assert fitted["repeat_customers"] == int((cdnow_summary_x() > 0).sum())
    assert fitted["bgnbd"]["r"] == pytest.approx(0.2426, abs=1e-3)
    assert fitted["bgnbd"]["a"] == pytest.approx(0.7929, abs=1e-3)
    assert fitted["gamma_gamma"]["p"] == pytest.approx(6.25, abs=0.02)
