"""The generator's activation population: look builders and email ignorers who answer
on social, with their ground truth; the default population does not change."""

from __future__ import annotations

from collections import Counter

from connectors.generator.population import PopulationGenerator
from streams.core.topics import FULFILLMENT, MESSAGING, SOCIAL


def test_default_population_has_no_activation_shoppers():
    gen = PopulationGenerator(300, seed=3)
    gen.generate()
    assert gen.truth.looks == {} and gen.truth.answers_social == []


def test_look_builders_buy_their_look_across_categories():
    gen = PopulationGenerator(600, seed=5, activation=True)
    events = gen.generate()
    looks = gen.truth.looks
    assert 0.3 < len(looks) / 600 < 0.5
    bought: dict[str, list[str]] = {}
    for e in events:
        if e.topic == FULFILLMENT and e.record["event_type"] == "order_placed":
            bought.setdefault(e.record["customer_id"], []).append(
                e.record["lines"][0]["product_id"]
            )
    several = [c for c in looks if len(bought.get(c, [])) >= 2]
    assert len(several) > 30
    for customer in several:
        items = bought[customer][: len(looks[customer])]
        assert set(items) <= set(looks[customer])  # the look, item after item
        assert len(set(items)) == len(items)
        assert len({gen.category_of[p] for p in items}) == len(items)  # across categories


def test_social_answerers_ignore_email_and_comment_on_social():
    gen = PopulationGenerator(600, seed=5, activation=True)
    events = gen.generate()
    answering = set(gen.truth.answers_social)
    assert answering and answering <= set(gen.truth.ignores_email)
    opened = {
        e.record["user_id"]
        for e in events
        if e.topic == MESSAGING
        and e.record["event_type"] in ("opened", "clicked")
        and e.record["channel"] == "email"
    }
    assert not answering & opened
    comments = Counter(
        e.record["user_id"]
        for e in events
        if e.topic == SOCIAL and e.record["event_type"] == "comment"
    )
    assert all(comments[c] >= 2 for c in answering)
