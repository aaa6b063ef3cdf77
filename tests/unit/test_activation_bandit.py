"""Message decisions: Thompson sampling learns the best variant; the guardrail holds."""

from __future__ import annotations

import random

import pytest

from streams.activation.bandit import decide, reward
from streams.activation.definitions import Variant

ALL = ("email", "push", "sms", "social")
VARIANTS = (
    Variant("plain", "Hello", ALL),
    Variant("category", "New {preferred_category}", ALL, ("preferred_category",)),
    Variant("city", "An evening in {location}", ("email",), ("location",)),
    Variant("points", "Double points", ALL),
    Variant("value", "You spent {lifetime_value}", ALL, ("lifetime_value",)),
)


def attr(value, confidence, probability=None) -> dict:
    return {"value": value, "confidence": confidence, "probability": probability}


def request(i: int, channel: str | None = None) -> dict:
    return {
        "request_id": f"r{i}",
        "customer_key": f"c{i % 97}",
        "audience": "a",
        "channel": channel,
    }


def test_thompson_sampling_finds_the_best_variant_within_5000_sends():
    truth = {"plain": 0.03, "category": 0.12, "city": 0.05, "points": 0.05, "value": 0.04}
    attributes = {
        "preferred_category": attr("Shoes", "inferred", 0.9),
        "location": attr("Leeds, GB", "declared"),
        "lifetime_value": attr("120.5", "observed"),
    }
    arms: dict = {}
    responses = random.Random(1)
    chosen = []
    for i in range(5000):
        d = decide(request(i, "email"), VARIANTS, attributes, {}, None, arms, 0.8, 10, i)
        chosen.append(d["variant"])
        if responses.random() < truth[d["variant"]]:
            reward(arms, d["variant"])
    last = chosen[-1000:]
    share = last.count("category") / len(last)
    print(f"best variant's share of the last 1000 of 5000 sends: {share:.1%}")
    assert share > 0.8
    assert sum(s for s, _ in arms.values()) == 5000


def test_no_decision_uses_an_inferred_attribute_below_the_floor():
    weak = {"preferred_category": attr("Shoes", "inferred", 0.6)}
    for i in range(300):
        d = decide(request(i), VARIANTS, weak, {}, None, {}, 0.8, 10, 0)
        assert d["variant"] in ("plain", "points")
        assert d["attributes_used"] == []
    strong = {"preferred_category": attr("Shoes", "inferred", 0.85)}
    used = [
        d["attributes_used"]
        for i in range(300)
        if (d := decide(request(i), VARIANTS, strong, {}, None, {}, 0.8, 10, 0))["variant"]
        == "category"
    ]
    assert used and all(u == [{"name": "preferred_category", **strong["preferred_category"]}]
                        for u in used)  # fmt: skip


def test_channels_follow_the_decisions_and_a_suppressed_channel_is_held():
    decisions = {"email": "suppress", "push": "keep"}
    d = decide(request(1), VARIANTS, {}, decisions, "push", {}, 0.8, 10, 0)
    assert (d["outcome"], d["channel"]) == ("send", "push")
    held = decide(request(2, "email"), VARIANTS, {}, decisions, None, {}, 0.8, 10, 0)
    assert (held["outcome"], held["variant"]) == ("hold", None)
    assert "email is suppressed" in held["reason"]
    everything = dict.fromkeys(ALL, "suppress")
    assert decide(request(3), VARIANTS, {}, everything, None, {}, 0.8, 10, 0)["outcome"] == "hold"


def test_a_request_decided_again_gets_the_same_answer_and_sets_are_capped():
    first = decide(request(7), VARIANTS, {}, {}, None, {"plain": [10, 2]}, 0.8, 10, 0)
    again = decide(request(7), VARIANTS, {}, {}, None, {"plain": [10, 2]}, 0.8, 10, 5)
    assert (first["variant"], first["message_id"]) == (again["variant"], again["message_id"])
    assert first["variants_in_use"] == len(VARIANTS)
    with pytest.raises(ValueError, match="above the cap"):
        decide(request(8), VARIANTS, {}, {}, None, {}, 0.8, 3, 0)
