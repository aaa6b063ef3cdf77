"""Activation on the whole pipeline: the generator's activation population through every
stage, the activation agents as a Faust worker, the DuckDB sink's tables checked against
the generated truth (suppression of email for those who answer only on social; no
responsive customer suppressed; the feed and audiences in their tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.generator.population import PopulationGenerator
from streams.faust.testing import AgentWorker
from tests.pipeline import Pipeline

pytestmark = pytest.mark.broker
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("activation")
    gen = PopulationGenerator(800, seed=13, activation=True)
    events = gen.generate()
    pipe = Pipeline(root).start()
    agents = AgentWorker(
        "streams.activation.agents", pipe.bootstrap, cwd=ROOT, log_path=root / "activation.log"
    ).start()
    try:
        pipe.publish(events)
        expected = sum(gen.truth.events.values())

        def settled() -> bool:
            try:
                ((touchpoints, decisions, feeds),) = pipe.query(
                    "SELECT (SELECT count(*) FROM touchpoints), "
                    "(SELECT count(*) FROM channel_decisions), "
                    "(SELECT count(*) FROM recommendations)"
                )
            except Exception:
                return False
            return touchpoints == expected and decisions > 0 and feeds > 0

        # the decisions follow the last profile updates: settled once nothing changes
        assert pipe.wait_for(settled, timeout_s=180), "the pipeline did not settle"
        counts: list = [None]

        def unchanged() -> bool:
            now = pipe.query(
                "SELECT (SELECT count(*) FROM channel_decisions), "
                "(SELECT count(*) FROM audience_changes), (SELECT count(*) FROM recommendations)"
            )
            same, counts[0] = now == counts[0], now
            return same

        assert pipe.wait_for(unchanged, timeout_s=120, stable_s=8), "the agents did not settle"
        yield pipe, gen.truth
    finally:
        agents.stop()
        pipe.close()


def current(pipe: Pipeline) -> dict[tuple[str, str], str]:
    rows = pipe.query("SELECT customer_key, channel, decision FROM channel_decisions_current")
    return {(customer, channel): decision for customer, channel, decision in rows}


def test_email_is_suppressed_for_those_who_answer_only_on_social(run):
    pipe, truth = run
    decisions = current(pipe)
    assert len(truth.answers_social) >= 20, "the population has social answerers"
    wrong = [
        c
        for c in truth.answers_social
        if decisions.get((c, "email")) != "suppress" or decisions.get((c, "social")) != "keep"
    ]
    assert not wrong, f"{len(wrong)} of {len(truth.answers_social)}: {wrong[:5]}"
    reasons = pipe.query(
        "SELECT reason FROM channel_decisions_current WHERE channel = 'email' "
        f"AND customer_key = '{truth.answers_social[0]}'"
    )
    assert "answers on social" in reasons[0][0]


def test_no_responsive_customer_is_suppressed_on_email(run):
    pipe, truth = run
    decisions = current(pipe)
    assert len(truth.opens_email) >= 100
    suppressed = [c for c in truth.opens_email if decisions.get((c, "email")) == "suppress"]
    assert not suppressed, suppressed[:5]
    # whoever is suppressed on email was generated to ignore it
    ignoring = set(truth.ignores_email)
    others = [c for (c, ch), d in decisions.items() if ch == "email" and d == "suppress"]
    assert others and set(others) <= ignoring, sorted(set(others) - ignoring)[:5]


def test_audiences_and_the_feed_are_in_their_tables(run):
    pipe, truth = run
    members = dict(pipe.query("SELECT audience, count(*) FROM audience_members GROUP BY ALL"))
    voices = set(truth.answers_social)
    assert members.get("social-voices", 0) >= len(voices), members
    assert members.get("repeat-buyers", 0) > 0, members
    ((changes, unique),) = pipe.query(
        "SELECT count(*), count(DISTINCT change_id) FROM audience_changes"
    )
    assert changes == unique, "one row per change id"
    ((feeds, with_items, categories),) = pipe.query(
        "SELECT count(*), count(*) FILTER (WHERE categories > 0), avg(categories) "
        "FROM recommendations"
    )
    assert feeds > 0 and with_items == feeds and categories > 1.5
    looks = list(truth.looks)[:50]
    bought = {
        (c, p)
        for c, p in pipe.query(
            "SELECT customer_key, product_id FROM touchpoints WHERE is_conversion "
            "AND product_id IS NOT NULL"
        )
    }
    items = pipe.query(
        "SELECT r.customer_key, i.product_id FROM recommendations r "
        "JOIN recommendation_items i USING (feed_id) "
        f"WHERE r.customer_key IN ({', '.join(repr(c) for c in looks)}) "
        "AND r.generated_at = (SELECT max(generated_at) FROM recommendations x "
        "WHERE x.customer_key = r.customer_key)"
    )
    assert items and not [(c, p) for c, p in items if (c, p) in bought], "never what they bought"
