"""Raw source events → the common touchpoint record (pure functions).

``normalise(topic, record, ...)`` maps one decoded raw event of any source
topic to a ``cust.touchpoints.v1`` record (without ``session_id``, which the
journeys stage assigns) plus identity evidence it carries. It raises
``InvalidRecord`` with a typed reason for anything that must be dead-lettered:
``missing_id``, ``impossible_timestamp``, ``unknown_event_type``,
``invalid_value``.

Guarantees: deterministic. The touchpoint id is a hash of the source topic and
the source event id, so a replayed or duplicated raw event yields the same
touchpoint id and the same record.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from streams.core.errors import InvalidRecord
from streams.core.keys import contact_node, key_of, node
from streams.core.timecheck import EARLIEST_MS, MAX_FUTURE_SKEW_MS, possible_time
from streams.core.topics import CLICKSTREAM, FULFILLMENT, MESSAGING, MOBILE, SOCIAL
from streams.enrich import channels
from streams.enrich.devices import parse_device
from streams.enrich.sentiment import sentiment_score
from streams.identity.graph import IdentityGraph

INT32_MAX = 2**31 - 1

# Segment e-commerce and mobile spec names -> normalised event types.
TRACK_EVENTS = {
    "product viewed": "product_view",
    "product clicked": "product_view",
    "product list viewed": "list_view",
    "products searched": "search",
    "product added": "add_to_cart",
    "product removed": "remove_from_cart",
    "cart viewed": "cart_view",
    "checkout started": "checkout",
    "checkout step completed": "checkout",
    "payment info entered": "checkout",
    "order completed": "purchase",
    "order refunded": "refund",
    "order cancelled": "cancel",
    "coupon applied": "coupon_applied",
    "signed up": "sign_up",
    "signed in": "login",
    "application installed": "app_install",
    "application opened": "app_open",
    "application updated": "app_update",
    "product scanned": "product_scan",
    "deep link opened": "deep_link",
    "push notification tapped": "push_tapped",
    "store visited": "store_visit",
}
CALL_TYPES = {"track", "page", "screen", "identify", "alias", "group"}
SOCIAL_TYPES = {"mention", "comment", "share", "like", "click_through"}
MESSAGE_TYPES = {"sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "complained"}
MESSAGE_CHANNELS = {"email": channels.EMAIL, "sms": channels.SMS, "push": channels.PUSH}
FULFILLMENT_TYPES = {
    "order_placed",
    "order_paid",
    "order_shipped",
    "order_delivered",
    "order_delayed",
    "order_returned",
    "order_refunded",
    "ticket_opened",
    "ticket_closed",
}
UTM_KEYS = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "name",
    "utm_term": "term",
    "utm_content": "content",
}
CLICK_ID_KEYS = ("gclid", "dclid", "wbraid", "gbraid")


@dataclass
class Normalised:
    """A touchpoint and the identity evidence its source event carried."""

    touchpoint: dict[str, Any]
    identity: list[list[str]] = field(default_factory=list)  # groups of identity nodes


def touchpoint_id(source_topic: str, event_id: str) -> str:
    digest = hashlib.blake2b(f"{source_topic}\x1f{event_id}".encode(), digest_size=16)
    return "tp-" + digest.hexdigest()


def campaign_from_url(url: str | None) -> dict[str, Any] | None:
    """UTM parameters and Google click id of a landing URL, or None."""
    if not url or "?" not in url:
        return None
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return None
    out: dict[str, Any] = {v: query[k][0] for k, v in UTM_KEYS.items() if query.get(k)}
    click = next((query[k][0] for k in CLICK_ID_KEYS if query.get(k)), None)
    if click:
        out["click_id"] = click
    elif query.get("msclkid") and "source" not in out:
        out.update(source="bing", medium="cpc")
    if not out:
        return None
    return {
        "source": None,
        "medium": None,
        "name": None,
        "term": None,
        "content": None,
        "click_id": None,
        **out,
    }


# Traits a customer states about themselves that profiles keep as "declared":
# preferences and coarse location only, never contact details (those are
# identifiers, hashed into the identity graph).
DECLARED_TRAITS = ("city", "country", "preferred_category", "preferred_channel", "marketing_opt_in")


def declared_traits(record: Mapping[str, Any]) -> dict[str, str]:
    """The whitelisted traits of an identify call, as ``trait.<name>`` attributes."""
    raw = record.get("traits_json")
    try:
        traits = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}  # traits are optional context; a broken blob does not void the event
    if not isinstance(traits, dict):
        return {}
    # a declared trait is a scalar; an object or list in its place is not a declaration
    return {
        f"trait.{name}": str(traits[name])
        for name in DECLARED_TRAITS
        if isinstance(traits.get(name), str | int | float | bool) and traits[name] != ""
    }


def _properties(record: Mapping[str, Any]) -> dict[str, Any]:
    raw = record.get("properties_json")
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("invalid_value", f"properties_json is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRecord("invalid_value", "properties_json is not a JSON object")
    return value


def _check_time(event_ms: int, received_ms: int, name: str, processed_ms: int) -> None:
    """The event time and received time of an event must be possible: after 2000, and
    not more than a day in the future (of when it was received, and of now)."""
    if not possible_time(received_ms, processed_ms):
        raise InvalidRecord(
            "impossible_timestamp",
            f"received time {received_ms} is before 2000-01-01 or more than a day from now",
        )
    if event_ms < EARLIEST_MS:
        raise InvalidRecord("impossible_timestamp", f"{name} {event_ms} is before 2000-01-01")
    if event_ms > received_ms + MAX_FUTURE_SKEW_MS:
        raise InvalidRecord(
            "impossible_timestamp",
            f"{name} {event_ms} is more than a day after received time {received_ms}",
        )


def _require(value: Any, what: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidRecord("missing_id", f"{what} is missing")
    return value


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRecord("invalid_value", f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise InvalidRecord("invalid_value", f"{what} is not a number: {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidRecord("invalid_value", f"{what} is not finite")
    return number


def _quantity(value: float | int, what: str) -> int:
    """A quantity as the int the touchpoint holds: whole, and within Avro's int."""
    if not -INT32_MAX <= value <= INT32_MAX:
        raise InvalidRecord("invalid_value", f"{what} {value} is out of range")
    return int(value)


