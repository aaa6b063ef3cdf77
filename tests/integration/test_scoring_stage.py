"""The scoring stage on the real broker: CDNOW's purchases as converting journeys in, one
score per customer out, none twice after a restart and a replay."""

from __future__ import annotations

import threading

import pytest

from connectors.testing import read_topic
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.jsonavro import from_json
from streams.core.settings import Settings
from streams.runtime.stage import StageRunner
from streams.scoring.stage import ScoringStage
from tests.polling import wait_until
from tests.sinkhelpers import produce
from tests.unit.test_scoring_model import cdnow_journeys

pytestmark = pytest.mark.broker

JOURNEYS, SCORES = "cust.journeys.v1", "cust.customer-scores.v1"


def _records(topic: str, values: list[dict]) -> list[dict]:
    catalog = default_catalog()
    base = catalog.examples(topic)[0][1]
    schema = catalog.value_schema(topic).raw
    out = []
    for value in values:
        record = {**base, **value}
        if "touchpoints" in value:  # complete each touch from the example's first one
            record["touchpoints"] = [{**base["touchpoints"][0], **t} for t in value["touchpoints"]]
        out.append(from_json(schema, record))
    return out


class Scoring:
    def __init__(self, bootstrap: str, root) -> None:
        settings = Settings(runtime_dir=root)
        stage = ScoringStage(Settings(), fit_interval_s=0.5)
        stage.attach_side_inputs(make_codec(settings), settings, bootstrap)
        self.runner = StageRunner(stage, settings, bootstrap, make_codec(settings))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.runner.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def test_every_customer_is_scored_once_at_the_first_purchase(bus, tmp_path):
    journeys = cdnow_journeys()
    first_orders = {}
    for journey in sorted(journeys, key=lambda j: (j["conversion_time"], j["conversion_id"])):
        first_orders.setdefault(journey["customer_key"], journey)
    # the order details of a third of the first purchases travel with their journeys
    with_details = {j["conversion_id"] for j in list(first_orders.values())[::3]}
    for journey in journeys:
        known = journey["conversion_id"] in with_details
        journey["conversion_category"] = "Jazz" if known else None
        journey["conversion_discount"] = True if known else None
    # the journeys stage releases a customer's conversions in time order
    journeys.sort(key=lambda j: (j["conversion_time"], j["conversion_id"]))
    produce(bus, JOURNEYS, _records(JOURNEYS, journeys), "customer_key")

    scoring = Scoring(bus, tmp_path / "rt")
    try:
        assert wait_until(lambda: len(read_topic(bus, SCORES, SCORES)) >= len(first_orders), 120), (
            "not every customer was scored"
        )
    finally:
        scoring.close()
    scores = [r.value for r in read_topic(bus, SCORES, SCORES)]
    assert len(scores) == len(first_orders) == 2357
    assert {s["first_order_id"] for s in scores} == {
        j["conversion_id"] for j in first_orders.values()
    }
    for score in scores:
        known = score["first_order_id"] in with_details
        assert score["first_category"] == ("Jazz" if known else None)
        assert score["discount_used"] is known
        assert score["expected_value_365d"] > score["expected_value_90d"] > 0
        assert score["model_version"].startswith("bgnbd-gg-")

    # a restart, and the journeys replayed upstream: nobody is scored again
    produce(bus, JOURNEYS, _records(JOURNEYS, journeys[:500]), "customer_key")
    again = Scoring(bus, tmp_path / "rt")
    try:
        assert wait_until(lambda: again.runner.processed >= 500, 60)
    finally:
        again.close()
    assert len(read_topic(bus, SCORES, SCORES)) == len(first_orders)
