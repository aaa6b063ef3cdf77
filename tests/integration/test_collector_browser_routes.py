"""The collector's browser-facing routes, each hit as its SDK sends it: CORS per write
key, analytics.js's short routes and beacons, RudderStack's beacon, pixel and webhook,
Jitsu's event API, Snowplow's pixels, redirect, app ids and network user id cookie."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest

from connectors.sources.http_collector import CollectorSettings, HttpCollector, hash_write_key
from streams.core.settings import Settings
from tests.integration.test_collector import Collector, start_collector

pytestmark = pytest.mark.broker

SHOP = "http://shop.example:8000"
KEYS = {
    "seg-web": "web",
    "seg-mobile": "mobile",
    hash_write_key("server-only"): "web",
    "sp-key": "web",
}
ORIGINS = {"seg-web": [SHOP], "sp-key": [SHOP], "seg-mobile": ["*"]}
APP_IDS = {"shop-web": "sp-key"}


@pytest.fixture
def collector(bootstrap: str, tmp_path) -> Iterator[Collector]:
    yield from start_collector(
        bootstrap, tmp_path, write_keys=KEYS, origins=ORIGINS, snowplow_app_ids=APP_IDS
    )


def _event(kind: str = "track", **extra) -> dict:
    return {
        "type": kind,
        "messageId": f"m-{uuid.uuid4().hex}",
        "anonymousId": "anon-1",
        "event": "Product Viewed",
        "properties": {"sku": "p-1"},
        **extra,
    }


def _text_plain(url: str, body: dict, **headers) -> httpx.Response:
    """As analytics.js and beacons post: JSON in a text/plain body (no preflight)."""
    return httpx.post(
        url, content=orjson.dumps(body), headers={"Content-Type": "text/plain", **headers}
    )


def by_id(collector: Collector, source: str = "web") -> dict[str, dict]:
    return {r.value["event_id"]: r.value for r in collector.records(source)}


def test_preflight_allows_configured_origins_with_credentials(collector):
    answer = httpx.options(
        collector.url + "/v1/t",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == SHOP
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Access-Control-Allow-Headers"] == "content-type,authorization"
    # seg-mobile allows any origin: a preflight from anywhere passes, and is told so
    anywhere = httpx.options(
        collector.url + "/v1/t",
        headers={"Origin": "http://other.example", "Access-Control-Request-Method": "POST"},
    )
    assert anywhere.status_code == 204
    assert anywhere.headers["Access-Control-Allow-Origin"] == "http://other.example"


def test_a_key_refuses_origins_it_does_not_allow(bootstrap, tmp_path):
    for running in start_collector(
        bootstrap, tmp_path, write_keys=KEYS, origins={"seg-web": [SHOP]}
    ):
        preflight = httpx.options(
            running.url + "/v1/t",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 403
        assert "Access-Control-Allow-Origin" not in preflight.headers
        # a key without origins (server-side only) refuses a page even of an allowed origin
        answer = _text_plain(
            running.url + "/v1/t", {**_event(), "writeKey": "server-only"}, Origin=SHOP
        )
        assert answer.status_code == 403 and answer.json()["code"] == "origin_not_allowed"
        # and the same call without an Origin (a server) is accepted
        assert _text_plain(
            running.url + "/v1/t", {**_event(), "writeKey": "server-only"}
        ).is_success


def test_analytics_js_short_routes_and_beacon_batches(collector):
    sent = {}
    for kind, route in (("track", "t"), ("page", "p"), ("identify", "i"), ("group", "g")):
        event = _event(kind, writeKey="seg-web", groupId="g-1" if kind == "group" else None)
        answer = _text_plain(collector.url + f"/v1/{route}", event, Origin=SHOP)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == SHOP
        sent[event["messageId"]] = kind
    batch = [_event(), _event("page")]
    assert _text_plain(
        collector.url + "/v1/b", {"batch": batch, "writeKey": "seg-web"}, Origin=SHOP
    ).is_success
    sent.update({e["messageId"]: e["type"] for e in batch})
    imported = _event(timestamp="2025-01-01T00:00:00Z")
    answer = httpx.post(
        collector.url + "/v1/import", json={"batch": [imported]}, headers={"X-Write-Key": "seg-web"}
    )
    assert answer.is_success, answer.text
    sent[imported["messageId"]] = "track"
    records = by_id(collector)
    assert {i: records[i]["event_type"] for i in sent} == sent
    assert {records[i]["protocol"] for i in sent} == {"segment"}
    assert records[imported["messageId"]]["event_time"] == 1735689600000


def test_rudderstack_routes_keep_its_fields_and_protocol(collector):
    auth = {"Authorization": "Basic " + base64.b64encode(b"seg-web:").decode()}
    sdk = _event(
        rudderId="r-123", channel="web", context={"library": {"name": "RudderLabs JavaScript SDK"}}
    )
    assert httpx.post(collector.url + "/v1/track", json=sdk, headers=auth).is_success
    beacon = _event("page", rudderId="r-456", channel="web")
    assert _text_plain(
        collector.url + "/beacon/v1/batch?writeKey=seg-web", {"batch": [beacon]}, Origin=SHOP
    ).is_success
    pixel = httpx.get(
        collector.url + "/pixel/v1/track",
        params={
            "writeKey": "seg-web",
            "anonymousId": "anon-px",
            "event": "Email Opened",
            "properties.campaign": "spring",
        },
    )
    assert pixel.status_code == 200 and pixel.headers["Content-Type"] == "image/gif"
    hook = httpx.post(
        collector.url + "/v1/webhook?writeKey=seg-web&anonymousId=anon-hook",
        json={"order": "o-1", "status": "shipped"},
    )
    assert hook.is_success, hook.text
    records = list(by_id(collector).values())
    assert {r["protocol"] for r in records} == {"rudderstack"}
    assert by_id(collector)[sdk["messageId"]]["rudder_id"] == "r-123"
    assert by_id(collector)[beacon["messageId"]]["channel"] == "web"
    (opened,) = [r for r in records if r["event_name"] == "Email Opened"]
    assert opened["anonymous_id"] == "anon-px"
    assert orjson.loads(opened["properties_json"]) == {"campaign": "spring"}
    (webhook,) = [r for r in records if r["event_name"] == "webhook_source_event"]
    assert webhook["anonymous_id"] == "anon-hook" and webhook["channel"] == "sources"
    assert orjson.loads(webhook["properties_json"]) == {"order": "o-1", "status": "shipped"}


def test_jitsu_browser_and_server_routes(collector):
    browser = _event("page", context={"page": {"url": "https://shop.example/"}})
    answer = httpx.post(
        collector.url + "/api/s/page",
        json=browser,
        headers={"X-Write-Key": "seg-web", "Origin": SHOP},
    )
    assert answer.is_success, answer.text
    server = _event(userId="u-1")
    auth = ("seg-web", "")
    assert httpx.post(collector.url + "/api/s/s2s/track", json=server, auth=auth).is_success
    bad = httpx.post(collector.url + "/api/s/nonsense", json=_event(), auth=auth)
    assert bad.is_success and bad.json()["rejected"][0]["code"] == "unknown_event_type"
    records = by_id(collector)
    assert records[browser["messageId"]]["protocol"] == "jitsu"
    assert records[browser["messageId"]]["page"]["url"] == "https://shop.example/"
    assert records[server["messageId"]]["user_id"] == "u-1"
    assert [d.value["error_type"] for d in collector.dead_letters("web")] == ["unknown_event_type"]


def _sp(eid: str, aid: str = "shop-web", **extra) -> dict:
    return {
        "e": "pv",
        "eid": eid,
        "aid": aid,
        "url": "https://shop.example/p",
        "tv": "js-4",
        **extra,
    }


def test_snowplow_app_ids_cookie_pixels_and_redirect(collector):
    client = httpx.Client(base_url=collector.url)
    # a pixel without duid/uid: the network user id cookie is its anonymous id
    first = client.get("/i", params=_sp("e-1"))
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/gif"
    nuid = client.cookies["sp"]
    assert (
        "HttpOnly" in first.headers["Set-Cookie"] and "SameSite=Lax" in first.headers["Set-Cookie"]
    )
    # the same browser keeps its id, on every route
    assert client.get("/ice.png", params=_sp("e-2")).status_code == 200
    post = client.post(
        "/com.snowplowanalytics.snowplow/tp2",
        json={
            "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
            "data": [_sp("e-3"), _sp("e-4", aid="unknown-app"), _sp("e-5", duid="d-5")],
        },
        headers={"Origin": SHOP},
    )
    assert post.status_code == 200, post.text
    assert post.headers["Access-Control-Allow-Origin"] == SHOP
    assert post.json()["accepted"] == 2
    assert [r["code"] for r in post.json()["rejected"]] == ["invalid_write_key"]
    redirect = client.get(
        "/r/tp2",
        params={"u": "https://shop.example/sale", "aid": "shop-web"},
        follow_redirects=False,
    )
    assert (
        redirect.status_code == 302 and redirect.headers["Location"] == "https://shop.example/sale"
    )
    assert (
        client.get("/r/tp2", params={"u": "javascript:alert(1)", "aid": "shop-web"}).status_code
        == 400
    )
    assert client.cookies["sp"] == nuid
    records = by_id(collector)
    assert {records[e]["anonymous_id"] for e in ("e-1", "e-2", "e-3")} == {nuid}
    assert records["e-5"]["anonymous_id"] == "d-5"
    (clicked,) = [r for r in records.values() if r["event_name"] == "uri_redirect"]
    assert orjson.loads(clicked["properties_json"]) == {"uri": "https://shop.example/sale"}
    (letter,) = collector.dead_letters("web")
    assert letter.value["error_type"] == "invalid_write_key"
    # an unknown app id's event nested too deep to copy whole: its dead letter, not a 500
    deep: dict = {}
    for _ in range(300):
        deep = {"d": deep}
    mixed = client.post(
        "/com.snowplowanalytics.snowplow/tp2",
        json={"data": [_sp("e-7"), {**_sp("e-8", aid="unknown-app"), "co": deep}]},
    )
    assert mixed.status_code == 200, mixed.text
    assert [r["code"] for r in mixed.json()["rejected"]] == ["too_deep"]
    # every event of a batch unknown: nothing authenticated, 401
    assert (
        client.post(
            "/com.snowplowanalytics.snowplow/tp2", json={"data": [_sp("e-6", aid="nope")]}
        ).status_code
        == 401
    )


def test_app_ids_and_origins_must_name_configured_keys(tmp_path):
    with pytest.raises(ValueError, match="shop-web"):
        HttpCollector(
            Settings(runtime_dir=tmp_path),
            None,
            CollectorSettings(write_keys={"k": "web"}, snowplow_app_ids={"shop-web": "other"}),
        )
    with pytest.raises(ValueError, match="origins"):
        HttpCollector(
            Settings(runtime_dir=tmp_path),
            None,
            CollectorSettings(write_keys={"k": "web"}, origins={"other": ["*"]}),
        )
