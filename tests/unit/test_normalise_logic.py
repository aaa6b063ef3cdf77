"""Raw events → touchpoints, and the typed reasons that send an event to dead letters."""

import pytest

from streams.core.errors import InvalidRecord
from streams.core.jsonavro import from_json
from streams.normalise.logic import (
    CLICKSTREAM,
    FULFILLMENT,
    MESSAGING,
    MOBILE,
    SOCIAL,
    Normaliser,
    campaign_from_url,
    touchpoint_id,
)

NOW = 1_794_000_000_000  # after every example was received


@pytest.fixture
def raw(catalog):
    def make(topic, index=0, **changes):
        _, value = catalog.examples(topic)[index]
        return {**from_json(catalog.value_schema(topic).raw, value), **changes}

    return make


def test_touchpoint_ids_are_deterministic_and_per_topic():
    assert touchpoint_id("t", "e1") == touchpoint_id("t", "e1")
    assert touchpoint_id("t", "e1") != touchpoint_id("u", "e1")


def test_web_page_view_from_paid_search(raw):
    out = Normaliser().normalise(CLICKSTREAM, raw(CLICKSTREAM, 1), NOW).touchpoint
    assert (out["event_type"], out["channel"]) == ("page_view", "Paid Search")
    assert out["customer_key"] == "anon-7d9f2c"
    assert out["device"]["type"] == "desktop" and out["device"]["browser"] == "Safari"


def test_web_order_completed_is_a_conversion_with_commerce_fields(raw):
    catalog = {"p-123": {"category": "Shoes", "brand": "Stride"}}
    n = Normaliser(catalog=catalog)
    out = n.normalise(CLICKSTREAM, raw(CLICKSTREAM, 0), NOW)
    tp = out.touchpoint
    assert tp["is_conversion"] and tp["conversion_id"] == "ord-5531"
    assert (tp["revenue"], tp["currency"], tp["quantity"]) == (129.9, "GBP", 1)
    assert (tp["product_category"], tp["product_brand"]) == ("Shoes", "Stride")
    assert tp["customer_key"] == "cust-10042"
    assert out.identity == [["user_id:cust-10042", "anonymous_id:anon-7d9f2c"]]


def test_identified_anonymous_id_resolves_to_the_customer_afterwards(raw):
    n = Normaliser()
    n.normalise(CLICKSTREAM, raw(CLICKSTREAM, 0), NOW)  # carries anonymous + user id
    later = n.normalise(CLICKSTREAM, raw(CLICKSTREAM, 1), NOW).touchpoint  # anonymous only
    assert later["customer_key"] == "cust-10042"


def test_mobile_push_deep_link_and_in_store_scan(raw):
    n = Normaliser()
    push = n.normalise(MOBILE, raw(MOBILE, 0), NOW).touchpoint
    scan = n.normalise(MOBILE, raw(MOBILE, 1), NOW).touchpoint
    assert (push["event_type"], push["channel"]) == ("app_open", "Mobile Push Notifications")
    assert (scan["event_type"], scan["channel"]) == ("product_scan", "Mobile App")
    assert scan["attributes"]["store_id"] == "store-berlin-1"


def test_social_mention_has_sentiment_and_a_handle_key(raw):
    tp = Normaliser().normalise(SOCIAL, raw(SOCIAL, 0), NOW).touchpoint
    assert tp["channel"] == "Social Post" and tp["sentiment"] > 0.3
    assert tp["customer_key"] == "handle:instagram:@runner_jo"


def test_messaging_channels_and_hashed_contacts(raw):
    n = Normaliser()
    sent = n.normalise(MESSAGING, raw(MESSAGING, 0), NOW)
    assert sent.touchpoint["channel"] == "Email"
    assert sent.touchpoint["event_type"] == "message_sent"
    assert all("@" not in node for node in sent.identity[0])  # email only as a hash
    clicked = n.normalise(MESSAGING, raw(MESSAGING, 1), NOW).touchpoint
    assert clicked["channel"] == "SMS" and clicked["campaign"]["medium"] == "sms"


def test_store_order_is_a_conversion_in_the_store_channel(raw):
    tp = Normaliser().normalise(FULFILLMENT, raw(FULFILLMENT, 1), NOW).touchpoint
    assert (tp["channel"], tp["is_conversion"], tp["revenue"]) == ("Store", True, 138.9)
    assert tp["attributes"]["sales_channel"] == "store"


@pytest.mark.parametrize(
    "topic,changes,reason",
    [
        (CLICKSTREAM, {"event_id": ""}, "missing_id"),
        (CLICKSTREAM, {"anonymous_id": None, "user_id": None}, "missing_id"),
        (CLICKSTREAM, {"event_type": "teleport"}, "unknown_event_type"),
        (CLICKSTREAM, {"event_time": 4_102_444_800_000}, "impossible_timestamp"),
        (CLICKSTREAM, {"event_time": 100}, "impossible_timestamp"),
        (CLICKSTREAM, {"properties_json": "{not json"}, "invalid_value"),
        (CLICKSTREAM, {"properties_json": '{"total": "lots"}'}, "invalid_value"),
        (CLICKSTREAM, {"event_type": "track", "event_name": None}, "missing_id"),
        (SOCIAL, {"event_type": "poke"}, "unknown_event_type"),
        (MESSAGING, {"channel": "pigeon"}, "invalid_value"),
        (FULFILLMENT, {"event_type": "order_teleported"}, "unknown_event_type"),
        (FULFILLMENT, {"order_id": None}, "missing_id"),
    ],
)
def test_invalid_events_raise_a_typed_reason(raw, topic, changes, reason):
    record = raw(topic, **changes)
    if "event_time" in changes:
        record["received_at"] = NOW
    with pytest.raises(InvalidRecord) as err:
        Normaliser().normalise(topic, record, NOW)
    assert err.value.reason == reason


def test_campaign_from_landing_url():
    c = campaign_from_url("https://x.com/?utm_source=google&utm_medium=cpc&gclid=abc")
    assert (c["source"], c["medium"], c["click_id"]) == ("google", "cpc", "abc")
    assert campaign_from_url("https://x.com/?msclkid=1")["source"] == "bing"
    assert campaign_from_url("https://x.com/path") is None
