"""New-customer scores from the purchase history of every customer (pure, unit-testable).

``PurchaseHistory`` holds every conversion by customer and its order details
(category, discount use), both from the converting journeys.
``fit_scoring_model`` fits BG/NBD and Gamma-Gamma on it, in days, up to the
latest purchase seen (data time, so a backfill scores as it would have live),
and derives what a new customer is compared with: the typical new customer
(median first order value), and per dimension (acquisition channel, first
category, discount use, order value band) the lift: the mean expected 365-day
value of existing customers in that segment over all customers'.
``score_new_customer`` turns a first purchase into a ``cust.customer-scores.v1``
record.

At the first purchase BG/NBD expects the same repeat purchases of every new
customer (x = 0); what sets customers apart is the spend model, which takes the
first order's value as one observation of the customer's spend, and the
segment lifts.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.journeys.logic import check_conversion
from streams.scoring import clv

DAY_MS = 86_400_000
MIN_CUSTOMERS = 20
MIN_REPEAT_CUSTOMERS = 5
VALUE_BANDS = (25.0, 50.0, 75.0)  # first order value percentiles that bound the bands


@dataclass
class FirstPurchase:
    customer_key: str
    order_id: str
    time_ms: int
    value: float
    currency: str | None
    channel: str


@dataclass
class PurchaseHistory:
    """Every customer's conversions and their order details (category, discount use)."""

    purchases: dict[str, dict[str, tuple[int, float]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    first: dict[str, FirstPurchase] = field(default_factory=dict)
    details: dict[str, tuple[str | None, bool]] = field(default_factory=dict)
    orders: int = 0  # purchases held
    changed: bool = False

    def apply_journey(self, journey: dict[str, Any]) -> FirstPurchase | None:
        """Record a converting journey; its customer's first purchase as known now."""
        if not journey["converted"]:
            return None
        check_conversion(journey)  # the scoring stage dead-letters it
        key, order = journey["customer_key"], journey["conversion_id"]
        entry = (int(journey["conversion_time"]), float(journey["conversion_value"]))
        if self.purchases[key].get(order) != entry:
            self.orders += order not in self.purchases[key]
            self.purchases[key][order] = entry
            self.changed = True
        details = order_details(journey)
        if details is not None:
            self.details[order] = details
        first = self.first.get(key)
        if first is None or (entry[0], order) < (first.time_ms, first.order_id):
            touches = journey["touchpoints"]
            first = FirstPurchase(
                key, order, entry[0], entry[1], journey["currency"],
                touches[0]["channel"] if touches else "Direct",
            )  # fmt: skip
            self.first[key] = first
        return first

    def forget(self, keys: set[str]) -> None:
        """Drop forgotten customers' purchases and their orders' details."""
        for key in keys:
            orders = self.purchases.pop(key, None)
            self.orders -= len(orders or ())
            self.first.pop(key, None)
            for order in orders or ():
                self.details.pop(order, None)
            self.changed = self.changed or orders is not None


def order_details(journey: dict[str, Any]) -> tuple[str | None, bool] | None:
    """(category, discount used) of a converting journey's order; None when the journey
    does not say (revision 1 journeys carried no order details)."""
    category, discount = journey.get("conversion_category"), journey.get("conversion_discount")
    if category is None and discount is None:
        return None
    return category, bool(discount)


@dataclass(frozen=True)
class ScoringModel:
    bgnbd: clv.BgNbd
    gamma_gamma: clv.GammaGamma
    version: str
    first_values: list[float]  # sorted first order values
    typical_value: float  # the median first order value
    typical_365d: float
    typical_segments: dict[str, str]
    lifts: dict[tuple[str, str], float]
    cohort_365d: dict[str, float]
    new_purchases: dict[int, float]  # horizon days -> expected repeat purchases of a new one


def _band(percentile: float) -> str:
    bands = ("bottom quarter", "second quarter", "third quarter", "top quarter")
    return bands[bisect.bisect_right(VALUE_BANDS, percentile)]


def percentile_of(sorted_values: list[float], value: float) -> float:
    """Share of values at or below ``value``, 0..100."""
    if not sorted_values:
        return 50.0
    return 100.0 * bisect.bisect_right(sorted_values, value) / len(sorted_values)


def cohort_of(time_ms: int) -> str:
    return dt.datetime.fromtimestamp(time_ms / 1000, tz=dt.UTC).strftime("%Y-%m")


def segments(
    first: FirstPurchase, details: tuple[str | None, bool] | None, percentile: float
) -> dict[str, str]:
    category, discount = details if details else (None, False)
    return {
        "acquisition_channel": first.channel,
        "first_category": category or "unknown",
        "order_value": _band(percentile),
        "discount_use": "yes" if discount else "no",
    }


def fit_scoring_model(
    history: PurchaseHistory, previous: ScoringModel | None = None
) -> ScoringModel | None:
    """The model over everything seen; None while there is too little to fit. With
    ``previous`` (the last fit) the search starts from its parameters: refits of a
    growing history then take a fraction of the time."""
    customers = [k for k, orders in history.purchases.items() if orders]
    if len(customers) < MIN_CUSTOMERS:
        return None
    end = max(t for k in customers for t, _ in history.purchases[k].values())
    rows = [
        (k, dt.date.fromordinal(719163 + t // DAY_MS), v)  # 719163: 1970-01-01
        for k in customers
        for t, v in history.purchases[k].values()
    ]
    summary = clv.summarise(rows, dt.date.fromordinal(719163 + end // DAY_MS), "days")
    if int((summary.x > 0).sum()) < MIN_REPEAT_CUSTOMERS:
        return None
    bg = clv.fit_bgnbd(summary.x, summary.t_x, summary.T, previous and previous.bgnbd)
    gg = clv.fit_gamma_gamma(summary.x, summary.m, previous and previous.gamma_gamma)
    # each existing customer's expected next-365-day value, for the segment lifts
    first_values = sorted(history.first[k].value for k in summary.customers)
    value_365 = clv.expected_purchases(bg, 365, summary.x, summary.t_x, summary.T) * np.where(
        summary.x > 0,
        clv.expected_spend(gg, summary.x, summary.m),
        clv.expected_spend(gg, 1, [history.first[k].value for k in summary.customers]),
    )
    overall = float(value_365.mean()) or 1.0
    by_segment: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_cohort: dict[str, list[float]] = defaultdict(list)
    for customer, value in zip(summary.customers, value_365, strict=True):
        first = history.first[customer]
        pct = percentile_of(first_values, first.value)
        for dimension, seg in segments(first, history.details.get(first.order_id), pct).items():
            by_segment[(dimension, seg)].append(float(value))
        by_cohort[cohort_of(first.time_ms)].append(float(value))
    typical_value = statistics.median(first_values)
    new = {h: float(clv.expected_purchases(bg, h, 0, 0, 0)) for h in (90, 365)}
    typical_segments = {
        dimension: statistics.mode(
            seg for (dim, seg), values in by_segment.items() if dim == dimension for _ in values
        )
        for dimension in ("acquisition_channel", "first_category", "order_value", "discount_use")
    }
    if not all(np.isfinite([*new.values(), typical_value, overall])):
        return None  # a fit the predictions cannot use: keep the previous model
    params = (*vars(bg).values(), *vars(gg).values(), len(customers), end)
    digest = hashlib.blake2b(repr(params).encode(), digest_size=6).hexdigest()
    return ScoringModel(
        bgnbd=bg,
        gamma_gamma=gg,
        version=f"bgnbd-gg-{cohort_of(end)}-{len(customers)}c-{digest}",
        first_values=first_values,
        typical_value=typical_value,
        typical_365d=new[365] * float(clv.expected_spend(gg, 1, typical_value)),
        typical_segments=typical_segments,
        lifts={k: statistics.fmean(v) / overall for k, v in by_segment.items()},
        cohort_365d={k: statistics.fmean(v) for k, v in by_cohort.items()},
        new_purchases=new,
    )


def score_new_customer(
    model: ScoringModel,
    first: FirstPurchase,
    details: tuple[str | None, bool] | None,
    now_ms: int,
) -> dict[str, Any]:
    """The ``cust.customer-scores.v1`` record of a customer's first purchase."""
    spend = float(clv.expected_spend(model.gamma_gamma, 1, first.value))
    percentile = percentile_of(model.first_values, first.value)
    mine = segments(first, details, percentile)
    category, discount = details if details else (None, False)
    value_365 = model.new_purchases[365] * spend
    cohort = cohort_of(first.time_ms)
    ident = hashlib.blake2b(f"{first.customer_key}\x1f{first.order_id}".encode(), digest_size=16)
    return {
        "score_id": "score-" + ident.hexdigest(),
        "customer_key": first.customer_key,
        "first_order_id": first.order_id,
        "first_order_time": first.time_ms,
        "first_order_value": first.value,
        "currency": first.currency,
        "acquisition_channel": first.channel,
        "first_category": category,
        "discount_used": discount,
        "cohort": cohort,
        "order_value_percentile": percentile,
        "expected_purchases_90d": model.new_purchases[90],
        "expected_purchases_365d": model.new_purchases[365],
        "expected_value_90d": model.new_purchases[90] * spend,
        "expected_value_365d": value_365,
        "p_alive": 1.0,  # BG/NBD: nobody drops out before a repeat purchase
        "typical_expected_value_365d": model.typical_365d,
        "cohort_expected_value_365d": model.cohort_365d.get(cohort, value_365),
        "differences": [
            {
                "dimension": dimension,
                "customer_value": value,
                "typical_value": model.typical_segments[dimension],
                "lift": model.lifts.get((dimension, value)),
            }
            for dimension, value in mine.items()
        ],
        "model_version": model.version,
        "scored_at": now_ms,
    }
