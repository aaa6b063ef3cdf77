"""Generator → collector topics → normalise → journeys → DuckDB, against the real broker.

The generator knows the truth: which events are valid, which must be
dead-lettered and why, every conversion and the touches that led to it.
"""

import copy
from collections import Counter

import pytest

from connectors.sinks.duckdb.sink import SINK_OFFSETS
from streams.attribution.models import ALL_MODELS
from tests.pipeline import Pipeline, population


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    gen, events = population(customers=1000, seed=11)
    pipe = Pipeline(tmp_path_factory.mktemp("pipeline")).start()
    originals = copy.deepcopy(events)
    pipe.publish(events)
    truth = gen.truth
    expected = sum(truth.events.values())

    def settled() -> bool:
        try:
            (tps,), (dls,), (convs,), (credited,) = (
                pipe.query("SELECT count(*) FROM touchpoints"),
                pipe.query("SELECT count(*) FROM dead_letters"),
                pipe.query("SELECT count(*) FROM journeys WHERE converted"),
                pipe.query(
                    "SELECT count(DISTINCT conversion_id) FROM attribution_credits "
                    "WHERE model = 'markov'"
                ),
            )
        except Exception:
            return False
        return (tps[0], dls[0], convs[0], credited[0]) == (
            expected,
            sum(truth.invalid.values()),
            len(truth.conversions),
            len(truth.conversions),
        )

    settled_in_time = pipe.wait_for(settled, timeout_s=120, stable_s=3)
    yield pipe, truth, originals, settled_in_time
    pipe.close()


def test_pipeline_settles_with_the_expected_counts(run):
    pipe, _, _, settled = run
    counts = pipe.query(
        "SELECT (SELECT count(*) FROM touchpoints), "
        "(SELECT count(*) FROM dead_letters), "
        "(SELECT count(*) FROM journeys WHERE converted)"
    )[0]
    assert settled, f"got {counts}"


def test_every_valid_raw_event_is_exactly_one_touchpoint(run):
    pipe, truth, _, _ = run
    per_topic = dict(pipe.query("SELECT source_topic, count(*) FROM touchpoints GROUP BY ALL"))
    assert per_topic == dict(truth.events)
    (dupes,) = pipe.query("SELECT count(*) - count(DISTINCT source_event_id) FROM touchpoints")[0]
    assert dupes == 0


def test_every_invalid_event_is_a_dead_letter_with_its_reason(run):
    pipe, truth, _, _ = run
    reasons = dict(pipe.query("SELECT error_type, count(*) FROM dead_letters GROUP BY ALL"))
    assert reasons == dict(truth.invalid)
    rows = pipe.query(
        "SELECT stage, source_partition IS NOT NULL, source_offset IS NOT NULL, "
        "octet_length(original) > 5 FROM dead_letters"
    )
    assert rows and all(r == ("normalise", True, True, True) for r in rows)


def test_each_conversion_is_one_journey_with_the_true_touches(run):
    pipe, truth, _, _ = run
    got = {
        cid: (path, key, value)
        for cid, path, key, value in pipe.query(
            "SELECT conversion_id, path, customer_key, conversion_value FROM journeys "
            "WHERE converted"
        )
    }
    mismatches = [
        (c.conversion_id, " > ".join(c.channels), got.get(c.conversion_id))
        for c in truth.conversions
        if got.get(c.conversion_id)
        != (" > ".join(c.channels), c.customer_id, pytest.approx(c.value))
    ]
    assert mismatches == []
    assert len(got) == len(truth.conversions)


def test_credits_of_every_conversion_sum_to_one_and_to_its_value_per_model(run):
    pipe, truth, _, _ = run
    rows = pipe.query("""
        SELECT model, count(*) AS conversions, max(abs(credit - 1)), max(abs(value - v))
        FROM (SELECT model, conversion_id, sum(credit) AS credit, sum(value_credit) AS value,
                     any_value(conversion_value) AS v
              FROM attribution_credits GROUP BY ALL)
        GROUP BY model ORDER BY model""")
    assert [r[0] for r in rows] == sorted(ALL_MODELS)
    for model, conversions, credit_error, value_error in rows:
        assert conversions == len(truth.conversions), model
        assert credit_error < 1e-9 and value_error < 1e-6, model


