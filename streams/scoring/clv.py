"""Customer lifetime value: BG/NBD (purchases) and Gamma-Gamma (spend), by maximum likelihood.

Pure functions over numpy arrays, after Fader, Hardie & Lee, "Counting Your
Customers the Easy Way" (2005) and "RFM and CLV" (2005). A customer is
summarised as ``x`` repeat purchases (purchase days after the first), ``t_x``
the time of the last one and ``T`` the time since the first, both measured from
the first purchase in the fit's time unit; spend as ``m`` the mean value of the
repeat purchases.

On the CDNOW sample (2,357 customers, 39 weeks) the fits reproduce the
published parameters: BG/NBD r=0.2426, alpha=4.4135, a=0.7929, b=2.4258 and
Gamma-Gamma p=6.25, q=3.74, v=15.44 (``tests/unit/test_clv.py``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, astuple, dataclass

import numpy as np
from scipy import optimize, special

from streams.core.errors import InvalidRecord

DAY_UNITS = {"days": 1.0, "weeks": 7.0}


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    """Gamma-Gamma parameters of the spend per transaction: p, q, v."""

    p: float
    q: float
    v: float


@dataclass(frozen=True)
class Summary:
    """Per customer: repeat purchases, time of the last, age (in the fit's unit), mean spend."""

    customers: list[str]
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    m: np.ndarray  # mean value of the repeat purchases (0 when x == 0)


# -- BG/NBD ------------------------------------------------------------------------------
def bgnbd_log_likelihood(
    params: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Each customer's log-likelihood (equation 6 of Fader, Hardie & Lee 2005)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = (
        special.gammaln(a + b)
        + special.gammaln(b + x)
        - special.gammaln(b)
        - special.gammaln(a + b + x)
    )
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    a4 = np.full_like(a3, -np.inf)
    a4[repeat] = (
        np.log(a) - np.log(b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    )
    return a1 + a2 + np.logaddexp(a3, a4)


# Every parameter stays within [1e-4, 1e6]. On a small or untypical sample the
# likelihood can keep rising towards a limit (r, alpha -> inf is a Poisson rate,
# a, b -> inf a fixed dropout chance); unbounded, the fit walks to 1e17 and the
# predictions (hyp2f1) become NaN. A bounded fit stops near the limit instead,
# where the predictions are finite and all but equal to the limit's.
LOG_BOUNDS = (np.log(1e-4), np.log(1e6))


def _fit(negative_ll, start: np.ndarray) -> np.ndarray:
    """Minimise over bounded log-parameters (keeps them positive); Nelder-Mead, then
    polished."""
    bounds = [LOG_BOUNDS] * len(start)
    start = np.clip(start, *LOG_BOUNDS)
    first = optimize.minimize(
        negative_ll,
        start,
        method="Nelder-Mead",
        bounds=bounds,
        options={"maxiter": 20_000, "xatol": 1e-9, "fatol": 1e-10},
    )
    best = optimize.minimize(negative_ll, first.x, method="L-BFGS-B", bounds=bounds)
    return np.exp(best.x if best.fun <= first.fun else first.x)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, start: BgNbd | None = None) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters (searched from ``start``, e.g. the previous
    fit of a slightly smaller history, when given)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    if len(x) == 0:
        raise InvalidRecord("no_data", "no customers to fit")

    def negative(log_params: np.ndarray) -> float:
        value = -bgnbd_log_likelihood(BgNbd(*np.exp(log_params)), x, t_x, T).sum()
        return value if np.isfinite(value) else 1e300

    first = astuple(start) if start else (1.0, max(T.mean(), 1e-3), 1.0, 1.0)
    return BgNbd(*map(float, _fit(negative, np.log(first))))


def _odds_dead(params: BgNbd, x, t_x, T) -> np.ndarray:
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    odds = np.zeros_like(x)
    repeat = x > 0
    odds[repeat] = (
        params.a
        / (params.b + x[repeat] - 1)
        * ((params.alpha + T[repeat]) / (params.alpha + t_x[repeat])) ** (params.r + x[repeat])
    )
    return odds


def p_alive(params: BgNbd, x, t_x, T) -> np.ndarray:
    """P(still active | x, t_x, T)."""
    return 1.0 / (1.0 + _odds_dead(params, x, t_x, T))


def expected_purchases(params: BgNbd, t: float, x, t_x, T) -> np.ndarray:
    """Expected purchases in the next ``t`` time units, given the history (equation 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    first = (a + b + x - 1) / (a - 1)
    second = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
    return first * second / (1.0 + _odds_dead(params, x, t_x, T))


# -- Gamma-Gamma -------------------------------------------------------------------------
def gamma_gamma_log_likelihood(params: GammaGamma, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Each repeat customer's log-likelihood of mean spend ``m`` over ``x`` purchases."""
    p, q, v = params.p, params.q, params.v
    return (
        special.gammaln(p * x + q)
        - special.gammaln(p * x)
        - special.gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(v + x * m)
    )


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray, start: GammaGamma | None = None) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from repeat customers (x > 0, m > 0),
    searched from ``start`` when given."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) == 0:
        raise InvalidRecord("no_data", "no repeat customers to fit spend on")

    def negative(log_params: np.ndarray) -> float:
        value = -gamma_gamma_log_likelihood(GammaGamma(*np.exp(log_params)), x, m).sum()
        return value if np.isfinite(value) else 1e300

    first = astuple(start) if start else (1.0, 1.0, max(m.mean(), 1e-3))
    return GammaGamma(*map(float, _fit(negative, np.log(first))))


def expected_spend(params: GammaGamma, x, m) -> np.ndarray:
    """Expected value of a future transaction given ``x`` repeat purchases of mean ``m``
    (the population mean p*v/(q-1) when x == 0)."""
    p, q, v = params.p, params.q, params.v
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    return p * (v + x * m) / (p * x + q - 1)


# -- summaries ---------------------------------------------------------------------------
def summarise(
    transactions: Iterable[tuple[str, dt.date, float]],
    end: dt.date | None = None,
    unit: str = "days",
) -> Summary:
    """RFM summary of ``(customer, date, amount)`` rows up to ``end`` (default: the last
    date). Purchases on one day count once (amounts added); the first purchase is
    the customer's acquisition and not a repeat."""
    if unit not in DAY_UNITS:
        raise InvalidRecord("invalid_value", f"unit must be one of {sorted(DAY_UNITS)}")
    days: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    for customer, date, amount in transactions:
        if end is None or date <= end:
            days[customer][date] += amount
    if not days:
        raise InvalidRecord("no_data", "no transactions")
    last = end or max(d for per in days.values() for d in per)
    scale = DAY_UNITS[unit]
    customers, x, t_x, T, m = [], [], [], [], []
    for customer, per in days.items():
        dates = sorted(per)
        first = dates[0]
        customers.append(customer)
        x.append(len(dates) - 1)
        t_x.append((dates[-1] - first).days / scale)
        T.append((last - first).days / scale)
        repeat = [per[d] for d in dates[1:]]
        m.append(sum(repeat) / len(repeat) if repeat else 0.0)
    return Summary(customers, *(np.array(v, dtype=float) for v in (x, t_x, T, m)))


def fit_parameters(summary: Summary) -> dict[str, dict[str, float]]:
    """Both fits of a summary, as plain numbers (for JSON)."""
    bg = fit_bgnbd(summary.x, summary.t_x, summary.T)
    gg = fit_gamma_gamma(summary.x, summary.m)
    return {"bgnbd": asdict(bg), "gamma_gamma": asdict(gg)}
