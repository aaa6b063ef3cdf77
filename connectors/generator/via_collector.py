"""Publish a generated population through the HTTP collector, as real trackers would.

Web and app events become Segment calls (``POST /v1/batch`` with the source's
write key, no ``sentAt``: a historical import keeps its timestamps), social and
messaging events go to the collector's webhooks, and order events, which come
from the order system rather than from HTTP, are produced to Kafka as the
PostgreSQL source would publish them. Batches are retried on 5xx and
connection errors, as the SDKs do; the collector deduplicates the retries.

Invalid events are made invalid the way each protocol can be: a Segment call
"missing its id" has neither ``anonymousId`` nor ``userId`` (the collector
dead-letters it), one of an unknown type has a type Segment does not know.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer

from connectors.generator.population import RawEvent
from connectors.generator.publish import produce_event
from streams.core.codec import Codec
from streams.core.errors import FatalError
from streams.core.topics import CLICKSTREAM, MESSAGING, MOBILE, SOCIAL

SEGMENT_SOURCES = {CLICKSTREAM: "web", MOBILE: "mobile"}
WEBHOOKS = {SOCIAL: "social", MESSAGING: "messaging"}
DEFAULT_KEYS = {s: f"local-{s}" for s in ("web", "mobile", "social", "messaging")}
MAX_BATCH_EVENTS = 400
MAX_BATCH_BYTES = 400_000


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _loads(text: str | None) -> Any:
    return orjson.loads(text) if text else None


def to_segment(record: dict[str, Any], invalid: str | None = None) -> dict[str, Any]:
    """The Segment call a tracker would have sent for a clickstream or mobile record."""
    context: dict[str, Any] = {
        "ip": record["context"]["ip"],
        "userAgent": record["context"]["user_agent"],
        "locale": record["context"]["locale"],
        "timezone": record["context"]["timezone"],
        "library": {
            "name": record["context"]["library_name"],
            "version": record["context"]["library_version"],
        },
    }
    if record.get("campaign"):
        context["campaign"] = record["campaign"]
    if record.get("page"):
        context["page"] = record["page"]
    if record.get("app"):
        context["app"] = record["app"]
    device = record.get("device") or {}
    if device or record.get("device_id"):
        context["device"] = {
            "id": record.get("device_id"),
            "manufacturer": device.get("manufacturer"),
            "model": device.get("model"),
            "type": device.get("type"),
            "advertisingId": device.get("advertising_id"),
        }
        context["os"] = {"name": device.get("os_name"), "version": device.get("os_version")}
    if record.get("screen_name"):
        context["screen"] = {"name": record["screen_name"]}
    if record.get("consent_json"):
        context["consent"] = _loads(record["consent_json"])
    kind = record["event_type"]
    call: dict[str, Any] = {
        "type": kind,
        "messageId": record["event_id"],
        "anonymousId": record["anonymous_id"],
        "userId": record["user_id"],
        "timestamp": _iso(record["event_time"]),
        "context": {k: v for k, v in context.items() if v is not None},
        "properties": _loads(record.get("properties_json")),
    }
    name_field = "event" if kind == "track" else "name"
    call[name_field] = record.get("event_name")
    traits = _loads(record.get("traits_json"))
    if kind in ("identify", "group"):
        call["traits"] = traits
    elif traits:
        call["context"]["traits"] = traits
    if record.get("previous_id"):
        call["previousId"] = record["previous_id"]
    if record.get("group_id"):
        call["groupId"] = record["group_id"]
    if invalid == "missing_id":
        call["anonymousId"] = call["userId"] = None
    return {k: v for k, v in call.items() if v is not None}


class CollectorClient:
    """Posts batches to the collector, retrying like an SDK (5xx, 429, network errors)."""

    def __init__(self, url: str, keys: dict[str, str], retries: int = 8) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=30)
        self.keys = keys
        self.retries = retries
        self.requests = 0

    def post(self, path: str, source: str, body: dict[str, Any]) -> dict[str, Any]:
        delay = 0.2
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                response = self.http.post(path, json=body, auth=(self.keys[source], ""))
            except httpx.TransportError as exc:
                error = str(exc)
            else:
                if response.status_code == 200:
                    return response.json()
                if response.status_code < 500 and response.status_code != 429:
                    raise FatalError(f"collector refused {path}: {response.text}")
                error = response.text
            if attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise FatalError(f"collector did not accept {path} after {self.retries} retries: {error}")

    def close(self) -> None:
        self.http.close()


def publish_via_collector(
    events: Iterable[RawEvent],
    url: str,
    codec: Codec,
    producer: Producer,
    keys: dict[str, str] | None = None,
    rate: float | None = None,
) -> int:
    """Send every event the way its real source would; returns how many were sent.

    ``rate`` paces sending at about that many events per second (batches are
    sent when full or when the pace says so).
    """
    client = CollectorClient(url, keys or DEFAULT_KEYS)
    pending: dict[str, list[dict[str, Any]]] = {}
    size: dict[str, int] = {}
    errors: list[str] = []
    failed: list[tuple[str, bytes | None, bytes | None]] = []  # order events to send again

    def delivered(err, msg) -> None:
        if err is not None:
            errors.append(str(err))
            failed.append((msg.topic(), msg.key(), msg.value()))

    sent = 0
    started = time.monotonic()

    def flush(topic: str) -> None:
        batch = pending.pop(topic, [])
        size.pop(topic, None)
        if not batch:
            return
        if topic in SEGMENT_SOURCES:
            client.post("/v1/batch", SEGMENT_SOURCES[topic], {"batch": batch})
        else:
            client.post(f"/webhooks/{WEBHOOKS[topic]}", WEBHOOKS[topic], {"events": batch})

    try:
        for event in events:
            sent += 1
            if event.topic in SEGMENT_SOURCES:
                body = to_segment(event.record, event.invalid)
            elif event.topic in WEBHOOKS:
                body = {k: v for k, v in event.record.items() if k != "received_at"}
            else:  # the order system's events: produced as its source publishes them
                produce_event(event, codec, producer, delivered)
                producer.poll(0)
                continue
            encoded = len(orjson.dumps(body))
            if size.get(event.topic, 0) + encoded > MAX_BATCH_BYTES:
                flush(event.topic)
            pending.setdefault(event.topic, []).append(body)
            size[event.topic] = size.get(event.topic, 0) + encoded
            if len(pending[event.topic]) >= MAX_BATCH_EVENTS:
                flush(event.topic)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0.2:  # ahead of the pace: send what waits, then catch the pace
                    for topic in list(pending):
                        flush(topic)
                    time.sleep(max(0.0, sent / rate - (time.monotonic() - started)))
        for topic in list(pending):
            flush(topic)
    finally:
        client.close()
    # the order system's source sends again what the broker did not acknowledge (the
    # same event ids: a copy that did arrive is harmless downstream)
    deadline = time.monotonic() + 120
    while (producer.flush(60) or failed) and time.monotonic() < deadline:
        again, failed[:] = list(failed), []
        time.sleep(1.0)
        for topic, key, value in again:
            producer.produce(topic, value, key, on_delivery=delivered)
    if producer.flush(60) or failed:
        raise FatalError(f"generator: not every order event was acknowledged: {errors[-3:]}")
    return sent
