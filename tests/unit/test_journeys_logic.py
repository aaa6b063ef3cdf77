"""Sessions, touches, conversions, null paths and merges of one customer."""

import itertools
import random

from streams.journeys.logic import (
    HOUR_MS,
    JourneyBuilder,
    JourneyConfig,
    derive_touches,
    new_state,
)

MIN = 60_000
T0 = 1_760_000_000_000


def tp(
    tid,
    minute,
    channel="Paid Search",
    event_type="page_view",
    internal=False,
    conversion=None,
    revenue=None,
    system="web",
    category=None,
    coupon=None,
):
    return {
        "touchpoint_id": tid,
        "event_time": T0 + minute * MIN,
        "channel": channel,
        "event_type": event_type,
        "attributes": {"navigation": "internal"} if internal else {},
        "is_conversion": conversion is not None,
        "conversion_id": conversion,
        "revenue": revenue,
        "currency": "GBP" if revenue else None,
        "source_system": system,
        "product_category": category,
        "discount": None,
        "coupon_code": coupon,
    }


def builder(**kw):
    return JourneyBuilder(
        JourneyConfig(conversion_grace_ms=0, conversion_max_wait_ms=0, null_path_grace_ms=0, **kw)
    )


def run(events, key="c1", b=None):
    """Apply events, release conversions; returns (published touchpoints, journeys)."""
    b = b or builder()
    state = new_state()
    published = [b.apply_touchpoint(state, key, e, now_ms=0) for e in events]
    return published, b.release(state, key, now_ms=1), state


def test_gap_of_30_minutes_keeps_the_session_31_starts_a_new_one():
    published, _, _ = run([tp("a", 0), tp("b", 30, internal=True), tp("c", 61, internal=True)])
    assert published[0]["session_id"] == published[1]["session_id"]
    assert published[2]["session_id"] != published[1]["session_id"]


def test_internal_navigation_inherits_the_session_channel():
    published, _, _ = run(
        [tp("a", 0, channel="Email"), tp("b", 2, channel="Direct", internal=True)]
    )
    assert published[1]["channel"] == "Email"


def test_a_new_channel_within_a_session_is_a_touch_direct_is_not():
    acts = [
        ["a", 0, "Email", "message_opened", True, "messaging"],
        ["b", 60_000, "Email", "page_view", True, "web"],
        ["c", 120_000, "Direct", "page_view", True, "web"],
        ["d", 180_000, "Paid Search", "page_view", True, "web"],
    ]
    assert [t[0] for t in derive_touches(acts)] == ["a", "d"]


def test_conversion_journey_has_the_touches_before_it_and_excludes_itself():
    events = [
        tp("a", 0, "Organic Search"),
        tp("b", 5, internal=True),
        tp("c", 300, "Email", "message_opened", system="messaging"),
        tp("d", 301, "Email", "page_view"),
        tp("p", 310, event_type="purchase", conversion="o1", revenue=50.0),
    ]
    _, journeys, _ = run(events)
    (journey,) = journeys
    assert journey["path"] == "Organic Search > Email"
    assert journey["journey_id"] == journey["conversion_id"] == "o1"
    assert journey["conversion_value"] == 50.0
    assert [t["touchpoint_id"] for t in journey["touchpoints"]] == ["a", "c"]
    assert journey["touchpoints"][0]["hours_to_end"] == 310 / 60


def test_a_conversion_journey_carries_its_orders_category_and_discount_use():
    events = [
        tp("a", 0, "Email"),
        tp("p", 5, event_type="purchase", conversion="o1", revenue=5.0, category="Jazz"),
        tp("q", 9, event_type="purchase", conversion="o2", revenue=5.0, coupon="WELCOME"),
    ]
    _, journeys, _ = run(events)
    details = {
        j["conversion_id"]: (j["conversion_category"], j["conversion_discount"]) for j in journeys
    }
    assert details == {"o1": ("Jazz", False), "o2": (None, True)}


def test_system_events_get_no_session_and_are_never_touches():
    events = [
        tp("s", 0, "Email", "message_sent", system="messaging"),
        tp("o", 5, "Email", "message_opened", system="messaging"),
        tp("p", 10, event_type="purchase", conversion="o1", revenue=1.0),
    ]
    published, (journey,), _ = run(events)
    assert published[0]["session_id"] is None
    assert [t["touchpoint_id"] for t in journey["touchpoints"]] == ["o"]


def test_arrival_order_does_not_change_the_journeys():
    events = [
        tp("a", 0, "Organic Social"),
        tp("b", 1, internal=True),
        tp("c", 200, "Paid Search"),
        tp("d", 230, "Email", "message_clicked"),
        tp("e", 500, "Direct"),
        tp("p", 505, event_type="purchase", conversion="o1", revenue=9.0),
        tp("f", 800, "Display"),
        tp("q", 805, event_type="purchase", conversion="o2", revenue=3.0),
    ]
    _, expected, _ = run(events)
    rng = random.Random(3)
    for _ in range(30):
        shuffled = events[:]
        rng.shuffle(shuffled)
        _, journeys, _ = run(shuffled)
        assert [(j["conversion_id"], j["path"]) for j in journeys] == [
            (j["conversion_id"], j["path"]) for j in expected
        ]
    assert [j["path"] for j in expected] == [
        "Organic Social > Paid Search > Email > Direct",
        "Display",
    ]


