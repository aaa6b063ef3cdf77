"""Generate a retailer's customers, their multi-channel journeys and the raw events.

Deterministic for a seed. Each customer gets a sequence of marketing touches
(one session each, hours to days apart) on channels drawn from a popularity
mix; each touch becomes the raw events real systems would send (web hits from
a Segment SDK, email/push/SMS events from the messaging platform, social
interactions, app events). Whether a path converts follows a noisy-or of the
**true channel effects**, so attribution can be checked against them. The
first web visit is anonymous; the customer identifies (logs in) in a later
session, so stitching has work to do. Conversions are web orders (clickstream
``Order Completed`` plus the order system's ``order_placed``, shipped,
delivered) or store orders (``order_placed`` with ``sales_channel`` store).
Some customers ignore email: the weekly newsletter reaches them (sent,
delivered) and is never opened, which channel responsiveness should find
(these sends are not activity and change no journey).

With ``activation=True`` (for the activation agents' acceptance; the default keeps
every other test's population byte for byte) two more kinds of shopper appear, each
drawn from a random stream of its own:
- **look builders** (``LOOK_SHARE``): each assembles one look, a theme of one product
  per category (``themes``); most of their product views are of the look, their
  purchases buy its items one category after another, and after a first purchase
  they come back for up to three more (``GroundTruth.looks``);
- email ignorers who **answer on social** (``ANSWERS_SOCIAL`` of those who never
  opened an email): they comment on the brand's posts (``GroundTruth.answers_social``).

``GroundTruth`` records what the pipeline must recover: every valid raw event,
the deliberately invalid ones (with the reason they must be dead-lettered),
every conversion with its expected touches in order, and every customer.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.core.topics import CATALOG, CLICKSTREAM, FULFILLMENT, MESSAGING, MOBILE, SOCIAL

HOUR = 3_600_000
MINUTE = 60_000
DAY = 24 * HOUR

IGNORES_EMAIL = 0.2  # share of customers who never open the newsletter
LOOK_SHARE = 0.4  # activation population: shoppers who assemble a look across categories
LOOK_VIEWS = 0.8  # share of a look builder's product views that are of their look
ANSWERS_SOCIAL = 0.5  # activation population: email ignorers who comment on social

# channel -> (popularity weight, true conversion effect)
CHANNELS: dict[str, tuple[float, float]] = {
    "Paid Search": (0.18, 0.16),
    "Organic Search": (0.16, 0.10),
    "Direct": (0.08, 0.06),
    "Email": (0.14, 0.5),
    "Organic Social": (0.08, 0.05),
    "Paid Social": (0.08, 0.07),
    "Display": (0.05, 0.02),
    "Referral": (0.05, 0.06),
    "Mobile App": (0.07, 0.12),
    "Mobile Push Notifications": (0.05, 0.09),
    "SMS": (0.03, 0.10),
    "Social Post": (0.03, 0.03),
}
CATEGORIES = {
    "Shoes": (89.0, 35.0),
    "Apparel": (45.0, 20.0),
    "Accessories": (19.0, 8.0),
    "Outdoor": (120.0, 50.0),
}
SITE = "https://shop.example.com"
CITIES = ("Leeds", "London", "Manchester", "Bristol", "Glasgow")
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
]
WEB_LANDING: dict[str, tuple[str | None, str | None]] = {
    # channel -> (query string, referrer)
    "Paid Search": (
        "utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=gen",
        "https://www.google.com/",
    ),
    "Organic Search": (None, "https://www.google.com/"),
    "Direct": (None, None),
    "Organic Social": (
        "utm_source=instagram&utm_medium=social&utm_campaign=drop",
        "https://l.instagram.com/",
    ),
    "Paid Social": (
        "utm_source=facebook&utm_medium=paid_social&utm_campaign=retarget",
        "https://m.facebook.com/",
    ),
    "Display": ("utm_source=criteo&utm_medium=display&utm_campaign=prospecting", None),
    "Referral": (None, "https://blog.runnersworld.example.org/best-shoes"),
    "Email": ("utm_source=newsletter&utm_medium=email&utm_campaign=weekly", None),
    "SMS": ("utm_source=twilio&utm_medium=sms&utm_campaign=flash", None),
}
INVALID_KINDS = ("missing_id", "unknown_event_type", "impossible_timestamp")
# BG/NBD of repeat purchases after the first (r, alpha in days, a, b): a purchase
# rate ~ Gamma(r, alpha) (mean r/alpha = one purchase per 40 days), a dropout
# chance after each purchase ~ Beta(a, b) (mean 0.25).
REPEAT_MODEL = (0.5, 20.0, 1.0, 3.0)


def contact_email(seed: int, n: int) -> str:
    """The email of customer ``n`` of the population of ``seed``."""
    return f"customer{seed}-{n}@example.org"


@dataclass
class RawEvent:
    topic: str
    key: str
    record: dict[str, Any]
    invalid: str | None = None  # the dead-letter reason this event must get


@dataclass
class ExpectedJourney:
    customer_id: str
    conversion_id: str
    value: float
    time: int
    channels: list[str]


@dataclass
class GroundTruth:
    seed: int
    customers: int
    channel_effects: dict[str, float]
    events: Counter = field(default_factory=Counter)  # valid raw events per topic
    invalid: Counter = field(default_factory=Counter)  # invalid raw events per reason
    conversions: list[ExpectedJourney] = field(default_factory=list)
    null_paths: list[list[str]] = field(default_factory=list)  # paths that did not convert
    # expected conversions lost per channel if its touches were removed (causal)
    incremental: Counter = field(default_factory=Counter)
    # the true BG/NBD process of repeat purchases (rates per day)
    repeat_model: dict[str, float] = field(default_factory=dict)
    # customers who never open the newsletter (several unopened sends each)
    ignores_email: list[str] = field(default_factory=list)
    # activation population: look builders and their look's products, and the email
    # ignorers (who never opened an email) who answer on social
    looks: dict[str, list[str]] = field(default_factory=dict)
    answers_social: list[str] = field(default_factory=list)
    # customers who opened at least one email (responsive on email)
    opens_email: list[str] = field(default_factory=list)

    @property
    def strongest_channel(self) -> str:
        """The channel whose removal would cost the most conversions: the causal
        counterpart of the Markov removal effect."""
        return max(self.incremental, key=self.incremental.get)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "customers": self.customers,
            "channel_effects": self.channel_effects,
            "incremental_conversions": {c: round(v, 3) for c, v in self.incremental.most_common()},
            "strongest_channel": self.strongest_channel,
            "valid_events": dict(self.events),
            "valid_event_total": sum(self.events.values()),
            "invalid_events": dict(self.invalid),
            "invalid_event_total": sum(self.invalid.values()),
            "conversions": [c.__dict__ for c in self.conversions],
            "conversion_total": len(self.conversions),
            "conversion_value_total": round(sum(c.value for c in self.conversions), 2),
            "repeat_model": self.repeat_model,
            "ignores_email": len(self.ignores_email),
            "look_builders": len(self.looks),
            "answers_social": len(self.answers_social),
            "repeat_purchases": len(self.conversions)
            - len({c.customer_id for c in self.conversions}),
        }


def conversion_probability(path: list[str]) -> float:
    """Noisy-or of the true effects of the distinct channels of a path."""
    p_stay = 1.0
    for channel in set(path):
        p_stay *= 1 - CHANNELS[channel][1]
    return 1 - p_stay


class PopulationGenerator:
    """Builds the raw events of ``customers`` customers (see module docstring)."""

    def __init__(
        self,
        customers: int = 200,
        seed: int = 7,
        start_ms: int = 1_756_684_800_000,
        days: int = 60,
        invalid_rate: float = 0.01,
        received_ms: int | None = None,
        store_share: float = 0.2,
        repeat_model: tuple[float, float, float, float] = REPEAT_MODEL,
        activation: bool = False,
    ) -> None:
        self.n = customers
        self.seed = seed
        self.rng = random.Random(seed)
        self.start = start_ms
        self.days = days
        self.invalid_rate = invalid_rate
        self.received = received_ms
        self.store_share = store_share
        self.truth = GroundTruth(seed, customers, {c: e for c, (_, e) in CHANNELS.items()})
        self.repeat_model = repeat_model
        self.truth.repeat_model = dict(zip(("r", "alpha", "a", "b"), repeat_model, strict=True))
        self._seq = 0
        self.products = [
            (f"p-{i:04d}", cat) for i, cat in enumerate(c for c in CATEGORIES for _ in range(10))
        ]
        self.category_of = dict(self.products)
        # look k: the k-th product of every category
        self.themes = [[p for p, _ in self.products[k::10]] for k in range(10)]
        self.activation = activation
        self.look_rng = random.Random(seed * 104_729 + 3)

    # -- ids and time ---------------------------------------------------------------------
    def _id(self, *parts: object) -> str:
        self._seq += 1
        raw = "|".join(map(str, (self.seed, self._seq, *parts)))
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()

    def _recv(self, t: int) -> int:
        return self.received if self.received is not None else t + 1500

    # -- events ---------------------------------------------------------------------------
    def _web(
        self,
        c: dict,
        t: int,
        kind: str,
        name: str | None = None,
        query: str | None = None,
        referrer: str | None = None,
        path: str = "/",
        props: dict | None = None,
        user: bool = True,
    ) -> RawEvent:
        url = f"{SITE}{path}" + (f"?{query}" if query else "")
        record = {
            "event_id": self._id("web"),
            "protocol": "segment",
            "rudder_id": None,
            "channel": None,
            "source": "web",
            "event_type": kind,
            "event_name": name,
            "anonymous_id": c["anon"],
            "user_id": c["id"] if user and c["identified"] else None,
            "previous_id": None,
            "group_id": None,
            "event_time": t,
            "sent_at": t + 400,
            "received_at": self._recv(t),
            "page": {
                "url": url,
                "path": path,
                "referrer": referrer,
                "title": path,
                "search": f"?{query}" if query else None,
            },
            "campaign": None,
            "context": {
                "ip": "198.51.100.7",
                "user_agent": c["ua"],
                "locale": "en-GB",
                "timezone": "Europe/London",
                "library_name": "analytics.js",
                "library_version": "5.2.0",
            },
            "properties_json": orjson.dumps(props).decode() if props else None,
            "traits_json": None,
            "consent_json": None,
        }
        return RawEvent(CLICKSTREAM, c["anon"], record)

    def _message(
        self, c: dict, t: int, channel: str, kind: str, message_id: str, link: str | None = None
    ) -> RawEvent:
        record = {
            "event_id": self._id("msg"),
            "channel": channel,
            "event_type": kind,
            "message_id": message_id,
            "campaign_id": "cmp-weekly",
            "campaign_name": "Weekly",
            "user_id": c["id"],
            "email": c["email"] if channel == "email" else None,
            "phone": c["phone"] if channel == "sms" else None,
            "device_token": c["device"] if channel == "push" else None,
            "link_url": link,
            "provider": {"email": "sendgrid", "sms": "twilio", "push": "braze"}[channel],
            "bounce_reason": None,
            "occurred_at": t,
            "received_at": self._recv(t),
        }
        return RawEvent(MESSAGING, c["id"], record)

    def _mobile(
        self, c: dict, t: int, name: str, campaign: dict | None = None, props: dict | None = None
    ) -> RawEvent:
        record = {
            "event_id": self._id("app"),
            "protocol": "segment",
            "rudder_id": None,
            "channel": None,
            "source": "mobile",
            "event_type": "track",
            "event_name": name,
            "anonymous_id": c["app_anon"],
            "user_id": c["id"],
            "device_id": c["device"],
            "previous_id": None,
            "event_time": t,
            "sent_at": t + 300,
            "received_at": self._recv(t),
            "screen_name": None,
            "app": {
                "name": "Example Shop",
                "version": "7.4.0",
                "build": "740",
                "namespace": "com.example.shop",
            },
            "device": {
                "manufacturer": "Apple",
                "model": "iPhone15,2",
                "type": "ios",
                "os_name": "iOS",
                "os_version": "18.1",
                "advertising_id": None,
            },
            "campaign": campaign,
            "context": {
                "ip": None,
                "user_agent": None,
                "locale": "en-GB",
                "timezone": None,
                "library_name": "analytics-ios",
                "library_version": "4.1.8",
            },
            "properties_json": orjson.dumps(props).decode() if props else None,
            "traits_json": None,
        }
        return RawEvent(MOBILE, c["app_anon"], record)

    def _social(self, c: dict, t: int, kind: str, link: str | None = None) -> RawEvent:
        record = {
            "event_id": self._id("soc"),
            "platform": "instagram",
            "event_type": kind,
            "handle": c["handle"],
            "user_id": c["id"],
            "post_id": "post-1",
            "post_url": None,
            "text": "Love these shoes from @exampleshop!"
            if kind in ("mention", "comment")
            else None,
            "lang": "en",
            "link_url": link,
            "campaign": None,
            "followers": 300,
            "occurred_at": t,
            "received_at": self._recv(t),
        }
        return RawEvent(SOCIAL, c["handle"], record)

    def _order(self, c: dict, t: int, kind: str, order: dict, sales_channel: str) -> RawEvent:
        record = {
            "event_id": f"ful-{order['id']}-{kind}",
            "event_type": kind,
            "order_id": order["id"],
            "customer_id": c["id"],
            "email": c["email"],
            "sales_channel": sales_channel,
            "store_id": "store-leeds-2" if sales_channel == "store" else None,
            "lines": [
                {
                    "line_id": f"{order['id']}-1",
                    "product_id": order["product"],
                    "sku": None,
                    "quantity": 1,
                    "unit_price": order["price"],
                    "discount": order["discount"],
                }
            ],
            "order_total": order["value"],
            "discount_total": order["discount"],
            "currency": "GBP",
            "coupon_code": "WELCOME10" if order["discount"] else None,
            "shipment_id": None,
            "carrier": None,
            "return_id": None,
            "refund_amount": None,
            "ticket_id": None,
            "reason": None,
            "occurred_at": t,
            "captured_at": self._recv(t),
            "source_position": f"gen:{self._seq}",
        }
        return RawEvent(FULFILLMENT, c["id"], record)

    # -- touches ------------------------------------------------------------------------
    def _touch(self, c: dict, channel: str, t: int, identify: bool) -> list[RawEvent]:
        """The raw events of one marketing touch (one session) starting at ``t``."""
        out: list[RawEvent] = []
        web_at = t
        if channel == "Email":
            c["opened_email"] = True
            mid = self._id("m")
            out.append(self._message(c, t - 3 * HOUR, "email", "sent", mid))
            out.append(self._message(c, t - 3 * HOUR + 20_000, "email", "delivered", mid))
            out.append(self._message(c, t, "email", "opened", mid))
            out.append(
                self._message(
                    c,
                    t + MINUTE,
                    "email",
                    "clicked",
                    mid,
                    link=f"{SITE}/?{WEB_LANDING['Email'][0]}",
                )
            )
            web_at = t + MINUTE + 5000
        elif channel == "SMS":
            mid = self._id("m")
            out.append(self._message(c, t - HOUR, "sms", "sent", mid))
            out.append(
                self._message(c, t, "sms", "clicked", mid, link=f"{SITE}/?{WEB_LANDING['SMS'][0]}")
            )
            web_at = t + 5000
        elif channel == "Organic Social":
            out.append(
                self._social(
                    c, t, "click_through", link=f"{SITE}/?{WEB_LANDING['Organic Social'][0]}"
                )
            )
            web_at = t + 3000
        elif channel == "Social Post":
            out.append(self._social(c, t, self.rng.choice(["mention", "like", "comment"])))
            return out
        elif channel == "Mobile Push Notifications":
            mid = self._id("m")
            out.append(self._message(c, t - 2 * HOUR, "push", "sent", mid))
            out.append(self._message(c, t, "push", "opened", mid))
            out.append(
                self._mobile(
                    c,
                    t + 2000,
                    "Application Opened",
                    campaign={
                        "source": "braze",
                        "medium": "push",
                        "name": "weekly",
                        "term": None,
                        "content": None,
                        "click_id": None,
                    },
                )
            )
            return out
        elif channel == "Mobile App":
            product = self._viewed_product(c)
            out.append(self._mobile(c, t, "Application Opened"))
            out.append(self._mobile(c, t + 40_000, "Product Viewed", props={"product_id": product}))
            return out
        query, referrer = WEB_LANDING[channel]
        out.append(self._web(c, web_at, "page", query=query, referrer=referrer))
        for i in range(self.rng.randint(1, 3)):
            product = self._viewed_product(c)
            out.append(
                self._web(
                    c,
                    web_at + (i + 1) * 45_000,
                    "track",
                    "Product Viewed",
                    referrer=f"{SITE}/",
                    path=f"/p/{product}",
                    props={"product_id": product},
                )
            )
        if identify and not c["identified"]:
            c["identified"] = True
            login = self._web(c, web_at + 5 * MINUTE, "identify", referrer=f"{SITE}/")
            n = int(c["id"][-6:])
            login.record["traits_json"] = orjson.dumps(
                {
                    "first_name": "Sam",
                    "city": CITIES[n % len(CITIES)],
                    "country": "GB",
                    "preferred_category": list(CATEGORIES)[n % len(CATEGORIES)],
                }
            ).decode()
            out.append(login)
        return out

    def _viewed_product(self, c: dict) -> str:
        if c.get("look") and self.look_rng.random() < LOOK_VIEWS:
            return self.look_rng.choice(c["look"])
        return self.rng.choice(self.products)[0]

    def _bought_product(self, c: dict) -> tuple[str, str]:
        """A look builder buys the next item of their look; anyone else anything."""
        rest = [p for p in c.get("look", ()) if p not in c["bought"]]
        product = self.look_rng.choice(rest) if rest else self.rng.choice(self.products)[0]
        c["bought"].append(product)
        return product, self.category_of[product]

    def _customer(self, i: int) -> dict:
        c = self._new_customer(i)
        if self.activation and self.look_rng.random() < LOOK_SHARE:
            c["look"] = self.look_rng.choice(self.themes)
            self.truth.looks[c["id"]] = c["look"]
        return c

    def _new_customer(self, i: int) -> dict:
        return {
            "id": f"cust-{self.seed}-{i:06d}",
            "anon": f"anon-{self._id('a')}",
            "app_anon": f"app-{self._id('b')}",
            "device": f"dev-{self._id('d')}",
            # contact data of this population only: another seed is other people (its
            # customer 12 shares no email with this one's, so no identity joins them)
            "email": contact_email(self.seed, i),
            "phone": f"+447{self.seed % 1000:03d}{i:06d}",
            "handle": f"@shopper{self.seed}x{i}",
            "ua": self.rng.choice(USER_AGENTS),
            "identified": False,
            # how much this customer spends relative to the catalogue price (mean 1):
            # the between-customer spend heterogeneity the Gamma-Gamma model recovers
            "spend": self.rng.gammavariate(6.0, 1 / 6.0),
            "bought": [],
            "opened_email": False,
        }

    def _convert(self, c: dict, t: int, last_channel: str, paths: list[str]) -> list[RawEvent]:
        product, category = self._bought_product(c)
        mean, sd = CATEGORIES[category]
        price = round(max(5.0, self.rng.gauss(mean, sd) * c["spend"]), 2)
        discount = round(price * 0.1, 2) if self.rng.random() < 0.25 else 0.0
        order = {
            "id": f"ord-{self._id('o')}",
            "product": product,
            "price": price,
            "discount": discount,
            "value": round(price - discount, 2),
        }
        out: list[RawEvent] = []
        store = last_channel in ("Mobile App",) or self.rng.random() < self.store_share / 2
        if store:
            out.append(self._order(c, t, "order_placed", order, "store"))
        else:
            props = {
                "order_id": order["id"],
                "total": order["value"],
                "currency": "GBP",
                "discount": discount,
                "products": [{"product_id": product, "quantity": 1, "price": price}],
            }
            out.append(
                self._web(
                    c,
                    t,
                    "track",
                    "Order Completed",
                    referrer=f"{SITE}/checkout",
                    path="/checkout/complete",
                    props=props,
                )
            )
            out.append(self._order(c, t + 2000, "order_placed", order, "web"))
            out.append(self._order(c, t + DAY, "order_shipped", order, "web"))
            out.append(self._order(c, t + 3 * DAY, "order_delivered", order, "web"))
        self.truth.conversions.append(
            ExpectedJourney(c["id"], order["id"], order["value"], t, list(paths))
        )
        return out

    def _invalidate(self, event: RawEvent) -> None:
        kind = self.rng.choice(INVALID_KINDS)
        rec = event.record
        if kind == "missing_id":
            rec["event_id"] = ""
        elif kind == "unknown_event_type":
            rec["event_type"] = "teleported"
        else:  # 2100-01-01: after any received time the pipeline will see
            for name in ("event_time", "occurred_at"):
                if name in rec:
                    rec[name] = 4_102_444_800_000
        event.invalid = kind

    def _invalidatable(self, event: RawEvent) -> bool:
        """Events whose loss changes no expected journey: product views, deliveries, shipping."""
        rec = event.record
        return rec.get("event_name") == "Product Viewed" or rec.get("event_type") in (
            "delivered",
            "order_shipped",
            "order_delivered",
        )

    def catalog(self) -> list[RawEvent]:
        """The product catalogue (``cust.catalog.products.v1``), as the shop's PIM would
        publish it before any event: what the normalise stage joins categories from.
        Reference data, not events: not counted in the ground truth's events."""
        brands = ("Stride", "Northwall", "Kestrel", "Moss & Pine")
        return [
            RawEvent(
                CATALOG,
                product,
                {
                    "product_id": product,
                    "sku": f"SKU-{product[2:]}",
                    "name": f"{category} item {product[2:]}",
                    "category": category,
                    "subcategory": None,
                    "brand": brands[i % len(brands)],
                    "price": CATEGORIES[category][0],
                    "currency": "GBP",
                    "active": True,
                    "in_stock": True,
                    "updated_at": self.start,
                },
            )
            for i, (product, category) in enumerate(self.products)
        ]

    def generate(self) -> list[RawEvent]:
        """Every raw event of the population, in event-time order, after the catalogue."""
        events: list[RawEvent] = []
        names = list(CHANNELS)
        weights = [CHANNELS[n][0] for n in names]
        span = self.days * DAY
        customers = []
        for i in range(self.n):
            customers.append(self._customer(i))
            events += self._customer_events(customers[-1], names, weights, span)
        # after every customer's own events, so that adding these changed none of them
        events += self._unopened_newsletters(customers, span)
        if self.activation:
            events += self._social_answers(customers, span)
        self.truth.opens_email = [c["id"] for c in customers if c["opened_email"]]
        events.sort(key=lambda e: (self._time(e.record), e.record["event_id"]))
        eligible = [e for e in events if self._invalidatable(e)]
        rate = min(1.0, self.invalid_rate * len(events) / max(1, len(eligible)))
        for event in eligible:
            if self.rng.random() < rate:
                self._invalidate(event)
        for event in events:
            if event.invalid:
                self.truth.invalid[event.invalid] += 1
            else:
                self.truth.events[event.topic] += 1
        return self.catalog() + events

    def _unopened_newsletters(self, customers: list[dict], span: int) -> list[RawEvent]:
        """Weekly newsletters, sent and delivered, never opened, to ``IGNORES_EMAIL`` of
        the customers (their own random stream, so the other events stay the same)."""
        rng = random.Random(self.seed * 7919 + 1)
        events: list[RawEvent] = []
        for c in customers:
            if rng.random() >= IGNORES_EMAIL:
                continue
            self.truth.ignores_email.append(c["id"])
            for _ in range(rng.randint(3, 6)):
                t = self.start + rng.randrange(0, span)
                mid = self._id("newsletter")
                events.append(self._message(c, t, "email", "sent", mid))
                events.append(self._message(c, t + 20_000, "email", "delivered", mid))
        return events

    def _social_answers(self, customers: list[dict], span: int) -> list[RawEvent]:
        """Comments on the brand's posts by ``ANSWERS_SOCIAL`` of the customers who got
        newsletters and never opened an email."""
        rng = random.Random(self.seed * 7919 + 2)
        ignoring = set(self.truth.ignores_email)
        events: list[RawEvent] = []
        for c in customers:
            if c["id"] not in ignoring or c["opened_email"] or rng.random() >= ANSWERS_SOCIAL:
                continue
            self.truth.answers_social.append(c["id"])
            for _ in range(rng.randint(2, 4)):
                events.append(self._social(c, self.start + rng.randrange(0, span), "comment"))
        return events

    def _look_purchases(
        self, c: dict, t: int, names: list[str], weights: list[float]
    ) -> tuple[list[RawEvent], int]:
        """A look builder's return visits to buy more of their look (up to three, a
        few days apart, each after a touch); the events and the last purchase's time."""
        events: list[RawEvent] = []
        end = self.start + (self.days - 7) * DAY  # complete in the data, as repeat purchases
        for _ in range(self.look_rng.randint(1, 3)):
            t += self.look_rng.randrange(DAY, 5 * DAY)
            if t >= end or all(p in c["bought"] for p in c["look"]):
                break
            channel = self.rng.choices(names, weights)[0]
            events += self._touch(c, channel, t, identify=True)
            last = max(self._time(e.record) for e in events)
            t = last + 10 * MINUTE
            events += self._convert(c, t, channel, [channel])
        return events, t

    def _customer_events(
        self, c: dict, names: list[str], weights: list[float], span: int
    ) -> list[RawEvent]:
        events: list[RawEvent] = []
        t = self.start + self.rng.randrange(0, max(1, span - 20 * DAY))
        touches = self.rng.choice([1, 1, 2, 2, 3, 3, 4, 5])
        identify_at = self.rng.randrange(0, touches)
        path: list[str] = []
        for k in range(touches):
            channel = self.rng.choices(names, weights)[0]
            events += self._touch(c, channel, t, identify=k >= identify_at)
            path.append(channel)
            t += self.rng.randrange(3 * HOUR, 3 * DAY)
        p_convert = conversion_probability(path)
        for channel in set(path):
            without = [c for c in path if c != channel]
            self.truth.incremental[channel] += p_convert - conversion_probability(without)
        if self.rng.random() >= p_convert:
            self.truth.null_paths.append(path)
            return events
        last = max(self._time(e.record) for e in events)
        if not c["identified"]:  # logs in at checkout, in the last touch's session
            c["identified"] = True
            events.append(self._web(c, last + 2 * MINUTE, "identify", referrer=f"{SITE}/"))
        converted = last + 10 * MINUTE
        events += self._convert(c, converted, path[-1], path)
        if c.get("look"):
            more, converted = self._look_purchases(c, converted, names, weights)
            events += more
        return events + self._repeat_purchases(c, converted, names, weights)

    def _repeat_purchases(
        self, c: dict, t: int, names: list[str], weights: list[float]
    ) -> list[RawEvent]:
        """Later purchases of a customer (BG/NBD process), each after one visit on a
        channel of the popularity mix; they stop a week before the simulated period
        ends, so that every one is complete in the data."""
        r, alpha, a, b = self.repeat_model
        rate = self.rng.gammavariate(r, 1 / alpha)  # purchases per day
        dropout = self.rng.betavariate(a, b)
        end = self.start + (self.days - 7) * DAY
        events: list[RawEvent] = []
        while rate > 0:
            t += int(self.rng.expovariate(rate) * DAY) + HOUR
            if t >= end:
                break
            channel = self.rng.choices(names, weights)[0]
            events += self._touch(c, channel, t, identify=True)
            last = max(self._time(e.record) for e in events)
            events += self._convert(c, last + 10 * MINUTE, channel, [channel])
            t = last + 10 * MINUTE
            if self.rng.random() < dropout:
                break
        return events

    @staticmethod
    def _time(record: dict) -> int:
        return record.get("event_time", record.get("occurred_at", 0))
