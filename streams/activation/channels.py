"""Channel decisions per customer from their profile (pure).

For each messaging channel with a responsiveness row (email, push, sms) and for
social: **suppress** a channel with at least ``MIN_SENT`` messages and no response
while the customer responds elsewhere (another messaging channel, or their own
social interactions: the customer who never opens an email but answers on
social); **reduce** where the profile says the response rate's interval lies
low; otherwise **keep**. Social is kept for a customer who interacts there (the
brand does not send social messages to one customer, so there is nothing to
suppress). The preferred channel is the profile's (the best-responding messaging
channel), else social for a customer who answers only there.

``decision_changes`` publishes a channel's decision only when it (or the preferred
channel) changes, in profile-version order: a replayed or late profile publishes
nothing; ids are deterministic.
"""

from __future__ import annotations

from typing import Any

from streams.activation.ids import stable_id
from streams.profiles.logic import MIN_SENT

SOCIAL = "social"


def _count(attributes: dict[str, dict[str, Any]], name: str) -> int:
    value = (attributes.get(name) or {}).get("value")
    try:
        return int(float(value)) if value is not None else 0
    except ValueError:
        return 0


def channel_decisions(
    rows: list[dict[str, Any]], attributes: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """``{channel: {decision, sent, responses, response_rate, reason}}`` and the
    preferred channel, from a profile's responsiveness rows and attributes."""
    social = _count(attributes, "social_interactions")
    answering = {r["channel"]: r["responses"] for r in rows if r["responses"] > 0}
    if social:
        answering[SOCIAL] = social
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        channel = row["channel"]
        elsewhere = sorted(set(answering) - {channel})
        base = {k: row[k] for k in ("sent", "responses", "response_rate")}
        if row["sent"] >= MIN_SENT and row["responses"] == 0 and elsewhere:
            where = ", ".join(f"{c} ({answering[c]})" for c in elsewhere)
            decision = "suppress"
            reason = (
                f"{row['sent']} {channel} messages, no response, "
                f"while the customer answers on {where}"
            )
        elif row["recommendation"] == "reduce":
            decision = "reduce"
            reason = (
                f"{row['responses']} responses to {row['sent']} {channel} messages: the rate's "
                f"90% interval is below {row['ci_high']:.2f}"
            )
        else:
            decision = "keep"
            reason = f"{row['responses']} responses to {row['sent']} {channel} messages"
        out[channel] = {**base, "decision": decision, "reason": reason}
    if social:
        out[SOCIAL] = {
            "sent": 0,
            "responses": social,
            "response_rate": None,
            "decision": "keep",
            "reason": f"{social} social interactions",
        }
    preferred = (attributes.get("preferred_channel") or {}).get("value")
    if preferred is None and social:
        preferred = SOCIAL
    return out, preferred


def decision_id(customer: str, channel: str, decision: str, version: int) -> str:
    return stable_id("chd", customer, channel, decision, version)


def decision_changes(
    state: dict[str, Any],
    customer: str,
    version: int,
    rows: list[dict[str, Any]],
    attributes: dict[str, dict[str, Any]],
    now: int,
) -> list[dict[str, Any]]:
    """The ``cust.channel-decisions.v1`` records of a profile update; updates
    ``state`` (``{"version": int, "channels": {channel: [decision, preferred]}}``)."""
    if version <= state.get("version", -1):
        return []
    state["version"] = version
    known: dict[str, list] = state.setdefault("channels", {})
    decisions, preferred = channel_decisions(rows, attributes)
    out = []
    for channel, d in sorted(decisions.items()):
        before = known.get(channel)
        if before == [d["decision"], preferred]:
            continue
        known[channel] = [d["decision"], preferred]
        out.append(
            {
                "decision_id": decision_id(customer, channel, d["decision"], version),
                "customer_key": customer,
                "channel": channel,
                "decision": d["decision"],
                "previous_decision": before[0] if before else None,
                "preferred_channel": preferred,
                "sent": d["sent"],
                "responses": d["responses"],
                "response_rate": d["response_rate"],
                "reason": d["reason"],
                "profile_version": version,
                "decided_at": now,
            }
        )
    return out
