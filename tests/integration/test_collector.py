"""The HTTP collector against the real broker, driven by unmodified official tracker SDKs."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from aiohttp import ClientSession, web
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import REGISTRY

from connectors.sources.http_collector import (
    SOURCE_TOPICS,
    CollectorSettings,
    HttpCollector,
    hash_write_key,
)
from connectors.testing import Running, read_topic, wait_for
from streams.core.keys import hash_contact
from streams.core.settings import Settings
from streams.runtime.deadletter import dead_letter_topic

pytestmark = pytest.mark.broker

# configured as a real deployment would: digests only (plain keys work too)
KEYS = {
    "seg-web": "web",
    "seg-mobile": "mobile",
    "sp-web": "web",
    hash_write_key("hook-social"): "social",
    hash_write_key("hook-messaging"): "messaging",
}


@dataclass
class Collector:
    url: str
    prefix: str
    bootstrap: str

    def records(self, source: str) -> list:
        topic = SOURCE_TOPICS[source]
        return read_topic(self.bootstrap, self.prefix + topic, topic)

    def dead_letters(self, source: str) -> list:
        dlq = dead_letter_topic(SOURCE_TOPICS[source])
        return read_topic(self.bootstrap, self.prefix + dlq, dlq)

    def post(self, path: str, body, key: str | None = "seg-web", **kw) -> httpx.Response:
        return httpx.post(
            self.url + path, json=body, auth=(key, "") if key else None, timeout=30, **kw
        )


@pytest.fixture
def collector(bootstrap: str, tmp_path) -> Iterator[Collector]:
    yield from start_collector(bootstrap, tmp_path)


def start_collector(
    bootstrap: str, tmp_path, collector_class: type[HttpCollector] = HttpCollector, **settings
) -> Iterator[Collector]:
    prefix = f"collector.{uuid.uuid4().hex[:8]}."
    topics = [t for s in SOURCE_TOPICS.values() for t in (s, dead_letter_topic(s))]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(prefix + t, num_partitions=2, replication_factor=1) for t in topics]
    ).values():
        future.result(timeout=30)
    conf = CollectorSettings(topic_prefix=prefix, **{"port": 0, "write_keys": KEYS, **settings})
    app = collector_class(Settings(runtime_dir=tmp_path), bootstrap, conf)
    running = Running(app)
    assert app.started.wait(30)
    yield Collector(f"http://127.0.0.1:{app.port}", prefix, bootstrap)
    running.stop()


def _track(i: int, **extra) -> dict:
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m-{i}",
        "anonymousId": f"anon-{i % 7}",
        "timestamp": "2026-11-01T12:00:00.000Z",
        "properties": {"product_id": f"p-{i}"},
        **extra,
    }


class LosingProxy:
    """A reverse proxy that forwards every request but, for the first ``lose`` of them,
    answers 503 although the collector answered 200: a response lost on the way back,
    which makes the client retry a batch the collector already accepted."""

    def __init__(self, target: str, lose: int) -> None:
        self.target, self.lose = target, lose
        self.requests = 0
        self.retries = 0
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def _forward(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.retries += "X-Retry-Count" in request.headers
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type", "content-encoding")
        }
        body = await request.content.read()  # still gzipped: passed on as sent
        async with (
            ClientSession(auto_decompress=False) as session,
            session.post(self.target + request.path, data=body, headers=headers) as upstream,
        ):
            payload = await upstream.read()
            status = upstream.status
        if status == 200 and self.lose > 0:
            self.lose -= 1
            return web.json_response({"code": "lost", "message": "response lost"}, status=503)
        return web.Response(body=payload, status=status, content_type="application/json")

    async def _serve(self) -> None:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._forward)
        runner = web.AppRunner(app, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self.ready.set()
        while not self.stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()


def test_segment_sdk_with_forced_retries_delivers_exactly_1000_events(collector):
    from segment.analytics import Client

    proxy = LosingProxy(collector.url, lose=3)
    errors: list = []
    client = Client(
        "seg-web",
        host=proxy.url,
        gzip=True,
        upload_size=100,
        max_retries=10,
        on_error=lambda e, batch: errors.append(e),
    )
    for i in range(1000):
        client.track(
            anonymous_id=f"anon-{i % 50}",
            event="Product Viewed",
            properties={"product_id": f"p-{i % 20}", "i": i},
            context={"page": {"url": f"https://shop.example.com/p/{i}"}},
        )
    client.flush()
    client.shutdown()
    proxy.stop.set()
    assert not errors
    assert proxy.retries >= 3, "the SDK retried the batches whose response was lost"

    assert wait_for(lambda: len(collector.records("web")) >= 1000)
    records = collector.records("web")
    assert len(records) == 1000, "a re-sent batch must not create a second event"
    assert len({r.value["event_id"] for r in records}) == 1000
    sample = records[0].value
    assert sample["protocol"] == "segment" and sample["event_name"] == "Product Viewed"
    assert sample["context"]["library_name"] == "analytics-python"
    assert records[0].key == sample["anonymous_id"]


def test_snowplow_tracker_post_and_get(collector):
    from snowplow_tracker import Emitter, Subject, Tracker
    from snowplow_tracker.events import PageView, SelfDescribing
    from snowplow_tracker.self_describing_json import SelfDescribingJson

    port = int(collector.url.rsplit(":", 1)[1])
    for method in ("post", "get"):
        emitter = Emitter("127.0.0.1", protocol="http", port=port, method=method, batch_size=5)
        subject = Subject().set_domain_user_id(f"duid-{method}").set_user_id("cust-1")
        tracker = Tracker("t", emitter, subject=subject, app_id="sp-web")
        for i in range(10):
            tracker.track(PageView(page_url=f"https://shop.example.com/{method}/{i}?utm_source=x"))
        tracker.track(
            SelfDescribing(
                SelfDescribingJson(
                    "iglu:com.example/add_to_cart/jsonschema/1-0-0", {"sku": "p-1", "qty": 2}
                )
            )
        )
        tracker.flush()
    assert wait_for(lambda: len(collector.records("web")) >= 22)
    records = [r.value for r in collector.records("web")]
    assert len(records) == 22
    assert {r["protocol"] for r in records} == {"snowplow"}
    pages = [r for r in records if r["event_type"] == "page"]
    assert len(pages) == 20 and all(r["page"]["url"].startswith("https://") for r in pages)
    carts = [r for r in records if r["event_name"] == "add_to_cart"]
    assert len(carts) == 2 and orjson.loads(carts[0]["properties_json"])["qty"] == 2
    assert {r["anonymous_id"] for r in records} == {"duid-post", "duid-get"}


def test_a_resent_batch_is_one_event_each_and_mobile_keys_go_to_the_mobile_topic(collector):
    batch = {"batch": [_track(i) for i in range(20)]}
    first = collector.post("/v1/batch", batch)
    again = collector.post("/v1/batch", batch)
    assert first.json()["accepted"] == 20
    assert again.json() == {"success": True, "accepted": 0, "duplicates": 20, "rejected": []}
    screen = {
        "type": "screen",
        "name": "Home",
        "anonymousId": "a1",
        "messageId": "s1",
        "context": {
            "device": {"id": "dev-1", "manufacturer": "Apple"},
            "os": {"name": "iOS"},
            "app": {"name": "Shop"},
        },
    }
    assert collector.post("/v1/screen", screen, key="seg-mobile").status_code == 200
    assert wait_for(lambda: len(collector.records("mobile")) == 1)
    mobile = collector.records("mobile")[0].value
    assert mobile["screen_name"] == "Home" and mobile["device"]["os_name"] == "iOS"
    assert len(collector.records("web")) == 20


def test_gzip_body_and_write_key_in_the_body(collector):
    body = gzip.compress(orjson.dumps({"batch": [_track(1)], "writeKey": "seg-web"}))
    response = httpx.post(
        collector.url + "/v1/batch",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200 and response.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("path", "body", "key", "status", "code"),
    [
        ("/v1/batch", {"batch": [_track(1)]}, "nope", 401, "invalid_write_key"),
        ("/v1/batch", {"batch": [_track(1)]}, None, 401, "invalid_write_key"),
        ("/v1/batch", {"batch": [_track(1)]}, "hook-social", 401, "invalid_write_key"),
        ("/v1/batch", {"events": []}, "seg-web", 400, "invalid_request"),
        (
            "/v1/batch",
            {"batch": [_track(i, pad="x" * 20_000) for i in range(30)]},
            "seg-web",
            413,
            "payload_too_large",
        ),
        ("/v2/nothing", {}, "seg-web", 404, "not_found"),
    ],
)
def test_refusals_are_json_errors(collector, path, body, key, status, code):
    response = collector.post(path, body, key=key)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["message"]


def test_invalid_json_is_a_400(collector):
    response = httpx.post(collector.url + "/v1/track", content=b"{no", auth=("seg-web", ""))
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


def _counted(name: str, topic: str) -> float:
    return REGISTRY.get_sample_value(name, {"stage": "http-collector", "topic": topic}) or 0.0


def test_invalid_events_are_dead_lettered_and_the_rest_accepted(collector):
    web = collector.prefix + SOURCE_TOPICS["web"]  # a topic of this test's alone
    batch = [
        _track(1),
        {"type": "track", "event": "No ids", "messageId": "m-x"},
        {"type": "teleport", "anonymousId": "a", "messageId": "m-y"},
        _track(2, properties={"blob": "x" * 40_000}),
        _track(3, timestamp="yesterday-ish"),
    ]
    answer = collector.post("/v1/batch", {"batch": batch}).json()
    assert answer["accepted"] == 1
    assert [(r["index"], r["code"]) for r in answer["rejected"]] == [
        (1, "missing_id"),
        (2, "unknown_event_type"),
        (3, "too_large"),
        (4, "invalid_timestamp"),
    ]
    assert wait_for(lambda: len(collector.dead_letters("web")) == 4)
    letters = collector.dead_letters("web")
    assert sorted(d.value["error_type"] for d in letters) == sorted(
        r["code"] for r in answer["rejected"]
    )
    assert all(d.value["original"] and d.value["stage"] == "http-collector" for d in letters)
    # the dead-letter-rate alert's series for the collector: 4 of 5 inputs dead-lettered
    dead = sum(
        REGISTRY.get_sample_value(
            "journeybus_dead_letters_total",
            {"stage": "http-collector", "topic": dead_letter_topic(web), "reason": reason},
        )
        or 0.0
        for reason in ("missing_id", "unknown_event_type", "too_large", "invalid_timestamp")
    )
    assert (_counted("journeybus_events_in_total", web), dead) == (5, 4)


def test_social_webhook(collector):
    event = {
        "event_id": "ig-1",
        "platform": "instagram",
        "event_type": "mention",
        "handle": "@jo",
        "text": "great shoes",
        "occurred_at": "2026-11-01T12:00:00Z",
    }
    assert collector.post("/webhooks/social", {"events": [event]}, key="seg-web").status_code == 401
    response = collector.post(
        "/webhooks/social", {"events": [event, {"platform": "x"}]}, key="hook-social"
    )
    assert response.json()["accepted"] == 1 and len(response.json()["rejected"]) == 1
    assert wait_for(lambda: len(collector.records("social")) == 1)
    record = collector.records("social")[0]
    assert record.key == "@jo" and record.value["received_at"] is not None


def test_contact_data_is_hashed_and_ips_and_undeclared_traits_dropped_at_ingestion(collector):
    message = {
        "event_id": "sg-1",
        "channel": "email",
        "event_type": "sent",
        "message_id": "msg-1",
        "user_id": "cust-1",
        "email": "Jo@Example.org",
        "provider": "sendgrid",
        "occurred_at": "2026-11-04T07:00:00Z",
    }
    hook = collector.post("/webhooks/messaging", {"events": [message]}, key="hook-messaging")
    assert hook.json()["accepted"] == 1
    identify = {
        "type": "identify",
        "messageId": "id-1",
        "anonymousId": "anon-1",
        "userId": "cust-1",
        "timestamp": "2026-11-01T12:00:00.000Z",
        "traits": {"email": "jo@example.org", "name": "Jo", "city": "Leeds"},
        "context": {"ip": "203.0.113.9"},
    }
    assert collector.post("/v1/batch", {"batch": [identify]}).status_code == 200
    assert wait_for(lambda: collector.records("messaging") and collector.records("web"))
    (sent,) = collector.records("messaging")
    assert sent.value["email"] == hash_contact("jo@example.org")
    (web,) = collector.records("web")
    assert web.value["context"]["ip"] is None
    assert orjson.loads(web.value["traits_json"]) == {"city": "Leeds"}


def test_events_without_an_id_are_each_dead_lettered_not_taken_for_duplicates(collector):
    # an empty event_id used to be remembered as an accepted id: every later event
    # without one was answered as a duplicate and never reached any topic
    events = [
        {
            "event_id": "",
            "platform": "instagram",
            "event_type": "mention",
            "handle": f"@jo{i}",
            "text": f"post {i}",
            "occurred_at": "2026-11-01T12:00:00Z",
        }
        for i in range(3)
    ]
    for _ in range(2):  # and again, as a retry would send them
        answer = collector.post("/webhooks/social", {"events": events}, key="hook-social").json()
        assert answer["accepted"] == 0 and answer["duplicates"] == 0
        assert [r["code"] for r in answer["rejected"]] == ["missing_id"] * 3
    assert wait_for(lambda: len(collector.dead_letters("social")) == 6)
    letters = collector.dead_letters("social")
    assert {d.value["error_type"] for d in letters} == {"missing_id"}
    assert len({d.value["dead_letter_id"] for d in letters}) == 3  # one row each in the table
    assert collector.records("social") == []


@pytest.fixture
def limited(bootstrap: str, tmp_path) -> Iterator[Collector]:
    yield from start_collector(bootstrap, tmp_path, rate_limit_events_per_s=5, rate_limit_burst=10)


def test_over_its_rate_limit_a_write_key_gets_429_with_retry_after_and_nothing_published(
    limited,
):
    first = limited.post("/v1/batch", {"batch": [_track(i) for i in range(8)]})
    assert first.status_code == 200, first.text
    refused = limited.post("/v1/batch", {"batch": [_track(i) for i in range(100, 108)]})
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    # another key has its own budget
    other = limited.post("/v1/batch", {"batch": [_track(200)]}, key="seg-mobile")
    assert other.status_code == 200
    time.sleep(wait)
    retried = limited.post("/v1/batch", {"batch": [_track(i) for i in range(100, 108)]})
    assert retried.status_code == 200, retried.text
    too_big = limited.post("/v1/batch", {"batch": [_track(i) for i in range(300, 311)]})
    assert too_big.status_code == 413 and too_big.json()["code"] == "over_rate_limit_burst"
    ids = sorted(r.value["event_id"] for r in limited.records("web"))
    assert ids == sorted(_track(i)["messageId"] for i in [*range(8), *range(100, 108)])
