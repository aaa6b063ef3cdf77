"""Sessions and journeys per customer (pure functions over a JSON-able state).

Definitions (DESIGN.md, "Analytics definitions"):

- **Activity**: the customer's own actions (visits, app use, social
  interactions, messages opened or clicked, store visits, purchases, logins).
  System events (message sends and deliveries, shipping, refunds, tickets, web
  orders echoed by the order system) are not activity and get no session.
- **Session**: activity with no gap longer than 30 minutes, across channels.
- **Touch**: an activity that enters a (session, channel): a marketing
  interaction that starts a session or changes its channel (internal
  navigation and Direct never change it).
- **Journey**: the touches of the customer's pending activity in the lookback
  window before a conversion (the first touchpoint of an order id with
  ``is_conversion``), or, once the first pending touch is older than the
  lookback window by the partition's event-time watermark, a null path. Each
  touch belongs to one journey.

Order independence: events of one customer reach the stage out of event-time
order (several source topics and partitions; in a backfill by hours). Pending
activity is therefore kept sorted by event time and sessions and touches are
derived from it when a journey is emitted; a conversion is held for a short
processing-time grace (``conversion_grace_ms``) so that activity still in
flight arrives first. Session ids on published touchpoints are decided on
arrival against the sessions known then.

Idempotence: every touchpoint id is remembered with its session; a replayed
touchpoint gets the same session id and changes nothing, a replayed conversion
publishes nothing new.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

from streams.core.errors import InvalidRecord
from streams.core.timecheck import sane_time

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SESSION_GAP_MS = 30 * 60_000
DIRECT = "Direct"

TOUCH_TYPES = frozenset(
    {
        "page_view",
        "screen_view",
        "product_view",
        "list_view",
        "search",
        "add_to_cart",
        "cart_view",
        "checkout",
        "app_open",
        "app_install",
        "deep_link",
        "push_tapped",
        "product_scan",
        "store_visit",
        "track",
        "login",
        "sign_up",
        "social_mention",
        "social_comment",
        "social_share",
        "social_like",
        "social_click_through",
        "message_opened",
        "message_clicked",
    }
)
ACTIVITY_TYPES = TOUCH_TYPES | frozenset(
    {
        "purchase",
        "identify",
        "alias",
        "group",
        "remove_from_cart",
        "coupon_applied",
        "refund",
        "cancel",
        "app_update",
    }
)
# compact activity: [touchpoint_id, event_time, channel, event_type, touchable, source_system]
TID, TIME, CHANNEL, ETYPE, TOUCHABLE, SYSTEM = range(6)
# session: [session_id, start, last, channel]
SID, START, LAST, SCHANNEL = range(4)


MAX_ARRIVED = 100  # origins remembered per key


def new_state() -> dict[str, Any]:
    return {
        "acts": [],
        "sessions": [],
        "seen": {},
        "conversions": [],
        "held_conversions": [],
        "merged_into": None,
        "awaiting": [],
        "held": [],
        "arrived": [],  # origins whose transfer came (a replayed expect must not wait again)
    }


def is_activity(tp: dict) -> bool:
    """Whether a touchpoint is the customer's own activity (forms sessions)."""
    if tp["event_type"] == "order_placed":
        return tp["attributes"].get("sales_channel") == "store"  # a store visit
    return tp["event_type"] in ACTIVITY_TYPES


def session_id(customer_key: str, start_ms: int) -> str:
    return f"sess-{customer_key}-{start_ms}"


def null_journey_id(customer_key: str, first_touch_id: str) -> str:
    digest = hashlib.blake2b(f"{customer_key}\x1f{first_touch_id}".encode(), digest_size=12)
    return "null-" + digest.hexdigest()


@dataclass
class JourneyConfig:
    lookback_days: int = 30
    session_gap_ms: int = SESSION_GAP_MS
    conversion_grace_ms: int = 200  # minimum processing time a conversion waits
    # Last resorts for a stuck upstream (a normalise worker down for long): the
    # source watermark normally releases conversions within a second.
    conversion_max_wait_ms: int = 600_000  # released then even without a source watermark
    null_path_grace_ms: int = 2_000  # processing time an expired path waits for stragglers
    transfer_timeout_ms: int = 600_000  # processing time held touchpoints wait for a transfer
    max_activity: int = 500  # bound a bot's state; the oldest activity drops off
    max_sessions: int = 50
    max_conversions_remembered: int = 100

    @property
    def lookback_ms(self) -> int:
        return self.lookback_days * DAY_MS