def test_conversion_waits_for_the_source_watermark_then_for_its_deadline():
    b = JourneyBuilder(JourneyConfig(conversion_grace_ms=200, conversion_max_wait_ms=30_000))
    state = new_state()
    conv_time = T0 + 5 * MIN
    b.apply_touchpoint(state, "c", tp("a", 0), now_ms=1000)
    b.apply_touchpoint(state, "c", tp("p", 5, event_type="purchase", conversion="o"), now_ms=1000)
    assert b.release_due(state) == 1200
    assert b.release(state, "c", now_ms=1100, source_watermark=conv_time) == []  # grace
    assert b.release(state, "c", now_ms=5000, source_watermark=conv_time - 1) == []
    # a slower source delivers a touch from before the conversion meanwhile
    b.apply_touchpoint(state, "c", tp("late", 3, "Email", "message_opened"), now_ms=6000)
    (journey,) = b.release(state, "c", now_ms=7000, source_watermark=conv_time)
    assert journey["path"] == "Paid Search > Email"


def test_conversion_is_released_at_its_deadline_without_a_watermark():
    b = JourneyBuilder(JourneyConfig(conversion_grace_ms=0, conversion_max_wait_ms=30_000))
    state = new_state()
    b.apply_touchpoint(state, "c", tp("p", 5, event_type="purchase", conversion="o"), now_ms=0)
    assert b.release(state, "c", now_ms=29_999) == []
    assert len(b.release(state, "c", now_ms=30_000)) == 1


def test_replayed_touchpoints_and_conversions_change_nothing():
    events = [tp("a", 0), tp("p", 5, event_type="purchase", conversion="o1", revenue=2.0)]
    b = builder()
    published, journeys, state = run(events, b=b)
    again = [b.apply_touchpoint(state, "c1", e, now_ms=5) for e in events]
    assert again == published
    assert b.release(state, "c1", now_ms=10) == []
    assert len(journeys) == 1


def test_second_order_of_the_same_id_is_not_a_second_conversion():
    events = [
        tp("a", 0),
        tp("p", 5, event_type="purchase", conversion="o1", revenue=2.0),
        tp("p2", 6, event_type="purchase", conversion="o1", revenue=2.0),
    ]
    _, journeys, _ = run(events)
    assert len(journeys) == 1


def test_touches_outside_the_lookback_window_are_not_in_the_journey():
    b = builder(lookback_days=1)
    events = [
        tp("old", 0),
        tp("new", 25 * 60, "Email"),
        tp("p", 25 * 60 + 5, event_type="purchase", conversion="o"),
    ]
    _, (journey,), _ = run(events, b=b)
    assert journey["path"] == "Email"


def test_null_path_after_lookback_by_watermark_with_grace():
    b = JourneyBuilder(JourneyConfig(lookback_days=1, null_path_grace_ms=5000))
    state = new_state()
    b.apply_touchpoint(state, "c", tp("a", 0, "Display"), now_ms=0)
    b.apply_touchpoint(state, "c", tp("b", 90, "Email"), now_ms=0)
    due = b.due(state)
    assert due == T0 + 24 * HOUR_MS
    assert b.expire(state, "c", due - 1, now_ms=0) is None
    assert b.expire(state, "c", due, now_ms=100) is None  # grace starts
    journey = b.expire(state, "c", due, now_ms=5100)
    assert journey["converted"] is False and journey["path"] == "Display > Email"
    assert journey["journey_id"].startswith("null-")
    assert state["acts"] == [] and b.due(state) is None


def test_merge_moves_history_to_the_new_key_and_holds_until_it_arrives():
    b = builder()
    anon, cust = new_state(), new_state()
    b.apply_touchpoint(anon, "a", tp("x", 0, "Organic Search"), now_ms=0)
    b.expect(cust, "a")
    assert b.hold(cust, tp("p", 100, event_type="purchase", conversion="o", revenue=5.0), 0)
    assert b.release_stale(cust, now_ms=59_000) == []  # a transfer may take a while
    moved = b.take_for_transfer(anon, "c")
    assert anon["merged_into"] == "c"
    b.absorb(cust, moved)
    for held in b.arrived(cust, "a"):
        b.apply_touchpoint(cust, "c", held, now_ms=0)
    (journey,) = b.release(cust, "c", now_ms=1)
    assert journey["path"] == "Organic Search" and journey["customer_key"] == "c"
    # a repeated merge moves nothing twice, and absorbing twice is a no-op
    assert b.take_for_transfer(anon, "c")["acts"] == []
    b.absorb(cust, moved)
    assert len(cust["seen"]) == 2


def test_state_size_is_bounded():
    b = builder(max_activity=10)
    state = new_state()
    for i in range(50):
        b.apply_touchpoint(state, "bot", tp(f"t{i}", i * 40), now_ms=0)
    assert len(state["acts"]) == 10


