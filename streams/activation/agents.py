"""The bus's activation agents: one Faust app, ``journeybus-activation``.

    python -m faust -A streams.activation.agents worker -l warn   # journeybus up runs it

- ``audiences_and_channels`` (``cust.profiles.v1``): every profile update is evaluated
  against the declared audiences (entries and exits on ``cust.audiences.v1``) and
  turned into channel decisions (``cust.channel-decisions.v1``, only on a change).
- ``message_decisions`` (``cust.message-requests.v1``): each send request answered on
  ``cust.message-decisions.v1`` by Thompson sampling over the audience's variants,
  within the personalisation guardrail and the customer's channel decisions.
- ``message_responses`` (``cust.touchpoints.v1``): opens and clicks of decided
  messages reward their variant, once per message.
- ``product_feed`` (``cust.touchpoints.v1``): each product view or purchase updates
  the shopper and the cross-category association model and publishes the shopper's
  feed on ``cust.recommendations.v1``; the catalogue (stock) is read whole as a side
  input.

Keys and ordering: every input and output is keyed by the stitched customer key and
has the same partition count, so one worker holds a customer's profile, requests,
touchpoints and state (Faust co-partitions them); per customer, events are handled in
offset order. Delivery: at least once, with deterministic ids (change, decision,
request, feed); each batch's outputs are acknowledged before its state is stored
(``streams.faust.batch``), so a crash never leaves state that claims an output that
was not sent. Learned statistics (variant sends and responses, product associations)
are kept per partition (``<key>|<partition>``, one writer each) and summed over the
partitions a worker holds: one worker learns from every customer, several workers
each learn from their share. They are approximate across a crash: a count and the
per-customer record that says it was made are separate changelog writes, so a kill
between them counts one batch twice or not at all.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from streams.activation.audiences import audience_changes
from streams.activation.bandit import decide, message_id
from streams.activation.channels import decision_changes
from streams.activation.definitions import load_audiences, load_messages
from streams.activation.feed import ShopperState, feed_record, learn, rank
from streams.core.topics import CATALOG
from streams.faust.app import bus_app
from streams.faust.batch import Batch, handle_in_batches
from streams.faust.models import CustomerProfile, MessageRequest, Touchpoint
from streams.profiles.logic import RESPONSES
from streams.runtime.sideinput import SideInput

APP_ID = "journeybus-activation"
BATCH = 500
WITHIN_S = 0.05  # a batch waits at most this long for more events (latency vs cost)
MAX_MESSAGES = 500  # decided messages remembered per customer (replays, responses)

app = bus_app(APP_ID)
settings = app.settings.activation
audiences = load_audiences(settings.audiences_file, settings.inferred_floor)
variants = load_messages(audiences, settings.messages_file, settings.max_variants)
PARTITIONS = app.bus.profiles.partitions


def _table(name: str) -> faust.types.TableT:
    return app.Table(name, partitions=PARTITIONS)


# customer -> {"version", "members"} (audiences.audience_changes)
audience_state = _table("audience-state")
# customer -> {"version", "channels": {channel: [decision, preferred]}} (channels)
channel_state = _table("channel-state")
# customer -> {"version", "attributes": {name: {value, confidence, probability}}}
customer_attributes = _table("customer-attributes")
# customer -> {message id: [audience, variant or None]} of decided requests
decided = _table("decided-messages")
# customer -> [message ids already rewarded]
rewarded = _table("rewarded-messages")
# "audience|variant|partition" -> sends / responses counted in that partition
variant_sends = _table("variant-sends")
variant_responses = _table("variant-responses")
# customer -> ShopperState.as_dict(); "product|partition" -> {other: [bought, viewed]}
shoppers = _table("shoppers")
associations = _table("associations")


def now_ms() -> int:
    return int(time.time() * 1000)


def profile_attributes(profile: CustomerProfile) -> dict[str, dict[str, Any]]:
    return {
        a.name: {"value": a.value, "confidence": a.confidence, "probability": a.probability}
        for a in profile.attributes
    }


@app.agent(app.bus.profiles)
async def audiences_and_channels(stream: faust.Stream[CustomerProfile]) -> None:
    """Audience entries/exits and channel decisions of each profile update (a profile
    not newer than the last one seen changes nothing)."""
    await handle_in_batches(app, stream, _on_profile, size=BATCH, within_s=WITHIN_S)


async def _on_profile(batch: Batch, event: faust.types.EventT) -> None:
    profile: CustomerProfile = event.value
    customer, version = profile.customer_key, profile.version
    attributes = profile_attributes(profile)
    rows = [row.asdict() for row in profile.channel_responsiveness]
    now = now_ms()
    members = batch.read(audience_state, customer, {})
    for change in audience_changes(
        members, customer, version, attributes, audiences, profile.updated_at, now
    ):
        await batch.send(app.bus.audiences, customer, change)
    channels = batch.read(channel_state, customer, {})
    for decision in decision_changes(channels, customer, version, rows, attributes, now):
        await batch.send(app.bus.channel_decisions, customer, decision)
    batch.write(audience_state, customer, members, event)
    batch.write(channel_state, customer, channels, event)
    known = batch.peek(customer_attributes, customer, {})
    if version > known.get("version", -1):
        batch.write(customer_attributes, customer, {"version": version, "attributes": attributes},
                    event)  # fmt: skip


def arms(batch: Batch, audience: str) -> dict[str, list[int]]:
    """``{variant: [sends, responses]}`` of an audience, summed over partitions."""
    out = {}
    for variant in variants.get(audience, ()):
        keys = [f"{audience}|{variant.id}|{p}" for p in range(PARTITIONS)]
        out[variant.id] = [
            sum(batch.peek(variant_sends, k, 0) for k in keys),
            sum(batch.peek(variant_responses, k, 0) for k in keys),
        ]
    return out


def _count(batch: Batch, table: faust.types.TableT, key: str, event: faust.types.EventT) -> None:
    batch.write(table, key, batch.peek(table, key, 0) + 1, event)


@app.agent(app.bus.message_requests)
async def message_decisions(stream: faust.Stream[MessageRequest]) -> None:
    """One decision per request (a replayed request whose decision was stored is not
    decided again)."""
    await handle_in_batches(app, stream, _on_request, size=BATCH, within_s=WITHIN_S)


async def _on_request(batch: Batch, event: faust.types.EventT) -> None:
    request = event.value.asdict()
    customer, audience = request["customer_key"], request["audience"]
    messages = batch.read(decided, customer, {})
    sent_as = message_id(request["request_id"])
    if sent_as in messages:
        return
    channels = batch.peek(channel_state, customer, {}).get("channels", {})
    preferred = next((p for _, p in channels.values()), None)
    attributes = batch.peek(customer_attributes, customer, {}).get("attributes", {})
    counts = arms(batch, audience)
    out = decide(
        request,
        variants.get(audience, ()),
        attributes,
        {channel: d for channel, (d, _) in channels.items()},
        preferred,
        counts,
        settings.inferred_floor,
        settings.max_variants,
        now_ms(),
    )
    await batch.send(app.bus.message_decisions, customer, out)
    if out["variant"] is not None:
        _count(batch, variant_sends, f"{audience}|{out['variant']}|{event.message.partition}",
               event)  # fmt: skip
    messages[sent_as] = [audience, out["variant"]]
    while len(messages) > MAX_MESSAGES:
        del messages[next(iter(messages))]
    batch.write(decided, customer, messages, event)


@app.agent(app.bus.touchpoints)
async def message_responses(stream: faust.Stream[Touchpoint]) -> None:
    """An open or click of a decided message counts one response for its variant."""
    await handle_in_batches(
        app, stream, _on_response, size=BATCH, within_s=WITHIN_S, wanted=is_response
    )


def is_response(event: faust.types.EventT) -> bool:
    return event.value.event_type in RESPONSES and bool(event.value.message_id)


async def _on_response(batch: Batch, event: faust.types.EventT) -> None:
    touchpoint: Touchpoint = event.value
    customer, responded_to = touchpoint.customer_key, touchpoint.message_id
    audience, variant = batch.peek(decided, customer, {}).get(responded_to, (None, None))
    if variant is None:
        return
    done = batch.read(rewarded, customer, [])
    if responded_to in done:
        return
    _count(batch, variant_responses, f"{audience}|{variant}|{event.message.partition}", event)
    done.append(responded_to)
    batch.write(rewarded, customer, done[-MAX_MESSAGES:], event)


class Catalogue:
    """The product catalogue, read whole into this worker (a side input): category,
    and whether a product may be recommended (active, in stock)."""

    def __init__(self) -> None:
        self.products: dict[str, dict[str, Any]] = {}
        self.categories: dict[str, str] = {}
        self.side: SideInput | None = None

    def apply(self, record: dict[str, Any]) -> None:
        self.products[record["product_id"]] = {
            "category": record["category"],
            "active": record.get("active", True),
            "in_stock": record.get("in_stock"),
        }
        self.categories[record["product_id"]] = record["category"]

    async def refresh(self) -> None:
        """Read what the catalogue topic has new (the whole topic, the first time)."""
        loop = asyncio.get_running_loop()
        if self.side is None:
            # in the executor, like the reads: creating it asks the broker for the
            # topic's metadata (up to 30 s), which must not stop the event loop
            self.side = await loop.run_in_executor(None, self._open)
        else:
            await loop.run_in_executor(None, self.side.poll)

    def _open(self) -> SideInput:
        side = SideInput(CATALOG, self.apply, app.codec, app.settings, app.bootstrap)
        side.catch_up()
        return side


catalogue = Catalogue()


def product_touch(touchpoint: Touchpoint) -> str | None:
    """``purchase`` or ``view`` for a touch of one product, else None."""
    if not touchpoint.product_id:
        return None
    if touchpoint.is_conversion:
        return "purchase"
    return "view" if touchpoint.event_type == "product_view" else None


@app.agent(app.bus.touchpoints)
async def product_feed(stream: faust.Stream[Touchpoint]) -> None:
    """The shopper's feed after each product view or purchase (feed id: customer and
    touchpoint; a replayed touch teaches the model nothing twice, see ``feed``)."""
    await handle_in_batches(
        app,
        stream,
        _on_product,
        size=BATCH,
        within_s=WITHIN_S,
        wanted=lambda event: product_touch(event.value) is not None,
        before=catalogue.refresh,
    )


def _model(batch: Batch, anchors: list[str]) -> dict[str, dict[str, list[int]]]:
    """The associations of ``anchors``, summed over partitions."""
    model: dict[str, dict[str, list[int]]] = {}
    for anchor in anchors:
        merged = model.setdefault(anchor, {})
        for p in range(PARTITIONS):
            for other, (bought, viewed) in batch.peek(associations, f"{anchor}|{p}", {}).items():
                counts = merged.setdefault(other, [0, 0])
                counts[0] += bought
                counts[1] += viewed
    return model


async def _on_product(batch: Batch, event: faust.types.EventT) -> None:
    touchpoint: Touchpoint = event.value
    kind = product_touch(touchpoint)
    customer, product = touchpoint.customer_key, touchpoint.product_id
    categories = catalogue.categories
    if product not in categories and touchpoint.product_category:
        categories[product] = touchpoint.product_category
    shopper = ShopperState(**batch.read(shoppers, customer, {}))
    partition = event.message.partition
    learned: dict[str, dict[str, list[int]]] = {}
    for pair in shopper.touch(product, kind, categories):
        key = f"{pair[0]}|{partition}"
        if key not in learned:
            learned[key] = batch.read(associations, key, {})
        learn({pair[0]: learned[key]}, pair)
    for key, value in learned.items():
        batch.write(associations, key, value, event)
    batch.write(shoppers, customer, shopper.as_dict(), event)
    model = _model(batch, [*shopper.bought, *shopper.viewed])
    items = rank(shopper, model, catalogue.products, settings.feed_size)
    if items:
        record = feed_record(customer, touchpoint.touchpoint_id, items, now_ms())
        await batch.send(app.bus.recommendations, customer, record)
