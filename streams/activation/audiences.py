"""Audience membership from profile updates (pure).

``audience_changes`` takes one customer's state and a new profile, evaluates every
declared audience and returns the entries and exits. Idempotent and ordered: a
profile whose version is not above the last one seen changes nothing, so a
replayed or late profile publishes no change; the change id is a hash of
audience, definition version, customer and profile version, so a change
published twice is one row downstream.
"""

from __future__ import annotations

from typing import Any

from streams.activation.definitions import Audience, Condition, attribute_used, confident
from streams.activation.ids import stable_id

Attributes = dict[str, dict[str, Any]]  # name -> {value, confidence, probability}


def accepted(attribute: dict[str, Any] | None, audience: Audience) -> bool:
    """Whether the audience accepts this attribute's confidence."""
    return confident(attribute, audience.confidence, audience.min_probability)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def holds(condition: Condition, value: str | None) -> bool:
    """Whether ``condition`` holds of an attribute value (None: unknown)."""
    op, want = condition.op, condition.value
    if op == "exists":
        return value is not None
    if op == "missing":
        return value is None
    if value is None:
        return False
    if op in ("in", "not_in"):
        return (value in want) == (op == "in")
    left, right = _number(value), _number(want)
    if op in ("==", "!="):
        same = left == right if left is not None and right is not None else value == str(want)
        return same == (op == "==")
    if left is None or right is None:
        return False
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]


def evaluate(audience: Audience, attributes: Attributes) -> tuple[bool, str, list[dict]]:
    """Membership, the reason in words, and the attributes read (with confidence)."""
    results, reasons, used = [], [], {}
    for condition in audience.conditions:
        attribute = attributes.get(condition.attribute)
        ok_confidence = accepted(attribute, audience)
        value = attribute["value"] if ok_confidence else None
        result = holds(condition, value)
        results.append(result)
        if attribute is not None:
            used[condition.attribute] = attribute_used(condition.attribute, attribute)
        shown = "unknown" if value is None else value
        if attribute is not None and not ok_confidence:
            shown = f"{attribute.get('value')} ({attribute['confidence']}, not accepted)"
        want = "" if condition.value is None else f" {condition.value}"
        mark = "yes" if result else "no"
        reasons.append(f"{condition.attribute} {condition.op}{want}: {shown} ({mark})")
    member = all(results) if audience.match_all else any(results)
    joiner = "; " if audience.match_all else "; or "
    return member, joiner.join(reasons), list(used.values())


def change_id(audience: Audience, customer: str, version: int) -> str:
    return stable_id("aud", audience.name, audience.version, customer, version)


def audience_changes(
    state: dict[str, Any],
    customer: str,
    version: int,
    attributes: Attributes,
    audiences: dict[str, Audience],
    triggered_at: int,
    now: int,
) -> list[dict[str, Any]]:
    """The ``cust.audiences.v1`` records a profile update causes; updates ``state``
    (``{"version": last profile version, "members": {audience: definition version}}``).
    A customer in an audience that is no longer declared exits it."""
    if version <= state.get("version", -1):
        return []
    state["version"] = version
    members: dict[str, str] = state.setdefault("members", {})
    out = []
    for name in sorted(set(audiences) | set(members)):
        audience = audiences.get(name)
        if audience is None:
            gone = Audience(name, (), True, frozenset(), 1.0, version=members.pop(name))
            out.append(_record(gone, customer, version, "exited", "audience no longer declared",
                               [], triggered_at, now))  # fmt: skip
            continue
        member, reason, used = evaluate(audience, attributes)
        if member == (name in members):
            continue
        if member:
            members[name] = audience.version
        else:
            del members[name]
        change = "entered" if member else "exited"
        out.append(_record(audience, customer, version, change, reason, used, triggered_at, now))
    return out


def _record(
    audience: Audience,
    customer: str,
    version: int,
    change: str,
    reason: str,
    used: list[dict],
    triggered_at: int,
    now: int,
) -> dict[str, Any]:
    return {
        "change_id": change_id(audience, customer, version),
        "audience": audience.name,
        "definition_version": audience.version,
        "customer_key": customer,
        "change": change,
        "profile_version": version,
        "reason": reason,
        "attributes_used": used,
        "triggered_at": triggered_at,
        "decided_at": now,
    }