def derive_touches(acts: list[list], gap_ms: int = SESSION_GAP_MS) -> list[list]:
    """The touches among time-sorted activity: entries into a (session, channel)."""
    touches: list[list] = []
    last_time: int | None = None
    channel: str | None = None
    for act in acts:
        new_session = last_time is None or act[TIME] - last_time > gap_ms
        last_time = act[TIME]
        if new_session:
            channel = None
        if not act[TOUCHABLE]:
            continue
        if new_session or (act[CHANNEL] != channel and act[CHANNEL] != DIRECT):
            touches.append(act)
            channel = act[CHANNEL]
        elif channel is None:
            channel = act[CHANNEL]
    return touches


class JourneyBuilder:
    """Applies touchpoints, conversions, expiry and merges to one customer's state."""

    def __init__(self, config: JourneyConfig | None = None) -> None:
        self.config = config or JourneyConfig()

    # -- sessions (for the published touchpoints) ------------------------------------
    def _session_for(
        self, state: dict, key: str, t: int, channel: str, internal: bool
    ) -> tuple[str, str]:
        """(session id, session channel) of an activity at ``t``, updating the sessions."""
        gap = self.config.session_gap_ms
        sessions = state["sessions"]
        for session in sessions:
            if session[START] - gap <= t <= session[LAST] + gap:
                session[START], session[LAST] = min(session[START], t), max(session[LAST], t)
                if session[SCHANNEL] == DIRECT and not internal and channel != DIRECT:
                    session[SCHANNEL] = channel
                return session[SID], session[SCHANNEL]
        session = [session_id(key, t), t, t, channel]
        sessions.append(session)
        sessions.sort(key=lambda s: s[START])
        del sessions[: max(0, len(sessions) - self.config.max_sessions)]
        return session[SID], channel

    # -- touchpoints -------------------------------------------------------------------
    def apply_touchpoint(self, state: dict, key: str, tp: dict, now_ms: int) -> dict:
        """Record a touchpoint; returns it with customer key, session and channel, to publish.

        A conversion is held (``release`` publishes its journey after the grace).
        """
        seen = state["seen"].get(tp["touchpoint_id"])
        if seen is not None:  # replay: same session and channel, nothing else changes
            return {**tp, "customer_key": key, "session_id": seen[0], "channel": seen[2]}
        internal = tp["attributes"].get("navigation") == "internal"
        channel = tp["channel"]
        sid = None
        if is_activity(tp):
            sid, session_channel = self._session_for(
                state, key, tp["event_time"], channel, internal
            )
            if internal:
                channel = session_channel
        state["seen"][tp["touchpoint_id"]] = [sid, tp["event_time"], channel]
        if tp["is_conversion"] and tp["conversion_id"]:
            cid = tp["conversion_id"]
            held = {h["conversion_id"] for h in state["held_conversions"]}
            if cid not in state["conversions"] and cid not in held:
                state["held_conversions"].append(
                    {
                        "conversion_id": cid,
                        "touchpoint_id": tp["touchpoint_id"],
                        "event_time": tp["event_time"],
                        "revenue": tp["revenue"],
                        "currency": tp["currency"],
                        "category": tp["product_category"],
                        "discount": bool(tp["discount"]) or bool(tp["coupon_code"]),
                        "release_at": now_ms + self.config.conversion_grace_ms,
                        "deadline": now_ms + self.config.conversion_max_wait_ms,
                    }
                )
        elif sid is not None:
            act = [
                tp["touchpoint_id"],
                tp["event_time"],
                channel,
                tp["event_type"],
                tp["event_type"] in TOUCH_TYPES and not internal,
                tp["source_system"],
            ]
            self._add_activity(state, act)
        return {**tp, "customer_key": key, "session_id": sid, "channel": channel}

    def _add_activity(self, state: dict, act: list) -> None:
        acts = state["acts"]
        times = [a[TIME] for a in acts]
        acts.insert(bisect.bisect_right(times, act[TIME]), act)
        if len(acts) > self.config.max_activity:
            del acts[: len(acts) - self.config.max_activity]

    # -- journeys ----------------------------------------------------------------------
    def release_due(self, state: dict) -> int | None:
        """Processing time at which the next held conversion is released (None: none held)."""
        return min((h["release_at"] for h in state["held_conversions"]), default=None)

    @staticmethod
    def _releasable(held: dict, now_ms: int, source_watermark: int | None, awaiting: bool) -> bool:
        deadline = held.get("deadline", held["release_at"])
        if held["release_at"] > now_ms or (awaiting and now_ms < deadline):
            return False  # a transfer of merged history is on its way
        passed = source_watermark is not None and source_watermark >= held["event_time"]
        return passed or now_ms >= deadline

    def release(
        self, state: dict, key: str, now_ms: int, source_watermark: int | None = None
    ) -> list[dict]:
        """Journeys of the held conversions that may close, oldest conversion first.

        A conversion closes once every source has been processed past its event
        time (``source_watermark``), no merged history is awaited and its minimum
        grace is over; or at its deadline (``conversion_max_wait_ms``) whatever
        the watermark says. Never before an earlier conversion of the customer that
        is still held: conversions can arrive out of order (from different sources,
        or after a restart), and a later one would take the earlier one's touches.
        """
        ready = []
        awaiting = bool(state["awaiting"])
        for held in sorted(
            state["held_conversions"], key=lambda h: (h["event_time"], h["conversion_id"])
        ):
            if not self._releasable(held, now_ms, source_watermark, awaiting):
                break
            ready.append(held)
        if not ready:
            return []
        done = {h["conversion_id"] for h in ready}
        state["held_conversions"] = [
            h for h in state["held_conversions"] if h["conversion_id"] not in done
        ]
        journeys = []
        for conv in ready:
            t = conv["event_time"]
            start = t - self.config.lookback_ms
            window = [a for a in state["acts"] if start <= a[TIME] <= t]
            state["acts"] = [a for a in state["acts"] if a[TIME] > t]
            conversions = state["conversions"]
            conversions.append(conv["conversion_id"])
            del conversions[: max(0, len(conversions) - self.config.max_conversions_remembered)]
            journeys.append(
                self._journey(
                    key,
                    derive_touches(window, self.config.session_gap_ms),
                    state["seen"],
                    converted=True,
                    window_start=start,
                    window_end=t,
                    conv=conv,
                    now_ms=now_ms,
                )
            )
        return journeys

    def _journey(
        self,
        key: str,
        path: list[list],
        seen: dict,
        *,
        converted: bool,
        window_start: int,
        window_end: int,
        now_ms: int,
        conv: dict | None = None,
        journey_id: str | None = None,
    ) -> dict:
        touches = [
            {
                "touchpoint_id": a[TID],
                "channel": a[CHANNEL],
                "event_type": a[ETYPE],
                "event_time": a[TIME],
                "hours_to_end": (window_end - a[TIME]) / HOUR_MS,
                "session_id": (seen.get(a[TID]) or [None])[0],
                "source_system": a[SYSTEM],
            }
            for a in path
        ]
        return {
            "journey_id": journey_id or conv["conversion_id"],
            "customer_key": key,
            "converted": converted,
            "conversion_id": conv["conversion_id"] if conv else None,
            "conversion_touchpoint_id": conv["touchpoint_id"] if conv else None,
            "conversion_time": conv["event_time"] if conv else None,
            "conversion_value": float(conv["revenue"] or 0.0) if conv else 0.0,
            "currency": conv["currency"] if conv else None,
            # order details for the scoring stage (absent from conversions held before
            # journeys revision 2)
            "conversion_category": conv.get("category") if conv else None,
            "conversion_discount": conv.get("discount") if conv else None,
            "window_start": window_start,
            "window_end": window_end,
            "lookback_days": self.config.lookback_days,
            "touchpoints": touches,
            "path": " > ".join(t["channel"] for t in touches),
            "touch_count": len(touches),
            "emitted_at": now_ms,
        }

    # -- expiry ------------------------------------------------------------------------
    def due(self, state: dict) -> int | None:
        """Event time at which the pending path expires (None: no pending touch)."""
        first = next((a for a in state["acts"] if a[TOUCHABLE]), None)
        return None if first is None else first[TIME] + self.config.lookback_ms

    def expire(self, state: dict, key: str, watermark: int, now_ms: int) -> dict | None:
        """The null path of an expired pending path, removed from the state.

        A path is published as a null path once it has been expired (by the
        event-time watermark) for ``null_path_grace_ms`` of processing time: a
        lagging source topic may still deliver its conversion.
        """
        due = self.due(state)
        if due is None or due > watermark or state["held_conversions"] or state["held"]:
            state.pop("expired_at", None)
            return None
        first_seen = state.setdefault("expired_at", now_ms)
        if now_ms - first_seen < self.config.null_path_grace_ms:
            return None
        del state["expired_at"]
        acts, state["acts"] = state["acts"], []
        touches = derive_touches(acts, self.config.session_gap_ms)
        if not touches:
            return None
        first = touches[0]
        return self._journey(
            key,
            touches,
            state["seen"],
            converted=False,
            window_start=first[TIME],
            window_end=due,
            journey_id=null_journey_id(key, first[TID]),
            now_ms=now_ms,
        )

    def prune(self, state: dict, watermark: int) -> None:
        """Forget replay guards and sessions older than two lookback windows."""
        horizon = watermark - 2 * self.config.lookback_ms
        seen = state["seen"]
        if len(seen) > 64:
            for tid in [t for t, v in seen.items() if v[1] < horizon]:
                del seen[tid]
        state["sessions"] = [s for s in state["sessions"] if s[LAST] >= horizon]

    # -- identity merges ----------------------------------------------------------------
    @staticmethod
    def take_for_transfer(state: dict, into: str) -> dict:
        """Mark the state merged into ``into``; returns what moves there.

        Always returns a transfer (possibly empty): the new key waits for it
        (see ``expect``). A repeated merge moves nothing twice. What this key
        was itself waiting for moves too: its held touchpoints, and the keys
        whose transfers it awaited (it forwards those transfers to ``into``), so
        a chain of merges (a → b while b → c) loses nothing.
        """
        empty = {
            "acts": [],
            "sessions": [],
            "seen": {},
            "conversions": [],
            "held_conversions": [],
            "held": [],
            "awaiting": [],
        }
        if state["merged_into"] == into:
            return empty
        state["merged_into"] = into
        moved = {name: state[name] for name in empty}
        moved["held_since"] = state.get("held_since")
        state.update(
            {"acts": [], "sessions": [], "held_conversions": [], "held": [], "awaiting": []}
        )
        return moved

    def absorb(self, state: dict, moved: dict) -> None:
        """Merge a transferred state in (idempotent: union by touchpoint / conversion id)."""
        have = {a[TID] for a in state["acts"]}
        for act in moved["acts"]:
            if act[TID] not in have:
                self._add_activity(state, act)
        for tid, value in moved["seen"].items():
            state["seen"].setdefault(tid, value)
        state["sessions"] = sorted(state["sessions"] + moved["sessions"], key=lambda s: s[START])
        for cid in moved["conversions"]:
            if cid not in state["conversions"]:
                state["conversions"].append(cid)
        held = {h["conversion_id"] for h in state["held_conversions"]}
        state["held_conversions"] += [
            h
            for h in moved["held_conversions"]
            if h["conversion_id"] not in held and h["conversion_id"] not in state["conversions"]
        ]
        # what the merged key still waited for: this key waits for it now
        for origin in moved.get("awaiting", []):
            self.expect(state, origin)
        have = {t["touchpoint_id"] for t in state["held"]}
        waiting = [t for t in moved.get("held", []) if t["touchpoint_id"] not in have]
        if waiting:
            if not state["held"]:  # the timeout counts from when the first was held
                state["held_since"] = moved.get("held_since") or state.get("held_since")
            state["held"] += waiting

    @staticmethod
    def expect(state: dict, origin: str) -> None:
        """The key ``origin`` merges into this one: hold touchpoints until its transfer
        (unless it came already: a replayed expect or transfer waits for nothing)."""
        if origin not in state["awaiting"] and origin not in state.get("arrived", []):
            state["awaiting"].append(origin)

    @staticmethod
    def hold(state: dict, tp: dict, now_ms: int) -> bool:
        """Keep ``tp`` for later if a transfer is awaited; True when held."""
        if not state["awaiting"]:
            return False
        if not state["held"]:
            state["held_since"] = now_ms
        state["held"].append(tp)
        return True

    @staticmethod
    def arrived(state: dict, origin: str) -> list[dict]:
        """The transfer from ``origin`` arrived: the held touchpoints to apply now, in order."""
        if origin in state["awaiting"]:
            state["awaiting"].remove(origin)
        arrived = state.setdefault("arrived", [])
        if origin not in arrived:
            arrived.append(origin)
            del arrived[: max(0, len(arrived) - MAX_ARRIVED)]
        if state["awaiting"]:
            return []
        held, state["held"] = state["held"], []
        return held

    def release_stale(self, state: dict, now_ms: int) -> list[dict]:
        """Stop waiting after ``transfer_timeout_ms`` of processing time.

        A transfer takes one round trip through the journeys stage; the pipeline
        never loses one. This only bounds the damage if one were lost: the held
        touchpoints are then applied without the merged history. (Processing
        time, not the event-time watermark: in a backfill the watermark runs
        days ahead of a customer's own events.)
        """
        if (
            state["held"]
            and now_ms - state.get("held_since", now_ms) > self.config.transfer_timeout_ms
        ):
            state["awaiting"] = []
            held, state["held"] = state["held"], []
            return held
        return []


