"""When the scoring stage refits its model: growth, age and erasure, at most every interval."""

from streams.core.settings import Settings
from streams.scoring.stage import ScoringStage


def purchase(customer: str, order: str) -> dict:
    return {
        "customer_key": customer, "converted": True, "conversion_id": order,
        "conversion_time": 1_700_000_000_000, "conversion_value": 10.0, "currency": "GBP",
        "touchpoints": [], "conversion_touchpoint_id": f"tp-{order}",
    }  # fmt: skip


def fitted_stage(orders: int, at: float) -> ScoringStage:
    stage = ScoringStage(Settings(), fit_interval_s=10, refit_growth=0.05, max_fit_age_s=3_600)
    for i in range(orders):
        stage.history.apply_journey(purchase(f"c{i}", f"o{i}"))
    assert stage._fit_due(at)  # no model yet
    stage.model = object()  # as if fitted now
    stage.history.changed = False
    stage._fitted_at, stage._fitted_orders = at, stage.history.orders
    return stage


def test_a_refit_waits_for_5_percent_more_purchases():
    stage = fitted_stage(100, at=100.0)
    for i in range(4):
        stage.history.apply_journey(purchase("c1", f"repeat-{i}"))
    assert stage.history.orders == 104 and not stage._fit_due(500.0)
    stage.history.apply_journey(purchase("c1", "repeat-4"))
    assert not stage._fit_due(105.0)  # grown, but within the interval
    assert stage._fit_due(110.0)


def test_a_replayed_purchase_is_not_growth():
    stage = fitted_stage(100, at=100.0)
    for i in range(100):
        stage.history.apply_journey(purchase(f"c{i}", f"o{i}"))
    assert stage.history.orders == 100 and not stage._fit_due(1_000.0)


def test_any_new_purchase_refits_after_an_hour_and_an_erasure_at_once():
    stage = fitted_stage(100, at=100.0)
    assert not stage._fit_due(100.0 + 7_200)  # nothing new: no refit however old
    stage.history.apply_journey(purchase("c1", "repeat"))
    assert not stage._fit_due(100.0 + 3_599) and stage._fit_due(100.0 + 3_600)
    stage.on_erasure({"customer_key": "c2", "identifiers": []})
    assert stage.history.orders == 100 and stage._fit_due(111.0)


def test_a_slow_fit_spaces_the_next_one_to_ten_times_its_duration():
    stage = fitted_stage(100, at=100.0)
    stage._fit_seconds = 5.0
    for i in range(10):
        stage.history.apply_journey(purchase("c1", f"repeat-{i}"))
    assert not stage._fit_due(110.0) and not stage._fit_due(149.0)
    assert stage._fit_due(150.0)
