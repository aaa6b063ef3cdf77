"""Tracking payloads → clickstream / mobile raw records (pure functions).

Segment (HTTP Tracking API), and RudderStack and Jitsu, which send the same
calls: ``type`` is track/identify/page/screen/group/alias; the event id is
``messageId``; the record says which protocol it came in (``segment_protocol``
recognises RudderStack's SDKs on the shared routes by their ``rudderId`` and
library name) and keeps RudderStack's ``rudderId`` and ``channel``. Like
Segment, the event time corrects the client's clock: ``timestamp + (receivedAt -
sentAt)`` when the client sent ``sentAt``; a historical import leaves ``sentAt``
out and keeps its timestamps.

Snowplow (tracker protocol, ``tp2`` POST and ``/i`` GET): ``e`` is pv (page
view), pp (page ping), se (structured), ue (self-describing) and so on; the
event id is ``eid``, the app id ``aid``; ``dtm``/``stm`` are the device's
created and sent times.

Anything that cannot become a record raises ``InvalidRecord`` with a reason the
collector dead-letters it under.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from streams.core.errors import InvalidRecord
from streams.core.jsonavro import parse_timestamp_ms

SEGMENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
SNOWPLOW_TYPES = {
    "pv": "page",
    "pp": "page_ping",
    "se": "track",
    "ue": "track",
    "tr": "track",
    "ti": "track",
}
SNOWPLOW_NAMES = {"tr": "Transaction", "ti": "Transaction Item", "pp": "Page Ping"}


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _object(value: Any, what: str) -> dict[str, Any]:
    """A top-level object field of a call: absent is empty, another type is invalid
    (silently dropping it would lose the caller's data)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord("schema_violation", f"{what} must be a JSON object")
    return value


def _name(value: Any, what: str) -> str | None:
    """An event or page name: text (or a number, as SDKs send them), nothing else."""
    if isinstance(value, dict | list):
        raise InvalidRecord("schema_violation", f"{what} must be a string")
    return _str(value)


def _str(value: Any) -> str | None:
    """A text field as text: a number or boolean as it reads in JSON, an object or list
    as its JSON (never a Python repr)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def _id(value: Any, what: str) -> str | None:
    """An identifier: a string, or absent. Anything else is refused, never turned into
    text: ``true`` would become the customer ``"True"`` (every sender of it one
    customer), an object its Python repr."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRecord("invalid_id", f"{what} must be a string, not {type(value).__name__}")
    return value


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value else None


def _time(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_timestamp_ms(
            int(value) if isinstance(value, str) and value.isdigit() else value
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRecord("invalid_timestamp", f"{name}: {exc}") from None


def content_id(prefix: str, payload: Any) -> str:
    """A deterministic id for an event that came without one (same content, same id)."""
    digest = hashlib.blake2b(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return f"{prefix}-{digest.hexdigest()}"


def _fields(values: dict[str, Any], names: dict[str, str]) -> dict[str, Any] | None:
    """``{field: values[key]}`` for ``names`` = {field: key}, as strings; None if all empty."""
    out = {field: _str(values.get(key)) for field, key in names.items()}
    return out if any(out.values()) else None


CAMPAIGN = {f: f for f in ("source", "medium", "name", "term", "content", "click_id")}
PAGE = {f: f for f in ("url", "path", "referrer", "title", "search")}
APP = {f: f for f in ("name", "version", "build", "namespace")}
DEVICE = {
    "manufacturer": "manufacturer",
    "model": "model",
    "type": "type",
    "os_name": "os_name",
    "os_version": "os_version",
    "advertising_id": "advertisingId",
}


def _campaign(values: dict[str, Any]) -> dict[str, Any] | None:
    return _fields({**values, "click_id": values.get("click_id") or values.get("gclid")}, CAMPAIGN)


def _context(context: dict[str, Any], ip: str | None, user_agent: str | None) -> dict[str, Any]:
    library = _obj(context.get("library"))
    return {
        "ip": _str(context.get("ip")) or ip,
        "user_agent": _str(context.get("userAgent")) or user_agent,
        "locale": _str(context.get("locale")),
        "timezone": _str(context.get("timezone")),
        "library_name": _str(library.get("name")),
        "library_version": _str(library.get("version")),
    }


PROTOCOLS = ("segment", "snowplow", "rudderstack", "jitsu")


def segment_protocol(event: Any) -> str:
    """Which SDK family sent a Segment-shaped call: ``rudderstack`` when it carries
    RudderStack's ``rudderId`` or library name, else ``segment``."""
    if not isinstance(event, dict):
        return "segment"
    library = _obj(_obj(event.get("context")).get("library")).get("name")
    if "rudderId" in event or "rudder" in str(library or "").lower():
        return "rudderstack"
    return "segment"


def segment_record(
    event: Any,
    source: str,
    received_ms: int,
    *,
    call_type: str | None = None,
    batch: dict[str, Any] | None = None,
    ip: str | None = None,
    protocol: str = "segment",
) -> dict[str, Any]:
    """The raw record of one Segment-shaped call (``source`` web → clickstream, mobile →
    mobile), from ``protocol`` segment, rudderstack or jitsu.

    ``batch`` is the enclosing ``/v1/batch`` body: its ``sentAt`` and ``context``
    apply to every event that does not carry its own.
    """
    if not isinstance(event, dict):
        raise InvalidRecord("schema_violation", "an event must be a JSON object")
    batch = batch or {}
    kind = event.get("type") or call_type
    if kind not in SEGMENT_TYPES:
        raise InvalidRecord("unknown_event_type", f"type {kind!r} is not a Segment call")
    anonymous_id = _id(event.get("anonymousId"), "anonymousId")
    user_id = _id(event.get("userId"), "userId")
    if not (anonymous_id or user_id):
        raise InvalidRecord("missing_id", "an event needs an anonymousId or a userId")
    context = {**_obj(batch.get("context")), **_object(event.get("context"), "context")}
    properties = _object(event.get("properties"), "properties")
    timestamp = _time(event.get("timestamp") or event.get("originalTimestamp"), "timestamp")
    sent = _time(event.get("sentAt") or batch.get("sentAt"), "sentAt")
    if timestamp is None:
        timestamp = sent if sent is not None else received_ms
    event_time = timestamp + (received_ms - sent) if sent is not None else timestamp
    name = (
        _name(event.get("event"), "event") if kind == "track" else _name(event.get("name"), "name")
    )
    traits = event.get("traits") if kind in ("identify", "group") else context.get("traits")
    if traits is not None:
        _object(traits, "traits")
    record: dict[str, Any] = {
        "event_id": _id(event.get("messageId"), "messageId") or content_id("seg", event),
        "protocol": protocol,
        "source": source,
        "event_type": kind,
        "event_name": name,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "previous_id": _id(event.get("previousId"), "previousId"),
        "event_time": event_time,
        "sent_at": sent,
        "received_at": received_ms,
        "campaign": _campaign(_obj(context.get("campaign"))),
        "context": _context(context, ip, None),
        "properties_json": _json(properties),
        "traits_json": _json(traits),
        "rudder_id": _str(event.get("rudderId")),
        "channel": _str(event.get("channel")),
    }
    if source == "mobile":
        device, os_ = _obj(context.get("device")), _obj(context.get("os"))
        app = _obj(context.get("app"))
        record.update(
            device_id=_id(device.get("id"), "context.device.id"),
            screen_name=name if kind == "screen" else _str(_obj(context.get("screen")).get("name")),
            app=_fields(app, APP),
            device=_fields(
                {**device, "os_name": os_.get("name"), "os_version": os_.get("version")}, DEVICE
            ),
        )
    else:
        page = {**_obj(context.get("page")), **(properties if kind == "page" else {})}
        record.update(
            group_id=_id(event.get("groupId"), "groupId"),
            page=_fields(page, PAGE),
            consent_json=_json(context.get("consent")),
        )
    return record


def _snowplow_json(payload: dict[str, Any], plain: str, encoded: str) -> Any:
    """A JSON field of the tracker protocol, plain (``ue_pr``) or base64url (``ue_px``)."""
    try:
        if payload.get(plain):
            return orjson.loads(payload[plain])
        if payload.get(encoded):
            text = payload[encoded]
            return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (orjson.JSONDecodeError, binascii.Error, ValueError) as exc:
        raise InvalidRecord("schema_violation", f"{plain}/{encoded}: {exc}") from None
    return None


def _iglu_name(schema: Any) -> str | None:
    """``iglu:com.acme/add_to_cart/jsonschema/1-0-0`` → ``add_to_cart``."""
    parts = str(schema or "").split("/")
    return parts[1] if len(parts) >= 2 else None


def snowplow_record(
    payload: Any,
    source: str,
    received_ms: int,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> dict[str, Any]:
    """The raw record of one Snowplow tracker-protocol event."""
    if not isinstance(payload, dict):
        raise InvalidRecord("schema_violation", "an event must be a JSON object")
    code = payload.get("e")
    if code not in SNOWPLOW_TYPES:
        raise InvalidRecord("unknown_event_type", f"e={code!r} is not a Snowplow event type")
    anonymous_id = _id(payload.get("duid"), "duid") or _id(payload.get("nuid"), "nuid")
    user_id = _id(payload.get("uid"), "uid")
    if not (anonymous_id or user_id):
        raise InvalidRecord("missing_id", "an event needs a duid, nuid or uid")
    properties: dict[str, Any] = {}
    name = SNOWPLOW_NAMES.get(code)
    if code == "se":
        name = _str(payload.get("se_ac"))
        properties = {
            k: payload[f"se_{k[:2]}"]
            for k in ("category", "action", "label", "property", "value")
            if payload.get(f"se_{k[:2]}") is not None
        }
    elif code == "ue":
        event = _obj(_obj(_snowplow_json(payload, "ue_pr", "ue_px")).get("data"))
        name = _iglu_name(event.get("schema"))
        properties = _obj(event.get("data"))
    contexts = _snowplow_json(payload, "co", "cx")
    if contexts:
        properties["contexts"] = _obj(contexts).get("data")
    created = _time(payload.get("ttm") or payload.get("dtm"), "dtm")
    sent = _time(payload.get("stm"), "stm")
    if created is None:
        created = sent if sent is not None else received_ms
    event_time = created + (received_ms - sent) if sent is not None else created
    url = _str(payload.get("url"))
    record: dict[str, Any] = {
        "event_id": _id(payload.get("eid"), "eid") or content_id("sp", payload),
        "protocol": "snowplow",
        "source": source,
        "event_type": SNOWPLOW_TYPES[code],
        "event_name": name,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "previous_id": None,
        "event_time": event_time,
        "sent_at": sent,
        "received_at": received_ms,
        "campaign": None,  # the normaliser reads UTM parameters from the page URL
        "context": {
            "ip": _str(payload.get("ip")) or ip,
            "user_agent": _str(payload.get("ua")) or user_agent,
            "locale": _str(payload.get("lang")),
            "timezone": _str(payload.get("tz")),
            "library_name": "snowplow",
            "library_version": _str(payload.get("tv")),
        },
        "properties_json": _json(properties),
        "traits_json": None,
        "rudder_id": None,
        "channel": None,
    }
    if source == "mobile":
        record.update(
            device_id=anonymous_id,
            screen_name=name if code == "ue" else None,
            app=None,
            device=None,
        )
    else:
        split = urlsplit(url or "")
        record.update(
            group_id=None,
            page={
                "url": url,
                "path": split.path or None,
                "referrer": _str(payload.get("refr")),
                "title": _str(payload.get("page")),
                "search": f"?{split.query}" if split.query else None,
            }
            if url
            else None,
            consent_json=None,
        )
    return record


def snowplow_get_payload(query: str) -> dict[str, str]:
    """The tracker-protocol payload of a ``GET /i?...`` pixel request."""
    return dict(parse_qsl(query, keep_blank_values=False))


URI_REDIRECT = "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0"


def snowplow_redirect_payload(query: str) -> tuple[dict[str, Any], str]:
    """``GET /r/tp2?u=<url>&...``: the tracker-protocol payload of the click (a
    ``uri_redirect`` event unless the query names another) and where to send the
    browser. Only http(s) targets: anything else would make the collector an open
    redirect to ``javascript:`` URLs."""
    payload: dict[str, Any] = snowplow_get_payload(query)
    target = str(payload.pop("u", "") or "")
    if urlsplit(target).scheme not in ("http", "https"):
        raise InvalidRecord("invalid_redirect", "u must be an http(s) URL")
    if "e" not in payload:
        payload["e"] = "ue"
        payload["ue_pr"] = orjson.dumps(
            {"data": {"schema": URI_REDIRECT, "data": {"uri": target}}}
        ).decode()
    return payload, target


def rudderstack_pixel_event(query: str, call: str) -> dict[str, Any]:
    """A RudderStack ``GET /pixel/v1/{track,page}?writeKey=...&anonymousId=...`` call as
    a Segment-shaped event: dotted parameters (``properties.sku=...``,
    ``context.page.url=...``) become nested objects."""
    event: dict[str, Any] = {"type": call}
    for name, value in parse_qsl(query, keep_blank_values=False):
        if name == "writeKey":
            continue
        *parents, leaf = name.split(".")
        node = event
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    if not event.get("messageId"):
        event["messageId"] = content_id("rs-pixel", event)
    return event


def rudderstack_webhook_event(payload: Any, anonymous_id: str | None) -> dict[str, Any]:
    """A RudderStack ``POST /v1/webhook`` body as the track call RudderStack makes of
    it: ``webhook_source_event`` with the body as its properties."""
    if not isinstance(payload, dict):
        raise InvalidRecord("schema_violation", "a webhook body must be a JSON object")
    return {
        "type": "track",
        "event": "webhook_source_event",
        "properties": payload,
        "anonymousId": anonymous_id or content_id("rs-webhook-anon", payload),
        "messageId": content_id("rs-webhook", payload),
        "channel": "sources",
    }
