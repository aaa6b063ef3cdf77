"""The product feed: cross-category complements, never bought or out of stock, and
better than "most popular in the same category" for shoppers who build a look."""

from __future__ import annotations

from bench.activation_feed import evaluate
from streams.activation.feed import ShopperState, feed_record, learn, rank

CATEGORIES = {"shoe-1": "Shoes", "shoe-2": "Shoes", "shirt-1": "Apparel", "hat-1": "Accessories"}
PRODUCTS = {p: {"category": c, "active": True, "in_stock": True} for p, c in CATEGORIES.items()}


def trained_model() -> dict:
    model: dict = {}
    for i in range(5):  # five shoppers buy shoe-1 then shirt-1; two view shoe-1 and hat-1
        shopper = ShopperState()
        for product in ("shoe-1", "shoe-2", "shirt-1"):
            for pair in shopper.touch(product, "purchase", CATEGORIES):
                learn(model, pair)
        if i < 2:
            for product in ("shoe-1", "hat-1"):
                for pair in shopper.touch(product, "view", CATEGORIES):
                    learn(model, pair)
    return model


def test_complements_rank_first_with_reasons_and_same_category_is_not_learned():
    model = trained_model()
    assert "shoe-2" not in model["shoe-1"]  # same category: not a complement
    shopper = ShopperState()
    shopper.touch("shoe-1", "purchase", CATEGORIES)
    items = rank(shopper, model, PRODUCTS, 10)
    assert [i["product_id"] for i in items] == ["shirt-1", "hat-1"]  # bought > viewed with
    assert items[0]["reason"] == "bought with shoe-1 by 5 shoppers (Shoes)"
    assert items[1]["reason"] == "viewed with shoe-1 by 2 shoppers (Shoes)"
    assert items[0]["score"] > items[1]["score"]
    record = feed_record("c1", "tp-9", rank(shopper, model, PRODUCTS, 10), 5)
    assert (
        record["categories"] == 2
        and record["feed_id"] == feed_record("c1", "tp-9", [], 6)["feed_id"]
    )


def test_bought_and_out_of_stock_products_are_never_in_the_feed():
    model = trained_model()
    shopper = ShopperState()
    for product, kind in (("shoe-1", "purchase"), ("shoe-1", "view"), ("shirt-1", "purchase")):
        shopper.touch(product, kind, CATEGORIES)
    # shoe-2 completes shirt-1 (bought together), though shoe-1 (bought) is a shoe too
    assert [i["product_id"] for i in rank(shopper, model, PRODUCTS, 10)] == ["shoe-2", "hat-1"]
    gone = {**PRODUCTS, "hat-1": {**PRODUCTS["hat-1"], "in_stock": False}}
    gone["shoe-2"] = {**PRODUCTS["shoe-2"], "active": False}
    assert rank(shopper, model, gone, 10) == []


def test_a_replayed_touch_teaches_nothing_twice():
    shopper = ShopperState()
    shopper.touch("shoe-1", "purchase", CATEGORIES)
    assert len(shopper.touch("shirt-1", "purchase", CATEGORIES)) == 2
    assert shopper.touch("shirt-1", "purchase", CATEGORIES) == []


def test_feed_beats_the_same_category_baseline_for_look_builders():
    looks, others = evaluate(1500)
    assert looks.customers > 50
    assert looks.feed_hits > 2 * looks.base_hits
    assert looks.feed_categories > looks.base_categories
    assert others.feed_categories > others.base_categories
