"""Channel decisions from profiles: social answers make an ignored email suppressed."""

from __future__ import annotations

from streams.activation.channels import channel_decisions, decision_changes


def row(channel: str, sent: int, responses: int, recommendation: str = "keep") -> dict:
    return {
        "channel": channel,
        "sent": sent,
        "responses": responses,
        "response_rate": (1 + responses) / (2 + sent),
        "ci_low": 0.0,
        "ci_high": 0.05 if recommendation == "reduce" else 0.5,
        "recommendation": recommendation,
    }


SOCIAL = {"social_interactions": {"value": "3", "confidence": "observed", "probability": None}}


def test_email_ignorer_who_answers_on_social_is_suppressed_for_email_and_kept_on_social():
    decisions, preferred = channel_decisions([row("email", 5, 0)], SOCIAL)
    assert decisions["email"]["decision"] == "suppress"
    assert "social (3)" in decisions["email"]["reason"]
    assert decisions["social"]["decision"] == "keep"
    assert preferred == "social"


def test_silence_alone_is_not_suppressed_and_responsive_channels_are_kept():
    decisions, preferred = channel_decisions([row("email", 5, 0)], {})
    assert decisions["email"]["decision"] == "keep" and preferred is None
    decisions, _ = channel_decisions([row("email", 5, 2), row("push", 2, 0)], SOCIAL)
    assert decisions["email"]["decision"] == "keep"
    assert decisions["push"]["decision"] == "keep"  # fewer than 3 sends: too early
    decisions, _ = channel_decisions([row("sms", 40, 1, "reduce")], {})
    assert decisions["sms"]["decision"] == "reduce"


def test_decisions_are_published_only_when_they_change_in_version_order():
    state: dict = {}
    first = decision_changes(state, "c1", 1, [row("email", 1, 0)], {}, 10)
    assert [(r["channel"], r["decision"], r["previous_decision"]) for r in first] == [
        ("email", "keep", None)
    ]
    assert decision_changes(state, "c1", 2, [row("email", 2, 0)], {}, 20) == []
    changed = decision_changes(state, "c1", 3, [row("email", 5, 0)], SOCIAL, 30)
    assert {(r["channel"], r["decision"], r["previous_decision"]) for r in changed} == {
        ("email", "suppress", "keep"),
        ("social", "keep", None),
    }
    assert decision_changes(state, "c1", 3, [row("email", 9, 9)], {}, 40) == []  # replay
    again = decision_changes({}, "c1", 3, [row("email", 5, 0)], SOCIAL, 99)
    assert {r["decision_id"] for r in again} == {r["decision_id"] for r in changed}
