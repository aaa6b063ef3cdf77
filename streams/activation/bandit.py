"""Message decisions: Thompson sampling over an audience's variants, with the
personalisation guardrail (pure).

A variant is **eligible** for a customer on a channel when it may be sent there and
every attribute it personalises with is observed or declared, or inferred with at
least ``floor`` probability; a decision records each attribute it used with its
confidence, so no decision rests on a guess below the floor. Among the eligible
variants the one with the highest draw from its response rate's Beta(1 + responses,
1 + sends - responses) posterior is chosen. The draw is seeded by the request id,
so a request decided again on the same statistics gets the same answer. A set never
holds more than the cap of variants (checked at load, and here).
"""

from __future__ import annotations

import hashlib
import random
import string
from typing import Any

from streams.activation.definitions import CONFIDENCES, Variant, attribute_used, confident
from streams.activation.ids import stable_id

CHANNEL_ORDER = ("email", "push", "sms", "social")


def usable(attribute: dict[str, Any] | None, floor: float) -> bool:
    """Whether personalisation may use this attribute."""
    return confident(attribute, CONFIDENCES, floor)


def eligible(
    variants: tuple[Variant, ...], attributes: dict[str, dict], channel: str, floor: float
) -> list[Variant]:
    return [
        v
        for v in variants
        if channel in v.channels and all(usable(attributes.get(a), floor) for a in v.attributes)
    ]


def channels_to_try(
    requested: str | None, decisions: dict[str, str], preferred: str | None
) -> tuple[list[str], str | None]:
    """Channels in the order to try, or none and why."""
    if requested is not None:
        if decisions.get(requested) == "suppress":
            return [], f"{requested} is suppressed for this customer"
        return [requested], None
    allowed = [c for c in CHANNEL_ORDER if decisions.get(c) != "suppress"]
    if not allowed:
        return [], "every channel is suppressed for this customer"
    # the preferred channel first, then kept channels before reduced ones
    allowed.sort(key=lambda c: (c != preferred, decisions.get(c) == "reduce"))
    if "social" not in decisions:  # social only where the customer is known to answer
        allowed = [c for c in allowed if c != "social"]
    return allowed, None if allowed else "no channel the customer answers on"


def message_id(request_id: str) -> str:
    """The id of the message a request's decision sends (deterministic: a request
    decided again names the same message)."""
    return stable_id("md", request_id)


def decide(
    request: dict[str, Any],
    variants: tuple[Variant, ...],
    attributes: dict[str, dict],
    decisions: dict[str, str],
    preferred: str | None,
    arms: dict[str, list[int]],
    floor: float,
    cap: int,
    now: int,
) -> dict[str, Any]:
    """The ``cust.message-decisions.v1`` record answering ``request``; ``arms`` maps a
    variant id to ``[sends, responses]`` (a chosen variant's sends are counted here)."""
    if len(variants) > cap:
        raise ValueError(f"{len(variants)} variants above the cap of {cap}")
    rid = request["request_id"]
    rng = random.Random(hashlib.blake2b(rid.encode(), digest_size=8).digest())
    out = {
        "decision_id": rid,
        "request_id": rid,
        "customer_key": request["customer_key"],
        "audience": request["audience"],
        "outcome": "hold",
        "variant": None,
        "channel": None,
        "content": None,
        "message_id": message_id(rid),
        "attributes_used": [],
        "variants_in_use": len(variants),
        "sampled_rate": None,
        "reason": "",
        "decided_at": now,
    }
    if not variants:
        return {**out, "reason": f"audience {request['audience']!r} has no message set"}
    channels, why = channels_to_try(request.get("channel"), decisions, preferred)
    for channel in channels:
        candidates = eligible(variants, attributes, channel, floor)
        if not candidates:
            continue
        draws = []
        for v in candidates:
            sends, responses = arms.get(v.id, [0, 0])
            draws.append((rng.betavariate(1 + responses, 1 + max(0, sends - responses)), v))
        draw, chosen = max(draws, key=lambda d: d[0])
        arms.setdefault(chosen.id, [0, 0])[0] += 1
        values = {a: attributes[a]["value"] for a in chosen.attributes}
        sends, responses = arms[chosen.id]
        return {
            **out,
            "outcome": "send",
            "variant": chosen.id,
            "channel": channel,
            "content": string.Formatter().vformat(chosen.text, (), values),
            "attributes_used": [attribute_used(a, attributes[a]) for a in chosen.attributes],
            "sampled_rate": round(draw, 6),
            "reason": (
                f"Thompson draw {draw:.3f}, best of {len(candidates)} eligible variants on "
                f"{channel} ({responses} responses to {sends} sends so far)"
            ),
        }
    return {**out, "reason": why or "no variant's attributes are known well enough"}


def reward(arms: dict[str, list[int]], variant: str) -> None:
    """A response to a message of ``variant``."""
    arms.setdefault(variant, [0, 0])[1] += 1
