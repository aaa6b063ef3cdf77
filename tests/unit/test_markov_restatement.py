"""Markov restatement per partition, on a real SQLite partition store."""

import pytest

from streams.attribution.credits import Learned, journey_credits, learned_credits
from streams.attribution.restate import PartitionModel, compact, shares_moved
from streams.runtime.state import PartitionStore

DAY = 86_400_000


def journey(jid: str, at: int, channels: list[str], key: str = "c1") -> dict:
    return {
        "journey_id": jid,
        "conversion_id": f"conv-{jid}",
        "conversion_touchpoint_id": f"tp-{jid}-end",
        "customer_key": key,
        "converted": True,
        "conversion_value": 100.0,
        "currency": "GBP",
        "conversion_time": at,
        "touchpoints": [
            {"touchpoint_id": f"tp-{jid}-{i}", "channel": c, "hours_to_end": 1.0}
            for i, c in enumerate(channels)
        ],
    }


@pytest.fixture
def store(tmp_path):
    s = PartitionStore(tmp_path / "p0.sqlite")
    yield s
    s.close()


def test_shares_moved_is_the_largest_change_of_any_channel():
    assert shares_moved({"A": 0.5, "B": 0.5}, {"A": 0.7, "B": 0.3}) == pytest.approx(0.2)
    assert shares_moved({"A": 1.0}, {"B": 1.0}) == pytest.approx(1.0)
    assert shares_moved({}, {}) == 0.0


def test_conversions_credited_before_a_new_model_are_stale_once_each(store):
    part = PartitionModel(store, tolerance=0.01, window_ms=90 * DAY)
    part.remember(journey("j1", 10 * DAY, ["Email"]), epoch=0)  # no model yet
    first = part.sync("v1", {"Email": 0.6, "Direct": 0.4}, now_ms=1_000)
    part.remember(journey("j2", 11 * DAY, ["Direct"]), epoch=first["epoch"])
    assert [j["journey_id"] for j in part.stale(first["epoch"], limit=10)] == ["j1"]
    assert part.stale(first["epoch"], limit=10) == []  # restated: marked with the epoch
    second = part.sync("v2", {"Email": 0.9, "Direct": 0.1}, now_ms=2_000)
    assert second["epoch"] > first["epoch"]
    assert sorted(j["journey_id"] for j in part.stale(second["epoch"], limit=10)) == ["j1", "j2"]


def test_a_model_within_the_tolerance_keeps_the_epoch(store):
    part = PartitionModel(store, tolerance=0.05, window_ms=90 * DAY)
    first = part.sync("v1", {"Email": 0.6, "Direct": 0.4}, now_ms=1_000)
    part.remember(journey("j1", DAY, ["Email"]), epoch=first["epoch"])
    again = part.sync("v1b", {"Email": 0.62, "Direct": 0.38}, now_ms=5_000)
    assert again["epoch"] == first["epoch"] and again["version"] == "v1b"
    assert part.stale(again["epoch"], limit=10) == []


def test_restatement_is_bounded_and_survives_a_reopened_store(tmp_path):
    path = tmp_path / "p0.sqlite"
    store = PartitionStore(path)
    part = PartitionModel(store, tolerance=0.01, window_ms=90 * DAY)
    for i in range(5):
        part.remember(journey(f"j{i}", DAY + i, ["Email"]), epoch=0)
    epoch = part.sync("v1", {"Email": 1.0}, now_ms=1_000)["epoch"]
    assert len(part.stale(epoch, limit=2)) == 2
    store.commit(7)
    store.close()
    reopened = PartitionModel(PartitionStore(path), tolerance=0.01, window_ms=90 * DAY)
    assert reopened.sync("v1", {"Email": 1.0}, now_ms=9_000)["epoch"] == epoch
    assert len(reopened.stale(epoch, limit=10)) == 3
    reopened.store.close()


def test_conversions_past_the_window_are_forgotten(store):
    part = PartitionModel(store, tolerance=0.01, window_ms=30 * DAY)
    part.remember(journey("old", DAY, ["Email"]), epoch=0)
    part.remember(journey("recent", 20 * DAY, ["Email"]), epoch=0)
    assert part.expire() == 0
    part.remember(journey("new", 40 * DAY, ["Email"]), epoch=0)
    assert part.expire() == 1
    epoch = part.sync("v1", {"Email": 1.0}, now_ms=1_000)["epoch"]
    assert sorted(j["journey_id"] for j in part.stale(epoch, limit=10)) == ["new", "recent"]


def test_forget_drops_only_the_customers_conversions(store):
    part = PartitionModel(store, tolerance=0.01, window_ms=90 * DAY)
    part.remember(journey("j1", DAY, ["Email"], key="c1"), epoch=0)
    part.remember(journey("j2", DAY, ["Email"], key="c2"), epoch=0)
    assert part.forget({"c1", "email:h"}) == 1
    epoch = part.sync("v1", {"Email": 1.0}, now_ms=1_000)["epoch"]
    assert [j["customer_key"] for j in part.stale(epoch, limit=10)] == ["c2"]


def test_restated_credits_replace_the_first_ones_row_for_row():
    j = journey("j1", DAY, ["Email", "Direct", "Email"])
    first = [c for c in journey_credits(j, Learned(), 1) if c["model"] == "markov"]
    restated = learned_credits(compact(j), Learned("v1", {"Email": 0.75, "Direct": 0.25}), 2)
    assert {c["model"] for c in restated} == {"markov", "shapley", "shapley_simplified"}
    again = [c for c in restated if c["model"] == "markov"]
    assert [c["credit_id"] for c in again] == [c["credit_id"] for c in first]
    assert sum(c["credit"] for c in again) == pytest.approx(1.0)
    by_channel = {c["channel"]: 0.0 for c in again}
    for c in again:
        by_channel[c["channel"]] += c["credit"]
    assert by_channel == pytest.approx({"Email": 0.75, "Direct": 0.25})
    assert {c["channel"]: c["credit"] for c in first} != pytest.approx(by_channel)