def check_conversion(journey: dict[str, Any]) -> None:
    """Raise ``InvalidRecord`` for a converting ``cust.journeys.v1`` record that no
    consumer can use (attribution credits it, scoring scores it): no conversion id,
    a time beyond 1970-2200 (``sane_time``), a value or touch age that is not a
    finite number, or neither touches nor a conversion touchpoint to credit."""
    if not journey["conversion_id"] or journey["conversion_time"] is None:
        raise InvalidRecord("missing_id", "a conversion needs its id and time")
    if not sane_time(journey["conversion_time"]):
        raise InvalidRecord("impossible_timestamp", f"conversion time {journey['conversion_time']}")
    if not math.isfinite(journey["conversion_value"] or 0.0):
        raise InvalidRecord("invalid_value", "the conversion value is not finite")
    touches = journey["touchpoints"]
    if not touches and not journey.get("conversion_touchpoint_id"):
        raise InvalidRecord("missing_id", "a conversion without touches or its touchpoint")
    if any(not math.isfinite(t.get("hours_to_end", 0.0)) for t in touches):
        raise InvalidRecord("invalid_value", "a touch's hours_to_end is not finite")


# -- transfers from another key (cust.touchpoints.stitched.v1 kind "transfer") ----------
def _is_act(a: Any) -> bool:
    return (
        isinstance(a, list)
        and len(a) == 6
        and isinstance(a[TID], str)
        and _is_int(a[TIME])
        and isinstance(a[CHANNEL], str)
        and isinstance(a[ETYPE], str)
        and isinstance(a[TOUCHABLE], bool)
        and (a[SYSTEM] is None or isinstance(a[SYSTEM], str))
    )


