"""The activation agents (streams.activation.agents) as a Faust worker on a real embedded
broker: audiences and channel decisions from profiles, message decisions that learn from
responses, the product feed, and kill -9 of the worker in the middle of a run."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from streams.activation.audiences import audience_changes
from streams.activation.definitions import load_audiences
from streams.activation.feed import feed_id
from streams.core.topics import (
    AUDIENCES,
    CATALOG,
    CHANNEL_DECISIONS,
    MESSAGE_DECISIONS,
    MESSAGE_REQUESTS,
    PROFILES,
    RECOMMENDATIONS,
    TOUCHPOINTS,
)
from streams.faust.testing import AgentWorker, bus_broker, example_records, publish, read_topic

pytestmark = pytest.mark.broker
ROOT = Path(__file__).parents[2]
MODULE = "streams.activation.agents"
NOW = 1_790_000_000_000
# the Faust changelog of the agents' response counts: what they learned, observable
RESPONSES_CHANGELOG = "journeybus-activation-variant-responses-changelog"


@pytest.fixture
def bootstrap(tmp_path):
    with bus_broker(log_path=tmp_path / "tansu.log") as bootstrap:
        yield bootstrap


def worker(bootstrap: str, tmp_path: Path, env: dict | None = None) -> AgentWorker:
    log = tmp_path / "activation.log"
    return AgentWorker(MODULE, bootstrap, cwd=ROOT, env=env, log_path=log)


def attribute(name: str, value, confidence: str = "observed", probability=None) -> dict:
    return {
        "name": name,
        "value": None if value is None else str(value),
        "confidence": confidence,
        "probability": probability,
        "source_system": "web",
        "source_event_id": f"e-{name}",
        "updated_at": NOW,
    }


def row(channel: str, sent: int, responses: int, recommendation: str = "keep") -> dict:
    rate = (responses + 1) / (sent + 2)
    return {
        "channel": channel,
        "sent": sent,
        "responses": responses,
        "response_rate": rate,
        "ci_low": max(0.0, rate - 0.1),
        "ci_high": min(1.0, rate + 0.1),
        "last_response_at": NOW if responses else None,
        "recommendation": recommendation,
    }


def profile(customer: str, version: int, attributes: list[dict], rows=()) -> dict:
    return {
        "customer_key": customer,
        "version": version,
        "attributes": attributes,
        "channel_responsiveness": list(rows),
        "updated_at": NOW + version,
    }


def test_profiles_become_audience_changes_and_channel_decisions(bootstrap, tmp_path):
    ignorer = profile(
        "c-ignorer",
        1,
        [attribute("social_interactions", 3), attribute("order_count", 1)],
        [row("email", 12, 0), row("push", 2, 1)],
    )
    responsive = profile(
        "c-responsive",
        1,
        [attribute("order_count", 2), attribute("predicted_value_365d", 150, "inferred", 0.7)],
        [row("email", 12, 4)],
    )
    with worker(bootstrap, tmp_path):
        publish(bootstrap, PROFILES, [ignorer, responsive])
        # version 2: the responsive customer's score falls below high-value; a late
        # version 1 of the ignorer changes nothing
        lower = [
            attribute("order_count", 2),
            attribute("predicted_value_365d", 40, "inferred", 0.7),
        ]
        publish(bootstrap, PROFILES, [profile("c-responsive", 2, lower, [row("email", 12, 4)])])
        publish(bootstrap, PROFILES, [{**ignorer, "attributes": []}])
        changes = read_topic(bootstrap, AUDIENCES, count=4, settle_s=3)
        decisions = read_topic(bootstrap, CHANNEL_DECISIONS, count=4, settle_s=1)

    seen = {
        (v["customer_key"], v["audience"], v["change"], v["profile_version"]) for _, v in changes
    }
    assert seen == {
        ("c-ignorer", "social-voices", "entered", 1),
        ("c-responsive", "repeat-buyers", "entered", 1),
        ("c-responsive", "high-value", "entered", 1),
        ("c-responsive", "high-value", "exited", 2),
    }
    assert len(changes) == len(seen), "each change once"
    entered = next(
        v for _, v in changes if v["audience"] == "high-value" and v["change"] == "entered"
    )
    assert entered["attributes_used"] == [
        {
            "name": "predicted_value_365d",
            "value": "150",
            "confidence": "inferred",
            "probability": 0.7,
        }
    ]
    assert all(k == v["customer_key"] for k, v in changes + decisions), "keyed by customer"

    by = {(v["customer_key"], v["channel"]): v for _, v in decisions}
    assert by["c-ignorer", "email"]["decision"] == "suppress"
    assert "social (3)" in by["c-ignorer", "email"]["reason"]
    assert by["c-ignorer", "social"]["decision"] == "keep"
    assert by["c-ignorer", "push"]["decision"] == "keep"
    assert by["c-responsive", "email"]["decision"] == "keep"
    assert len(decisions) == 4, "published only when a decision changes (not again on version 2)"


def test_message_requests_are_decided_within_the_guardrail_and_learn_from_responses(
    bootstrap, tmp_path
):
    floor_ok = attribute("preferred_category", "Shoes", "inferred", 0.9)
    too_unsure = attribute("preferred_category", "Bags", "inferred", 0.5)
    customers = {
        "c-sure": [attribute("order_count", 3), floor_ok, attribute("location", "Leeds, GB")],
        "c-unsure": [attribute("order_count", 3), too_unsure],
    }
    profiles = [
        profile(c, 1, attrs, [row("email", 10, 5), row("sms", 10, 0)])
        for c, attrs in customers.items()
    ]
    (example, *_) = example_records(MESSAGE_REQUESTS)
    requests = [
        {**example, "request_id": f"r-{c}-{i}", "customer_key": c, "audience": "repeat-buyers"}
        for c in customers
        for i in range(30)
    ]
    with worker(bootstrap, tmp_path):
        publish(bootstrap, PROFILES, profiles)
        read_topic(bootstrap, CHANNEL_DECISIONS, count=4)  # the profiles are in
        publish(bootstrap, MESSAGE_REQUESTS, requests)
        first = read_topic(bootstrap, MESSAGE_DECISIONS, count=len(requests), settle_s=2)
        # every decided message of the loyalty variant is opened: it should win
        (tp, *_) = example_records(TOUCHPOINTS)
        opens = [
            {
                **tp,
                "touchpoint_id": f"open-{v['message_id']}",
                "customer_key": v["customer_key"],
                "event_type": "message_opened",
                "message_id": v["message_id"],
            }
            for _, v in first
            if v["variant"] == "loyalty-points"
        ]
        publish(bootstrap, TOUCHPOINTS, opens + opens)  # a second open is not a second response
        counted = read_topic(
            bootstrap,
            RESPONSES_CHANGELOG,
            count=1,
            until=lambda f: sum(dict(f).values()) >= len(opens),
            settle_s=1,
        )
        assert sum(dict(counted).values()) == len(opens), "one response per message"
        more = [{**r, "request_id": r["request_id"] + "-later"} for r in requests]
        publish(bootstrap, MESSAGE_REQUESTS, more + requests[:5])  # 5 replayed requests
        found = read_topic(bootstrap, MESSAGE_DECISIONS, count=2 * len(requests), settle_s=3)

    decisions = [v for _, v in found]
    ids = Counter(d["decision_id"] for d in decisions)
    assert len(ids) == 2 * len(requests) and max(ids.values()) == 1, "one decision per request"
    assert opens, "the loyalty variant was tried"
    for d in decisions:
        assert d["outcome"] == "send" and d["channel"] == "email", d  # sms never answered
        assert d["variants_in_use"] <= 10
        for used in d["attributes_used"]:
            assert used["confidence"] != "inferred" or used["probability"] >= 0.8, d
    unsure = [d for d in decisions if d["customer_key"] == "c-unsure"]
    assert all(d["variant"] == "loyalty-points" for d in unsure), "Bags at 0.5 is below the floor"
    sure = [d for d in decisions if d["customer_key"] == "c-sure"]
    assert {d["variant"] for d in sure} <= {"loyalty-points", "category-restock"}
    restock = next((d for d in sure if d["variant"] == "category-restock"), None)
    if restock:
        assert restock["content"] == "New Shoes just arrived."
    later = [d for d in sure if d["request_id"].endswith("-later")]
    share = sum(d["variant"] == "loyalty-points" for d in later) / len(later)
    assert share >= 0.8, f"after responses, the responding variant is chosen ({share:.0%})"


def product(pid: str, category: str, in_stock=True) -> dict:
    (example, *_) = example_records(CATALOG)
    return {**example, "product_id": pid, "sku": pid, "category": category, "in_stock": in_stock}


def touch(customer: str, n: int, pid: str, kind: str, category: str) -> dict:
    (example, *_) = example_records(TOUCHPOINTS)
    purchase = kind == "purchase"
    return {
        **example,
        "touchpoint_id": f"tp-{customer}-{n}",
        "customer_key": customer,
        "event_type": "purchase" if purchase else "product_view",
        "is_conversion": purchase,
        "conversion_id": f"o-{customer}-{n}" if purchase else None,
        "order_id": f"o-{customer}-{n}" if purchase else None,
        "product_id": pid,
        "product_category": category,
        "event_time": NOW + n,
    }


def test_the_feed_completes_the_look_and_leaves_out_bought_and_out_of_stock(bootstrap, tmp_path):
    catalogue = [
        product("hat-1", "Hats"),
        product("shoe-1", "Shoes"),
        product("bag-1", "Bags"),
        product("bag-2", "Bags", in_stock=False),
        product("shoe-2", "Shoes"),
    ]
    # earlier shoppers bought hat-1 with shoe-1 and bag-1 (and bag-2, now out of stock)
    history = []
    for i in range(3):
        for n, (pid, cat) in enumerate(
            [("hat-1", "Hats"), ("shoe-1", "Shoes"), ("bag-1", "Bags"), ("bag-2", "Bags")]
        ):
            history.append(touch(f"c-past-{i}", n, pid, "purchase", cat))
    with worker(bootstrap, tmp_path):
        publish(bootstrap, CATALOG, catalogue)
        publish(bootstrap, TOUCHPOINTS, history)
        read_topic(bootstrap, RECOMMENDATIONS, count=1, until=lambda f: len(f) >= 9, settle_s=1)
        publish(
            bootstrap,
            TOUCHPOINTS,
            [
                touch("c-new", 0, "hat-1", "purchase", "Hats"),
                touch("c-new", 1, "shoe-1", "purchase", "Shoes"),
            ],
        )
        feeds = read_topic(
            bootstrap,
            RECOMMENDATIONS,
            count=1,
            until=lambda f: any(v["trigger_touchpoint_id"] == "tp-c-new-1" for _, v in f),
        )
    (feed,) = [v for _, v in feeds if v["trigger_touchpoint_id"] == "tp-c-new-1"]
    products = [item["product_id"] for item in feed["items"]]
    assert products == ["bag-1"], "bought (hat, shoe) and out-of-stock (bag-2) are left out"
    assert "bought with" in feed["items"][0]["reason"]
    assert feed["categories"] == 1 and feed["customer_key"] == "c-new"


def kill_run_inputs(customers: int) -> tuple[list, list, list, list]:
    """Profile updates, send requests, a catalogue and the product touches of a kill run."""
    updates = [
        profile(
            f"c-{i}",
            version,
            [
                attribute("order_count", version + i % 3),
                attribute("social_interactions", (i + version) % 2),
            ],
        )
        for version in (1, 2, 3)
        for i in range(customers)
    ]
    (example, *_) = example_records(MESSAGE_REQUESTS)
    requests = [
        {**example, "request_id": f"r-{i}", "customer_key": f"c-{i}", "audience": "repeat-buyers"}
        for i in range(customers)
    ]
    categories = ["Hats", "Shoes", "Bags", "Coats"]
    catalogue = [product(f"p-{n}", categories[n % 4]) for n in range(20)]
    touches = []
    for i in range(customers // 2):
        bought, viewed = f"p-{i % 20}", f"p-{(i + 7) % 20}"
        touches += [
            touch(f"c-{i}", 0, bought, "purchase", categories[i % 20 % 4]),
            touch(f"c-{i}", 1, viewed, "view", categories[(i + 7) % 20 % 4]),
        ]
    return updates, requests, catalogue, touches


def history(shoppers: int = 40) -> list[dict]:
    """Earlier shoppers who bought one product of each category (any of five): the
    model's start, with more in every category than one shopper buys."""
    categories = ["Hats", "Shoes", "Bags", "Coats"]
    return [
        touch(
            f"past-{s}", n, f"p-{4 * random.Random(s * 31 + n).randrange(5) + n}", "purchase", cat
        )
        for s in range(shoppers)
        for n, cat in enumerate(categories)
    ]


