"""The segment-of-one product feed (pure): products that complete what a shopper
browses and buys, learned from every shopper's orders and sessions.

Associations are **cross-category** only (a look is one product per category, so
more of the same category is not a complement): each time a shopper buys a product
it is paired with each product of another category they bought before ("bought
together", weight 1), and each product they view with the products of other
categories among their recent views ("viewed together", weight ``VIEWED_WEIGHT``).
A pair is learned once per shopper (``ShopperState.touch`` remembers the pairs it
gave), so a replayed touch teaches nothing twice, unless a crash came between the
two table writes that record the pairs and the shopper (then one batch's pairs
count twice or not at all).

A shopper's feed ranks products by the association strength from what they bought
(anchor weight 1) and recently viewed (``VIEW_ANCHOR``), each anchor's associations
normalised to shares; products they bought, and products out of stock or not
active, are never in it. Each item says which product of theirs it completes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from streams.activation.ids import stable_id

VIEWED_WEIGHT = 0.25
VIEW_ANCHOR = 0.5
RECENT_VIEWS = 10
MAX_PAIRS = 2000  # pairs remembered per shopper against replays


@dataclass
class ShopperState:
    """One shopper's products: bought, recently viewed, and the pairs already learned."""

    bought: list[str] = field(default_factory=list)
    viewed: list[str] = field(default_factory=list)
    pairs: list[str] = field(default_factory=list)

    def touch(
        self, product: str, kind: str, categories: dict[str, str]
    ) -> list[tuple[str, str, str]]:
        """Record a ``view`` or ``purchase`` of ``product``; the new pairs
        ``(product, other, "bought" | "viewed")`` to learn, both directions."""
        own = categories.get(product)
        if kind == "purchase":
            partners, how = self.bought, "bought"
        else:
            partners, how = self.viewed, "viewed"
        out = []
        for other in partners:
            if other == product or categories.get(other) == own:
                continue
            key = f"{how}|{min(product, other)}|{max(product, other)}"
            if key in self.pairs:
                continue
            self.pairs.append(key)
            out += [(product, other, how), (other, product, how)]
        del self.pairs[: max(0, len(self.pairs) - MAX_PAIRS)]
        if kind == "purchase":
            if product not in self.bought:
                self.bought.append(product)
        else:
            if product in self.viewed:
                self.viewed.remove(product)
            self.viewed.append(product)
            del self.viewed[: max(0, len(self.viewed) - RECENT_VIEWS)]
        return out

    def as_dict(self) -> dict[str, list[str]]:
        return {"bought": self.bought, "viewed": self.viewed, "pairs": self.pairs}


def learn(model: dict[str, dict[str, list[int]]], pair: tuple[str, str, str]) -> None:
    """Add one pair to ``model`` (product -> other -> [bought together, viewed together])."""
    product, other, how = pair
    counts = model.setdefault(product, {}).setdefault(other, [0, 0])
    counts[0 if how == "bought" else 1] += 1


def strength(counts: list[int]) -> float:
    return counts[0] + VIEWED_WEIGHT * counts[1]


def rank(
    shopper: ShopperState,
    model: dict[str, dict[str, list[int]]],
    products: dict[str, dict[str, Any]],
    size: int,
) -> list[dict[str, Any]]:
    """The shopper's feed: up to ``size`` items, best first (see module docstring)."""
    anchors = {p: 1.0 for p in shopper.bought}
    for p in shopper.viewed:
        anchors.setdefault(p, VIEW_ANCHOR)
    scores: dict[str, float] = defaultdict(float)
    best: dict[str, tuple[float, str]] = {}
    for anchor, weight in anchors.items():
        neighbours = model.get(anchor, {})
        total = sum(strength(c) for c in neighbours.values())
        for other, counts in neighbours.items():
            if other in shopper.bought or not available(products.get(other)):
                continue
            part = weight * strength(counts) / total
            scores[other] += part
            if part > best.get(other, (0.0, ""))[0]:
                best[other] = (part, anchor)
    ranked = sorted(scores, key=lambda p: (-scores[p], p))[:size]
    items = []
    for i, product in enumerate(ranked, 1):
        anchor = best[product][1]
        together, viewed = model[anchor][product]
        how = f"bought with {anchor} by {together} shoppers" if together else (
            f"viewed with {anchor} by {viewed} shoppers"
        )  # fmt: skip
        category = (products.get(anchor) or {}).get("category")
        items.append(
            {
                "rank": i,
                "product_id": product,
                "category": (products.get(product) or {}).get("category"),
                "score": round(scores[product], 6),
                "reason": f"{how} ({category or 'unknown category'})",
            }
        )
    return items


def available(product: dict[str, Any] | None) -> bool:
    """In the catalogue, active, and not out of stock (unknown stock counts as in)."""
    return (
        product is not None and product.get("active", True) and product.get("in_stock") is not False
    )


def feed_id(customer: str, touchpoint_id: str) -> str:
    return stable_id("feed", customer, touchpoint_id)


def feed_record(
    customer: str, touchpoint_id: str, items: list[dict[str, Any]], now: int
) -> dict[str, Any]:
    """The ``cust.recommendations.v1`` record of a feed."""
    return {
        "feed_id": feed_id(customer, touchpoint_id),
        "customer_key": customer,
        "trigger_touchpoint_id": touchpoint_id,
        "items": items,
        "categories": len({i["category"] for i in items if i["category"]}),
        "generated_at": now,
    }