def _is_session(s: Any) -> bool:
    return (
        isinstance(s, list)
        and len(s) == 4
        and isinstance(s[SID], str)
        and _is_int(s[START])
        and _is_int(s[LAST])
        and isinstance(s[SCHANNEL], str)
    )


def _is_seen(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) == 3
        and (v[0] is None or isinstance(v[0], str))
        and _is_int(v[1])
        and isinstance(v[2], str)
    )


# a held conversion's fields: (types, required)
HELD_CONVERSION: dict[str, tuple[tuple[type, ...], bool]] = {
    "conversion_id": ((str,), True),
    "touchpoint_id": ((str,), True),
    "event_time": ((int,), True),
    "release_at": ((int,), True),
    "deadline": ((int,), False),
    "revenue": ((int, float), False),
    "currency": ((str,), False),
    "category": ((str,), False),
    "discount": ((bool,), False),
}


def _is_held_conversion(h: Any) -> bool:
    if not isinstance(h, dict):
        return False
    for name, (types, required) in HELD_CONVERSION.items():
        if not required and h.get(name) is None and (name != "deadline" or name not in h):
            continue  # optional; a deadline, if there, must be a time
        value = h.get(name)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _all(values: Any, check: Any) -> bool:
    return isinstance(values, list) and all(check(v) for v in values)