def test_markov_credits_are_restated_under_the_latest_model(run):
    """Conversions credited before a model existed (or under an early one) are
    credited again once the stage adopts a model that moved: in the end every
    conversion's Markov credits come from one model, and none from no model."""
    pipe, truth, _, _ = run

    def versions() -> list[tuple[str, int]]:
        return pipe.query(
            "SELECT model_version, count(DISTINCT conversion_id) FROM attribution_credits "
            "WHERE model = 'markov' GROUP BY ALL"
        )

    assert pipe.wait_for(lambda: len(versions()) == 1, timeout_s=60, stable_s=2), versions()
    ((version, conversions),) = versions()
    assert not version.endswith("-none") and conversions == len(truth.conversions)


def test_markov_credits_recover_the_strongest_true_channel(run):
    pipe, truth, _, _ = run
    pipe.wait_for(
        lambda: (
            not pipe.query(
                "SELECT 1 FROM attribution_credits WHERE model = 'markov' "
                "AND model_version LIKE '%-none' LIMIT 1"
            )
        ),
        timeout_s=60,
    )
    ((top,),) = pipe.query(
        "SELECT channel FROM attribution_credits WHERE model = 'markov' "
        "GROUP BY channel ORDER BY sum(credit) DESC LIMIT 1"
    )
    assert top == truth.strongest_channel


def test_anonymous_history_joins_the_customer_journey_after_identify(run):
    pipe, _, _, _ = run
    # touches recorded under an anonymous key that ended in a customer's journey
    (stitched,) = pipe.query("""
        SELECT count(*) FROM journey_touchpoints jt JOIN touchpoints t USING (touchpoint_id)
        WHERE jt.converted AND t.customer_key LIKE 'anon-%' AND jt.customer_key LIKE 'cust-%'
    """)[0]
    assert stitched > 10


def test_sessions_are_assigned_to_customer_activity_only(run):
    pipe, _, _, _ = run
    rows = dict(
        pipe.query("""
        SELECT event_type IN ('message_sent', 'message_delivered', 'order_shipped',
                              'order_delivered'), count(*) FILTER (WHERE session_id IS NOT NULL)
        FROM touchpoints GROUP BY ALL""")
    )
    assert rows[True] == 0 and rows[False] > 0


def test_replaying_the_same_raw_input_changes_nothing(run):
    pipe, truth, originals, _ = run
    before_tp = pipe.query(
        "SELECT touchpoint_id, customer_key, session_id, channel FROM touchpoints ORDER BY 1"
    )
    before_j = pipe.query(
        "SELECT journey_id, path, conversion_value FROM journeys WHERE converted ORDER BY 1"
    )
    (offsets_before,) = pipe.query(f"SELECT sum(next_offset) FROM {SINK_OFFSETS}")[0]
    pipe.publish(copy.deepcopy(originals))
    # the sink has consumed the replay once its offsets moved by at least the replayed count
    assert pipe.wait_for(
        lambda: (
            pipe.query(f"SELECT sum(next_offset) FROM {SINK_OFFSETS}")[0][0]
            >= offsets_before + sum(truth.events.values())
        ),
        stable_s=3,
    )
    after_tp = pipe.query(
        "SELECT touchpoint_id, customer_key, session_id, channel FROM touchpoints ORDER BY 1"
    )
    after_j = pipe.query(
        "SELECT journey_id, path, conversion_value FROM journeys WHERE converted ORDER BY 1"
    )
    # Same touchpoint ids, sessions and channels; a touchpoint first recorded under
    # an anonymous key may now carry the customer's stitched key, nothing else.
    assert [(t, s, c) for t, _, s, c in after_tp] == [(t, s, c) for t, _, s, c in before_tp]
    rekeyed = [(b[1], a[1]) for b, a in zip(before_tp, after_tp, strict=True) if b[1] != a[1]]
    assert all(
        old.startswith(("anon-", "app-", "dev-")) and new.startswith("cust-")
        for old, new in rekeyed
    ), rekeyed[:5]
    assert after_j == before_j
    # Dead letters are one per event id; events without one cannot be recognised
    # as the same and count once per copy received.
    expected = Counter(truth.invalid)
    expected["missing_id"] *= 2
    assert Counter(r[0] for r in pipe.query("SELECT error_type FROM dead_letters")) == expected