def test_kill_9_of_the_activation_worker_loses_no_output(bootstrap, tmp_path):
    """Thousands of profile updates, send requests and product touches; the worker is
    SIGKILLed once outputs flow and restarted: every audience change the definitions
    imply, a decision for every request and a feed for every touch are published
    (duplicates only as at-least-once allows, with the same ids)."""
    customers = 3000
    updates, requests, catalogue, touches = kill_run_inputs(customers)
    defined = load_audiences()
    changes = set()
    states: dict[str, dict] = {}
    for p in updates:
        attrs = {a["name"]: a for a in p["attributes"]}
        state = states.setdefault(p["customer_key"], {})
        for change in audience_changes(
            state, p["customer_key"], p["version"], attrs, defined, 0, 0
        ):
            changes.add(change["change_id"])
    feeds = {feed_id(t["customer_key"], t["touchpoint_id"]) for t in touches}
    expected_ids = (
        (AUDIENCES, "change_id", changes),
        (MESSAGE_DECISIONS, "decision_id", {r["request_id"] for r in requests}),
        (RECOMMENDATIONS, "feed_id", feeds),
    )
    stacks = ""
    agent = worker(bootstrap, tmp_path).start()
    try:
        publish(bootstrap, CATALOG, catalogue)
        past = history()
        publish(bootstrap, TOUCHPOINTS, past)
        last = past[-1]["touchpoint_id"]
        read_topic(
            bootstrap,
            RECOMMENDATIONS,
            count=1,
            timeout_s=120,
            until=lambda f: any(v["trigger_touchpoint_id"] == last for _, v in f),
        )
        publish(bootstrap, PROFILES, updates)
        publish(bootstrap, MESSAGE_REQUESTS, requests)
        publish(bootstrap, TOUCHPOINTS, touches)
        read_topic(bootstrap, AUDIENCES, count=len(changes) // 5, timeout_s=120)
        agent.kill()
        agent = worker(bootstrap, tmp_path).start()
        found = {
            topic: read_topic(
                bootstrap,
                topic,
                count=len(expected),
                timeout_s=180,
                until=lambda f, field=field, expected=expected: (
                    {v[field] for _, v in f} >= expected
                ),
            )
            for topic, field, expected in expected_ids
        }
        missing = {
            topic: expected - {v[field] for _, v in found[topic]}
            for topic, field, expected in expected_ids
        }
        if any(missing.values()):
            stacks = agent.dump_stacks()  # what the worker waits for
    finally:
        agent.stop()
    for topic, field, expected in expected_ids:
        ids = Counter(v[field] for _, v in found[topic] if v[field] in expected)
        if missing[topic]:
            log = (tmp_path / "activation.log").read_bytes()[-3000:].decode(errors="replace")
            pytest.fail(
                f"{topic}: {len(missing[topic])} of {len(expected)} lost, "
                f"e.g. {sorted(missing[topic])[:3]}; "
                f"the worker's stacks:\n{stacks}\nits log ends:\n{log}"
            )
        duplicates = sum(ids.values()) - len(ids)
        print(f"kill -9, {topic}: {len(expected)} outputs, none lost, {duplicates} duplicates")
    assert {v["change_id"] for _, v in found[AUDIENCES]} == changes, "nothing not implied"
