"""Profiles: provenance and confidence of attributes, channel responsiveness by hand."""

from __future__ import annotations

import pytest
from scipy import stats

from streams.profiles.logic import (
    RESPONSE_WINDOW_MS,
    apply_score,
    apply_touchpoint,
    new_profile,
    profile_record,
    responsiveness,
)

HOUR = 3_600_000


def tp(n: int, kind: str, t: int, **extra) -> dict:
    base = {
        "touchpoint_id": f"tp-{n}", "source_event_id": f"ev-{n}", "source_system": "messaging",
        "event_type": kind, "event_time": t, "processed_at": t, "channel": "Email",
        "attributes": {}, "message_id": None, "is_conversion": False, "conversion_id": None,
        "revenue": None, "product_category": None, "device": None,
    }  # fmt: skip
    return {**base, **extra}


def message(n: int, kind: str, t: int, channel: str, message_id: str) -> dict:
    return tp(n, kind, t, message_id=message_id, attributes={"message_channel": channel})


def test_response_rate_is_the_beta_posterior_and_silence_is_suppressed():
    profile = new_profile()
    events = [message(i, "message_sent", i * 10 * HOUR, "email", f"e{i}") for i in range(4)]
    events += [message(10, "message_opened", 1 * HOUR, "email", "e0")]  # 1 of 4 answered
    events += [message(20 + i, "message_sent", i * 10 * HOUR, "sms", f"s{i}") for i in range(5)]
    # an SMS "open" after the window does not count
    events += [message(30, "message_opened", 2 * RESPONSE_WINDOW_MS, "sms", "s0")]
    for event in events:
        assert apply_touchpoint(profile, event)
    rows = {r["channel"]: r for r in responsiveness(profile)}
    email, sms = rows["email"], rows["sms"]
    assert (email["sent"], email["responses"], sms["sent"], sms["responses"]) == (4, 1, 5, 0)
    assert email["response_rate"] == pytest.approx(2 / 6)  # Beta(1 + 1, 1 + 3)
    assert email["ci_low"] == pytest.approx(stats.beta(2, 4).ppf(0.05))
    assert sms["response_rate"] == pytest.approx(1 / 7)
    assert (email["recommendation"], sms["recommendation"]) == ("keep", "suppress")
    assert email["last_response_at"] == 1 * HOUR


def test_a_visit_from_the_channel_is_a_response_and_replays_change_nothing():
    profile = new_profile()
    apply_touchpoint(profile, message(1, "message_sent", 0, "push", "p1"))
    visit = tp(2, "page", 5 * HOUR, channel="Mobile Push Notifications", source_system="web")
    assert apply_touchpoint(profile, visit)
    assert not apply_touchpoint(profile, visit)
    (row,) = responsiveness(profile)
    assert (row["channel"], row["responses"]) == ("push", 1)


def test_attributes_carry_confidence_and_provenance():
    profile = new_profile()
    order = tp(1, "purchase", 100, source_system="web", channel="Paid Search",
               is_conversion=True, conversion_id="o1", revenue=40.0, product_category="Shoes",
               device={"type": "mobile"})  # fmt: skip
    view = tp(2, "product_viewed", 50, source_system="web", channel="Paid Search",
              product_category="Apparel")  # fmt: skip
    apply_touchpoint(profile, view)
    apply_touchpoint(profile, order)
    apply_touchpoint(profile, tp(3, "purchase", 200, source_system="web", is_conversion=True,
                                 conversion_id="o2", revenue=10.0))  # fmt: skip
    apply_score(profile, {"score_id": "s1", "expected_value_365d": 55.555, "p_alive": 1.0,
                          "scored_at": 300})  # fmt: skip
    record = profile_record("cust-1", profile)
    attrs = {a["name"]: a for a in record["attributes"]}
    assert attrs["lifetime_value"]["value"] == "50.0"
    assert attrs["lifetime_value"]["confidence"] == "observed"
    assert attrs["lifetime_value"]["source_event_id"] == "ev-3"
    assert attrs["order_count"]["value"] == "2"
    assert attrs["preferred_category"]["confidence"] == "inferred"
    assert attrs["preferred_category"]["probability"] == pytest.approx(0.5)
    assert attrs["device"]["value"] == "mobile"
    assert attrs["predicted_value_365d"]["value"] == "55.55"
    assert attrs["predicted_value_365d"]["source_event_id"] == "s1"
    assert record["version"] == 1 and profile_record("cust-1", profile)["version"] == 2


def test_declared_traits_become_declared_attributes():
    from streams.normalise.logic import declared_traits

    traits = declared_traits(
        {"traits_json": '{"city": "Leeds", "country": "GB", "email": "x@y.z", '
                        '"preferred_category": "Shoes", "first_name": "Sam"}'}
    )  # fmt: skip
    assert traits == {"trait.city": "Leeds", "trait.country": "GB",
                      "trait.preferred_category": "Shoes"}  # fmt: skip
    assert declared_traits({"traits_json": "not json"}) == {}
    profile = new_profile()
    apply_touchpoint(profile, tp(1, "identify", 10, source_system="web", attributes=traits))
    attrs = {a["name"]: a for a in profile_record("c", profile)["attributes"]}
    assert (attrs["location"]["value"], attrs["location"]["confidence"]) == (
        "Leeds, GB",
        "declared",
    )
    assert attrs["declared_category"]["value"] == "Shoes"
    assert (
        attrs["location"]["probability"] is None and attrs["location"]["source_event_id"] == "ev-1"
    )


def test_social_interactions_are_an_observed_attribute_counted_once_per_touchpoint():
    profile = new_profile()
    comments = [
        tp(i, "social_comment", i * HOUR, source_system="social", channel="Social Post")
        for i in range(3)
    ]
    for event in [*comments, comments[1]]:  # a replayed touchpoint changes nothing
        apply_touchpoint(profile, event)
    attribute = {a["name"]: a for a in profile_record("c1", profile)["attributes"]}[
        "social_interactions"
    ]
    assert (attribute["value"], attribute["confidence"]) == ("3", "observed")
    assert attribute["source_event_id"] == "ev-2"
    assert all(row["channel"] != "social" for row in responsiveness(profile))
