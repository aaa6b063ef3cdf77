"""Segment and Snowplow payloads → raw records (pure functions)."""

from __future__ import annotations

import base64

import orjson
import pytest

from connectors.sources.tracking import content_id, segment_record, snowplow_record
from streams.core.errors import InvalidRecord
from streams.core.jsonavro import parse_timestamp_ms

RECEIVED = parse_timestamp_ms("2026-11-01T12:00:10Z")


def test_segment_corrects_the_client_clock_with_sent_at():
    event = {
        "type": "track",
        "event": "Added",
        "anonymousId": "a",
        "messageId": "m",
        "timestamp": "2026-11-01T09:00:00Z",
    }
    batch = {"sentAt": "2026-11-01T09:00:05Z"}  # the client clock is 3 h 5 s behind
    record = segment_record(event, "web", RECEIVED, batch=batch)
    assert record["event_time"] == parse_timestamp_ms("2026-11-01T12:00:05Z")
    imported = segment_record(event, "web", RECEIVED)  # no sentAt: a historical import
    assert imported["event_time"] == parse_timestamp_ms("2026-11-01T09:00:00Z")


def test_segment_page_call_and_context():
    event = {
        "type": "page",
        "name": "Trail shoes",
        "userId": "u1",
        "messageId": "m1",
        "properties": {"url": "https://shop.example.com/trail?utm_source=x", "path": "/trail"},
        "context": {
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0",
            "locale": "en-GB",
            "library": {"name": "analytics.js", "version": "5.2.0"},
            "campaign": {"source": "google", "medium": "cpc", "name": "brand"},
            "traits": {"email": "jo@example.com"},
        },
    }
    record = segment_record(event, "web", RECEIVED, ip="198.51.100.1")
    assert record["page"]["url"].endswith("utm_source=x") and record["page"]["path"] == "/trail"
    assert record["event_name"] == "Trail shoes"
    assert record["context"]["ip"] == "203.0.113.9"  # the SDK's own value wins
    assert record["campaign"]["medium"] == "cpc"
    assert orjson.loads(record["traits_json"]) == {"email": "jo@example.com"}


def test_segment_without_message_id_gets_a_content_id():
    event = {"type": "identify", "userId": "u1", "traits": {"plan": "gold"}}
    first = segment_record(event, "web", RECEIVED)["event_id"]
    assert first == segment_record(dict(event), "web", RECEIVED + 5)["event_id"]
    assert first == content_id("seg", event)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"type": "track", "messageId": "m"}, "missing_id"),
        ({"type": "explode", "userId": "u"}, "unknown_event_type"),
        ({"type": "track", "userId": "u", "timestamp": "soon"}, "invalid_timestamp"),
        ("not an object", "schema_violation"),
    ],
)
def test_segment_invalid_events(event, reason):
    with pytest.raises(InvalidRecord) as caught:
        segment_record(event, "web", RECEIVED)
    assert caught.value.reason == reason


def test_snowplow_self_describing_event_base64():
    event = {
        "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
        "data": {"schema": "iglu:com.acme/add_to_cart/jsonschema/1-0-0", "data": {"sku": "p-1"}},
    }
    payload = {
        "e": "ue",
        "eid": "e-1",
        "aid": "shop",
        "duid": "d-1",
        "dtm": "1761998400000",
        "stm": "1761998400500",
        "tv": "py-1.1.0",
        "ue_px": base64.urlsafe_b64encode(orjson.dumps(event)).decode().rstrip("="),
    }
    record = snowplow_record(payload, "web", 1761998401500)
    assert record["event_name"] == "add_to_cart" and record["event_type"] == "track"
    assert orjson.loads(record["properties_json"]) == {"sku": "p-1"}
    assert record["event_time"] == 1761998401000  # dtm + (received - stm)
    assert record["context"]["library_version"] == "py-1.1.0"


def test_snowplow_structured_event_and_page_view():
    se = snowplow_record(
        {"e": "se", "eid": "e-2", "uid": "u", "se_ca": "shop", "se_ac": "buy", "se_va": "9.5"},
        "web",
        RECEIVED,
    )
    assert se["event_name"] == "buy"
    assert orjson.loads(se["properties_json"]) == {
        "category": "shop",
        "action": "buy",
        "value": "9.5",
    }
    pv = snowplow_record(
        {"e": "pv", "eid": "e-3", "nuid": "n", "url": "https://s.example/a?b=1", "page": "A"},
        "web",
        RECEIVED,
    )
    assert pv["page"] == {
        "url": "https://s.example/a?b=1",
        "path": "/a",
        "referrer": None,
        "title": "A",
        "search": "?b=1",
    }
    with pytest.raises(InvalidRecord, match="unknown_event_type"):
        snowplow_record({"e": "zz", "duid": "d"}, "web", RECEIVED)