def test_every_arrival_permutation_of_a_small_journey_agrees():
    events = [
        tp("a", 0, "Email", "message_opened"),
        tp("b", 1, internal=True),
        tp("c", 100, "Paid Search"),
        tp("p", 101, event_type="purchase", conversion="o"),
    ]
    paths = {run(list(p))[1][0]["path"] for p in itertools.permutations(events)}
    assert paths == {"Email > Paid Search"}


def test_held_touchpoints_are_released_after_the_transfer_timeout():
    b = JourneyBuilder(JourneyConfig(transfer_timeout_ms=1000))
    state = new_state()
    b.expect(state, "anon")
    assert b.hold(state, tp("x", 0), now_ms=5000)
    assert b.release_stale(state, now_ms=6000) == []
    released = b.release_stale(state, now_ms=6001)
    assert [t["touchpoint_id"] for t in released] == ["x"]
    assert state["awaiting"] == [] and state["held"] == []


def test_a_conversion_does_not_close_while_merged_history_is_awaited():
    b = JourneyBuilder(JourneyConfig(conversion_grace_ms=0, conversion_max_wait_ms=1000))
    cust = new_state()
    # the order system's echo of the order arrives first, then the identify's merge
    b.apply_touchpoint(
        cust, "c", tp("echo", 5, event_type="order_placed", conversion="o", revenue=1.0), now_ms=0
    )
    b.expect(cust, "anon")
    assert b.release(cust, "c", now_ms=10, source_watermark=T0 + 10 * MIN) == []
    anon = new_state()
    b.apply_touchpoint(anon, "anon", tp("web", 0, "Paid Search"), now_ms=0)
    b.absorb(cust, b.take_for_transfer(anon, "c"))
    b.arrived(cust, "anon")
    (journey,) = b.release(cust, "c", now_ms=20, source_watermark=T0 + 10 * MIN)
    assert journey["path"] == "Paid Search"


def test_a_chain_of_merges_loses_no_held_touchpoint():
    # b awaits a's history and holds its purchase; then b itself merges into c before
    # a's transfer came: the held purchase and the wait move to c, a's transfer
    # (forwarded by b) releases them there
    b = builder()
    a, bee, c = new_state(), new_state(), new_state()
    b.apply_touchpoint(a, "a", tp("x", 0, "Organic Search"), now_ms=0)
    b.expect(bee, "a")
    assert b.hold(bee, tp("p", 100, event_type="purchase", conversion="o", revenue=5.0), 0)
    b.expect(c, "b")
    b.absorb(c, b.take_for_transfer(bee, "c"))
    assert b.arrived(c, "b") == [], "c still waits for a's history"
    assert c["awaiting"] == ["a"] and [t["touchpoint_id"] for t in c["held"]] == ["p"]
    b.absorb(c, b.take_for_transfer(a, "b"))  # a -> b, forwarded by b to c
    for held in b.arrived(c, "a"):
        b.apply_touchpoint(c, "c", held, now_ms=0)
    (journey,) = b.release(c, "c", now_ms=1)
    assert journey["path"] == "Organic Search" and journey["conversion_id"] == "o"
    assert bee["held"] == [] and bee["awaiting"] == []


def test_a_replayed_expect_or_transfer_does_not_wait_again():
    # after a crash the stage may replay an expect or a transfer that already arrived
    b = builder()
    a, bee, c = new_state(), new_state(), new_state()
    b.expect(bee, "a")
    b.hold(bee, tp("p", 100, event_type="purchase", conversion="o", revenue=5.0), 0)
    b.expect(c, "b")
    to_c = b.take_for_transfer(bee, "c")
    b.absorb(c, to_c)
    b.arrived(c, "b")
    b.absorb(c, b.take_for_transfer(a, "b"))
    assert [t["touchpoint_id"] for t in b.arrived(c, "a")] == ["p"]
    b.absorb(c, to_c)  # replayed transfer b -> c, which carried "awaiting a"
    b.expect(c, "b")  # replayed expect
    assert c["awaiting"] == []


def test_a_later_conversion_waits_for_an_earlier_one_that_arrived_after_it():
    b = JourneyBuilder(JourneyConfig(conversion_grace_ms=1000, conversion_max_wait_ms=30_000))
    state = new_state()
    b.apply_touchpoint(state, "c", tp("a", 0), now_ms=0)
    b.apply_touchpoint(state, "c", tp("b", 20, "Email", "message_opened"), now_ms=0)
    # the second purchase's event arrives first (another source, or a restart)
    b.apply_touchpoint(state, "c", tp("p2", 30, event_type="purchase", conversion="o2"), now_ms=0)
    b.apply_touchpoint(state, "c", tp("p1", 10, event_type="purchase", conversion="o1"), now_ms=900)
    everything = T0 + 60 * MIN
    assert b.release(state, "c", now_ms=1500, source_watermark=everything) == []
    first, second = b.release(state, "c", now_ms=1900, source_watermark=everything)
    assert (first["conversion_id"], first["path"]) == ("o1", "Paid Search")
    assert (second["conversion_id"], second["path"]) == ("o2", "Email")
