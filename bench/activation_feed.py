"""The product feed against a "most popular in the same category" baseline.

    python -m bench.activation_feed [CUSTOMERS]

Replays the generator's activation population (``activation=True``: look builders
who assemble a look across categories, and everyone else) in event-time order
through the feed's own logic (``streams.activation.feed``: the shopper state, the
association model, the ranking the agent publishes). For each customer with two
purchases or more, the last purchase is held out: the feed as it stood just before
it (what the customer would have been shown) is compared with the baseline's ten
most bought products of the category of the customer's latest product touch
(excluding what they bought). Reported: hit rate@10 and distinct categories per
list, for look builders and for the others. Appends the figures to
``bench/RESULTS.md``.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from dataclasses import dataclass

import orjson

from bench.results import record
from connectors.generator.population import PopulationGenerator
from streams.activation.feed import ShopperState, learn, rank
from streams.core.topics import CLICKSTREAM, FULFILLMENT, MOBILE

SIZE = 10


@dataclass
class Figures:
    """Hits and list categories of the feed and the baseline for one group."""

    customers: int = 0
    feed_hits: int = 0
    base_hits: int = 0
    feed_categories: int = 0
    base_categories: int = 0

    def line(self, name: str) -> str:
        n = max(1, self.customers)
        return (
            f"{name}: {self.customers} customers; hit rate@{SIZE} feed "
            f"{self.feed_hits / n:.1%} vs baseline {self.base_hits / n:.1%}; categories per "
            f"list feed {self.feed_categories / n:.2f} vs baseline {self.base_categories / n:.2f}"
        )


def product_touches(gen: PopulationGenerator) -> list[tuple[int, str, str, str]]:
    """``(time, customer, product, view | purchase)`` of the population, in time order;
    anonymous web views are the customer's (the generator knows whose they are)."""
    events = gen.generate()
    owner = {
        e.record["anonymous_id"]: e.record["user_id"]
        for e in events
        if e.topic == CLICKSTREAM and e.record.get("user_id")
    }
    out = []
    for e in events:
        r = e.record
        if e.topic in (CLICKSTREAM, MOBILE) and r.get("event_name") == "Product Viewed":
            customer = r.get("user_id") or owner.get(r["anonymous_id"])
            product = orjson.loads(r["properties_json"])["product_id"]
            if customer:
                out.append((r["event_time"], customer, product, "view"))
        elif e.topic == FULFILLMENT and r["event_type"] == "order_placed" and not e.invalid:
            for line in r["lines"]:
                out.append((r["occurred_at"], r["customer_id"], line["product_id"], "purchase"))
    return sorted(out)


def evaluate(customers: int = 3000, seed: int = 5) -> tuple[Figures, Figures]:
    """Feed and baseline on held-out last purchases: (look builders, others)."""
    gen = PopulationGenerator(customers, seed=seed, activation=True)
    touches = product_touches(gen)
    categories = gen.category_of
    products = {p: {"category": c, "active": True, "in_stock": True} for p, c in gen.products}
    purchases = Counter(c for _, c, _, k in touches if k == "purchase")
    seen = Counter()
    shoppers: dict[str, ShopperState] = defaultdict(ShopperState)
    last_touched: dict[str, str] = {}
    model: dict = {}
    popular: Counter = Counter()
    looks, others = Figures(), Figures()
    for _, customer, product, kind in touches:
        shopper = shoppers[customer]
        if kind == "purchase":
            seen[customer] += 1
            if seen[customer] == purchases[customer] and purchases[customer] >= 2:
                feed = [i["product_id"] for i in rank(shopper, model, products, SIZE)]
                category = categories[last_touched[customer]]
                base = [
                    p
                    for p, _ in popular.most_common()
                    if categories[p] == category and p not in shopper.bought
                ][:SIZE]
                group = looks if customer in gen.truth.looks else others
                group.customers += 1
                group.feed_hits += product in feed
                group.base_hits += product in base
                group.feed_categories += len({categories[p] for p in feed})
                group.base_categories += len({categories[p] for p in base})
            popular[product] += 1
        for pair in shopper.touch(product, kind, categories):
            learn(model, pair)
        last_touched[customer] = product
    return looks, others


def main() -> None:
    customers = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    looks, others = evaluate(customers)
    lines = [
        f"activation population of {customers} customers (seed 5), last purchase held out",
        looks.line("look builders"),
        others.line("other shoppers"),
    ]
    print("\n".join(lines))
    record("Product feed vs most popular in the same category", lines)


if __name__ == "__main__":
    main()