def parse_transfer(text: str | None, valid_touchpoint: Any) -> dict:
    """The moved state of a ``transfer`` record (``take_for_transfer``'s output as JSON),
    checked shape by shape; ``valid_touchpoint(tp)`` checks each held touchpoint.
    Raises ``ValueError`` naming the first part that is not what a transfer holds."""
    moved = orjson.loads(text or "")  # JSONDecodeError is a ValueError
    if not isinstance(moved, dict):
        raise ValueError("not a JSON object")
    for name in ("acts", "sessions", "conversions", "held_conversions", "held", "awaiting"):
        moved.setdefault(name, [])
    moved.setdefault("seen", {})
    moved.setdefault("held_since", None)
    checks = {
        "acts": lambda v: _all(v, _is_act),
        "sessions": lambda v: _all(v, _is_session),
        "seen": lambda v: isinstance(v, dict) and all(_is_seen(x) for x in v.values()),
        "conversions": lambda v: _all(v, lambda c: isinstance(c, str)),
        "held_conversions": lambda v: _all(v, _is_held_conversion),
        "held": lambda v: _all(v, valid_touchpoint),
        "awaiting": lambda v: _all(v, lambda o: isinstance(o, str)),
        "held_since": lambda v: v is None or _is_int(v),
    }
    for name, check in checks.items():
        if not check(moved[name]):
            raise ValueError(f"its {name} is not what a transfer holds")
    return moved