def _finite(value: float | None, what: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise InvalidRecord("invalid_value", f"{what} is not finite")
    return value


def _text(value: Any, what: str) -> str | None:
    """An identifier or code from a JSON blob: a string or a number, as text; another
    type (an object, a list, a boolean) is an error, never its Python repr."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidRecord("invalid_value", f"{what} must be a string or a number")


def _base(
    topic: str,
    record: Mapping[str, Any],
    system: str,
    event_type: str,
    channel: str,
    event_ms: int,
    received_ms: int,
    processed_ms: int,
) -> dict[str, Any]:
    event_id = _require(record.get("event_id"), "event_id")
    return {
        "touchpoint_id": touchpoint_id(topic, event_id),
        "source_event_id": event_id,
        "source_topic": topic,
        "source_system": system,
        "customer_key": "",
        "anonymous_id": None,
        "user_id": None,
        "device_id": None,
        "event_type": event_type,
        "event_name": None,
        "channel": channel,
        "event_time": event_ms,
        "received_time": received_ms,
        "session_id": None,
        "is_conversion": False,
        "conversion_id": None,
        "order_id": None,
        "revenue": None,
        "currency": None,
        "discount": None,
        "coupon_code": None,
        "product_id": None,
        "product_category": None,
        "product_brand": None,
        "quantity": None,
        "campaign": None,
        "referrer": None,
        "page_url": None,
        "device": None,
        "sentiment": None,
        "message_id": None,
        "processed_at": processed_ms,
        "attributes": {},
    }


class Normaliser:
    """Maps raw events to touchpoints, resolving customer keys in an identity graph.

    ``catalog`` maps product id → {category, brand}; ``own_hosts`` are the
    retailer's web hosts (a referrer on them is internal navigation); ``link``
    applies identity evidence (default: ``graph.link``).
    """

    def __init__(
        self,
        graph: IdentityGraph | None = None,
        catalog: Mapping[str, Mapping[str, Any]] | None = None,
        own_hosts: frozenset[str] = frozenset(),
        link: Callable[[list[str]], bool] | None = None,
    ) -> None:
        self.graph = graph or IdentityGraph()
        self.catalog = catalog if catalog is not None else {}
        self.own_hosts = own_hosts
        # how evidence is applied; the stage wraps it to notice changed customer keys
        self.link = link or self.graph.link
        self._by_topic: dict[str, Callable[..., Normalised]] = {
            CLICKSTREAM: self._web,
            MOBILE: self._mobile,
            SOCIAL: self._social,
            MESSAGING: self._messaging,
            FULFILLMENT: self._fulfillment,
        }

    def normalise(self, topic: str, record: Mapping[str, Any], processed_ms: int) -> Normalised:
        try:
            handler = self._by_topic[topic]
        except KeyError:
            raise InvalidRecord("unknown_topic", f"no normaliser for topic {topic}") from None
        result = handler(topic, record, processed_ms)
        for group in result.identity:
            self.link(group)
        tp = result.touchpoint
        tp["customer_key"] = self._resolve(tp, result.identity)
        self._join_catalog(tp)
        return result

    # -- identity ------------------------------------------------------------
    def _resolve(self, tp: dict[str, Any], groups: list[list[str]]) -> str:
        candidates = [
            node("user_id", tp["user_id"]) if tp["user_id"] else None,
            node("anonymous_id", tp["anonymous_id"]) if tp["anonymous_id"] else None,
            node("device_id", tp["device_id"]) if tp["device_id"] else None,
            *(n for group in groups for n in group),
        ]
        for candidate in candidates:
            if candidate:
                found = self.graph.customer_key(candidate)
                if found:
                    return found
        first = next((c for c in candidates if c), None)
        if first is None:
            raise InvalidRecord(
                "missing_id",
                "no customer identifier (user id, anonymous id, device id, email or handle)",
            )
        return key_of(first)

    def _join_catalog(self, tp: dict[str, Any]) -> None:
        product = self.catalog.get(tp["product_id"]) if tp["product_id"] else None
        if product:
            tp["product_category"] = product.get("category")
            tp["product_brand"] = product.get("brand")

    # -- commerce --------------------------------------------------------------
    @staticmethod
    def _commerce(tp: dict[str, Any], props: Mapping[str, Any]) -> None:
        products = props.get("products")
        first = (
            products[0]
            if isinstance(products, list) and products and isinstance(products[0], dict)
            else props
        )
        tp["order_id"] = _text(props.get("order_id"), "order_id")
        tp["revenue"] = _number(
            props.get("total", props.get("revenue", props.get("value"))), "total"
        )
        currency = _text(props.get("currency"), "currency")
        tp["currency"] = currency.upper() if currency else None
        tp["discount"] = _number(props.get("discount"), "discount")
        tp["coupon_code"] = _text(props.get("coupon"), "coupon")
        tp["product_id"] = _text(first.get("product_id") or first.get("sku"), "product_id")
        if isinstance(products, list):
            qty = sum(
                int(_number(p.get("quantity", 1), "quantity") or 0)
                for p in products
                if isinstance(p, dict)
            )
            tp["quantity"] = _quantity(qty, "quantity")
        else:
            qty = _number(props.get("quantity"), "quantity")
            tp["quantity"] = _quantity(qty, "quantity") if qty is not None else None
        if tp["event_type"] == "purchase":
            tp["is_conversion"] = True
            tp["conversion_id"] = tp["order_id"] or tp["source_event_id"]

    # -- sources ----------------------------------------------------------------
    def _sdk_event(
        self, topic: str, record: Mapping[str, Any], processed_ms: int, system: str
    ) -> tuple[dict[str, Any], dict[str, Any], list[list[str]]]:
        call = record.get("event_type")
        if call not in CALL_TYPES:
            raise InvalidRecord("unknown_event_type", f"unknown call type {call!r}")
        name = record.get("event_name")
        if call == "track":
            _require(name, "event_name of a track call")
            event_type = TRACK_EVENTS.get(name.strip().lower(), "track")
        else:
            event_type = {"page": "page_view", "screen": "screen_view"}.get(call, call)
        event_ms, received_ms = record["event_time"], record["received_at"]
        _check_time(event_ms, received_ms, "event_time", processed_ms)
        tp = _base(
            topic, record, system, event_type, channels.DIRECT, event_ms, received_ms, processed_ms
        )
        tp["event_name"] = name
        tp["anonymous_id"] = record.get("anonymous_id") or None
        tp["user_id"] = record.get("user_id") or None
        tp["device_id"] = record.get("device_id") or None
        props = _properties(record)
        self._commerce(tp, props)
        if call == "identify":
            tp["attributes"].update(declared_traits(record))
        groups: list[list[str]] = []
        ids = [node(k, tp[k]) for k in ("user_id", "anonymous_id", "device_id") if tp[k]]
        if call == "alias" and record.get("previous_id"):
            ids.append(node("anonymous_id", record["previous_id"]))
        if call in ("identify", "alias") or (
            len(ids) > 1 and not all(i in self.graph for i in ids)
        ):
            groups.append(ids)
        return tp, props, groups

    def _web(self, topic: str, record: Mapping[str, Any], processed_ms: int) -> Normalised:
        tp, _props, groups = self._sdk_event(topic, record, processed_ms, "web")
        page = record.get("page") or {}
        campaign = record.get("campaign") or campaign_from_url(page.get("url"))
        tp["campaign"] = campaign
        tp["referrer"] = page.get("referrer")
        tp["page_url"] = page.get("url")
        own = self.own_hosts | ({channels.host_of(page.get("url"))} - {None})
        tp["channel"] = channels.web_channel(campaign, page.get("referrer"), frozenset(own))
        if not campaign and channels.host_of(page.get("referrer")) in own:
            tp["attributes"]["navigation"] = "internal"
        context = record.get("context") or {}
        tp["device"] = parse_device(context.get("user_agent"))
        return Normalised(tp, groups)

    def _mobile(self, topic: str, record: Mapping[str, Any], processed_ms: int) -> Normalised:
        tp, props, groups = self._sdk_event(topic, record, processed_ms, "mobile")
        campaign = record.get("campaign")
        tp["campaign"] = campaign
        tp["channel"] = (
            channels.group_channel(
                campaign.get("source"), campaign.get("medium"), campaign.get("name")
            )
            if campaign and (campaign.get("source") or campaign.get("medium"))
            else channels.MOBILE_APP
        )
        device = record.get("device") or {}
        os_name = device.get("os_name")
        tp["device"] = {
            "type": "tablet" if "ipad" in str(device.get("model", "")).lower() else "mobile",
            "os": os_name,
            "browser": "App",
            "is_bot": False,
        }
        if props.get("store_id"):
            tp["attributes"]["store_id"] = str(props["store_id"])
        if record.get("screen_name"):
            tp["attributes"]["screen_name"] = record["screen_name"]
        return Normalised(tp, groups)

    def _social(self, topic: str, record: Mapping[str, Any], processed_ms: int) -> Normalised:
        kind = record.get("event_type")
        if kind not in SOCIAL_TYPES:
            raise InvalidRecord("unknown_event_type", f"unknown social event type {kind!r}")
        event_ms, received_ms = record["occurred_at"], record["received_at"]
        _check_time(event_ms, received_ms, "occurred_at", processed_ms)
        platform = _require(record.get("platform"), "platform").strip().lower()
        handle = _require(record.get("handle"), "handle").strip().lower()
        campaign = record.get("campaign") or campaign_from_url(record.get("link_url"))
        if kind == "click_through":
            channel = (
                channels.group_channel(
                    campaign.get("source") or platform,
                    campaign.get("medium") or "social",
                    campaign.get("name"),
                )
                if campaign
                else channels.ORGANIC_SOCIAL
            )
        else:
            channel = channels.SOCIAL_POST
        tp = _base(
            topic, record, "social", f"social_{kind}", channel, event_ms, received_ms, processed_ms
        )
        tp["user_id"] = record.get("user_id") or None
        tp["campaign"] = campaign
        tp["page_url"] = record.get("link_url")
        tp["sentiment"] = sentiment_score(record.get("text"))
        tp["attributes"].update({"platform": platform, "post_id": record.get("post_id") or ""})
        handle_node = node("social_handle", f"{platform}:{handle}")
        groups = (
            [[node("user_id", tp["user_id"]), handle_node]] if tp["user_id"] else [[handle_node]]
        )
        return Normalised(tp, groups)

    def _messaging(self, topic: str, record: Mapping[str, Any], processed_ms: int) -> Normalised:
        kind = record.get("event_type")
        if kind not in MESSAGE_TYPES:
            raise InvalidRecord("unknown_event_type", f"unknown message event type {kind!r}")
        channel = MESSAGE_CHANNELS.get(record.get("channel") or "")
        if channel is None:
            raise InvalidRecord(
                "invalid_value", f"unknown message channel {record.get('channel')!r}"
            )
        event_ms, received_ms = record["occurred_at"], record["received_at"]
        _check_time(event_ms, received_ms, "occurred_at", processed_ms)
        tp = _base(
            topic,
            record,
            "messaging",
            f"message_{kind}",
            channel,
            event_ms,
            received_ms,
            processed_ms,
        )
        tp["message_id"] = _require(record.get("message_id"), "message_id")
        tp["user_id"] = record.get("user_id") or None
        campaign = campaign_from_url(record.get("link_url"))
        tp["campaign"] = campaign or {
            "source": record.get("provider"),
            "medium": record.get("channel"),
            "name": record.get("campaign_name"),
            "term": None,
            "content": None,
            "click_id": None,
        }
        tp["page_url"] = record.get("link_url")
        tp["attributes"]["message_channel"] = record["channel"]
        if record.get("campaign_id"):
            tp["attributes"]["campaign_id"] = record["campaign_id"]
        contact = []
        if record.get("email"):
            contact.append(contact_node("email_hash", record["email"]))
        if record.get("phone"):
            contact.append(contact_node("phone_hash", record["phone"]))
        ids = ([node("user_id", tp["user_id"])] if tp["user_id"] else []) + contact
        if not ids and record.get("device_token"):
            ids = [node("device_id", record["device_token"])]
        return Normalised(tp, [ids] if ids else [])

    def _fulfillment(self, topic: str, record: Mapping[str, Any], processed_ms: int) -> Normalised:
        kind = record.get("event_type")
        if kind not in FULFILLMENT_TYPES:
            raise InvalidRecord("unknown_event_type", f"unknown fulfilment event type {kind!r}")
        event_ms, received_ms = record["occurred_at"], record["captured_at"]
        _check_time(event_ms, received_ms, "occurred_at", processed_ms)
        sales_channel = record.get("sales_channel") or ""
        channel = (
            channels.STORE
            if sales_channel == "store" and kind == "order_placed"
            else channels.FULFILMENT
        )
        tp = _base(topic, record, "fulfillment", kind, channel, event_ms, received_ms, processed_ms)
        tp["user_id"] = _require(record.get("customer_id"), "customer_id")
        tp["order_id"] = record.get("order_id")
        if kind.startswith("order_"):
            _require(tp["order_id"], "order_id")
        lines = record.get("lines") or []
        tp["currency"] = record.get("currency")
        tp["revenue"] = _finite(record.get("order_total"), "order_total")
        if kind == "order_refunded":
            tp["revenue"] = -(_finite(record.get("refund_amount"), "refund_amount") or 0.0)
        tp["discount"] = _finite(record.get("discount_total"), "discount_total")
        tp["coupon_code"] = record.get("coupon_code")
        if lines:
            tp["product_id"] = lines[0]["product_id"]
            tp["quantity"] = _quantity(sum(line["quantity"] for line in lines), "quantity")
        if kind == "order_placed":
            tp["is_conversion"] = True
            tp["conversion_id"] = tp["order_id"]
            if tp["revenue"] is None:
                tp["revenue"] = _finite(
                    sum(ln["quantity"] * ln["unit_price"] - ln["discount"] for ln in lines),
                    "the order's lines' total",
                )
        tp["attributes"].update(
            {
                k: str(record[k])
                for k in ("store_id", "shipment_id", "return_id", "ticket_id", "reason")
                if record.get(k)
            }
        )
        tp["attributes"]["sales_channel"] = sales_channel
        ids = [node("user_id", tp["user_id"])]
        if record.get("email"):
            ids.append(contact_node("email_hash", record["email"]))
        return Normalised(tp, [ids] if len(ids) > 1 and ids[1] not in self.graph else [])