def test_every_new_customer_is_scored_once_at_the_first_purchase(run):
    pipe, truth, _, _ = run
    first: dict[str, tuple[int, str]] = {}
    for c in truth.conversions:
        first[c.customer_id] = min(first.get(c.customer_id, (c.time, c.conversion_id)),
                                   (c.time, c.conversion_id))  # fmt: skip
    assert len(first) < len(truth.conversions), "the population has repeat purchases"

    def scored() -> bool:
        return pipe.query("SELECT count(*) FROM customer_scores")[0][0] >= len(first)

    if not pipe.wait_for(scored, timeout_s=120):
        keys = {k for (k,) in pipe.query("SELECT customer_key FROM customer_scores")}
        pytest.fail(f"{len(keys)} of {len(first)} scored; not: {sorted(set(first) - keys)[:5]}")
    rows = pipe.query(
        "SELECT customer_key, first_order_id, expected_value_365d, acquisition_channel "
        "FROM customer_scores"
    )
    assert {key: order for key, order, _, _ in rows} == {k: o for k, (_, o) in first.items()}
    assert len(rows) == len(first) and all(value > 0 for _, _, value, _ in rows)
    expected_channels = {
        c.customer_id: c.channels[0] for c in truth.conversions
        if c.conversion_id == first[c.customer_id][1]
    }  # fmt: skip
    assert {key: channel for key, _, _, channel in rows} == expected_channels
    # the first order's details (from its journey) are those of its conversion touchpoint
    details = pipe.query("""
        SELECT s.first_category IS NOT DISTINCT FROM t.product_category,
               s.discount_used
                 = (coalesce(t.discount, 0) <> 0 OR coalesce(t.coupon_code, '') <> ''),
               s.first_category IS NOT NULL
        FROM customer_scores s
        JOIN journeys j ON j.conversion_id = s.first_order_id
        JOIN touchpoints t ON t.touchpoint_id = j.conversion_touchpoint_id""")
    assert len(details) == len(first)
    assert all(same_category and same_discount for same_category, same_discount, _ in details)
    assert sum(known for _, _, known in details) > len(first) / 2


def test_profiles_hold_each_customers_observed_lifetime_value(run):
    pipe, truth, _, _ = run
    expected: dict[str, float] = {}
    for c in truth.conversions:
        expected[c.customer_id] = expected.get(c.customer_id, 0.0) + c.value

    def profiled() -> bool:
        (n,) = pipe.query(
            "SELECT count(*) FROM customer_profiles p, unnest(p.attributes) AS a(attr) "
            "WHERE attr.name = 'lifetime_value'"
        )[0]
        return n >= len(expected)

    assert pipe.wait_for(profiled, timeout_s=60)
    got = dict(
        pipe.query(
            "SELECT customer_key, CAST(attr.value AS DOUBLE) FROM customer_profiles p, "
            "unnest(p.attributes) AS a(attr) WHERE attr.name = 'lifetime_value' "
            "AND attr.confidence = 'observed'"
        )
    )
    assert got == pytest.approx(expected)
    declared = pipe.query(
        "SELECT count(*), count(attr.probability) FROM customer_profiles p, "
        "unnest(p.attributes) AS a(attr) WHERE attr.confidence = 'declared' "
        "AND attr.name = 'location'"
    )[0]
    assert declared[0] > 0 and declared[1] == 0, "declared: stated, no probability"
    channels = dict(
        pipe.query("SELECT channel, sum(sent) FROM channel_responsiveness GROUP BY ALL")
    )
    assert set(channels) <= {"email", "push", "sms"} and sum(channels.values()) > 0
