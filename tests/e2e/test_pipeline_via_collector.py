"""The generator publishing through the real sources: Segment calls and webhooks to the HTTP
collector, orders as the order system's source publishes them. The pipeline must recover the
same truth as when the events are produced straight to the raw topics."""

from __future__ import annotations

import pytest

from tests.pipeline import Pipeline, population


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    gen, events = population(customers=300, seed=23)
    pipe = Pipeline(tmp_path_factory.mktemp("via-collector")).start()
    url = pipe.start_collector()
    sent = pipe.publish_via_collector(events, url)
    truth = gen.truth
    expected = (sum(truth.events.values()), sum(truth.invalid.values()), len(truth.conversions))

    def settled() -> bool:
        try:
            return (
                pipe.query(
                    "SELECT (SELECT count(*) FROM touchpoints), "
                    "(SELECT count(*) FROM dead_letters), "
                    "(SELECT count(*) FROM journeys WHERE converted)"
                )[0]
                == expected
            )
        except Exception:
            return False

    ok = pipe.wait_for(settled, timeout_s=120, stable_s=3)
    yield pipe, truth, sent, len(events), ok
    pipe.close()


def test_every_valid_event_arrives_once_and_every_invalid_one_is_dead_lettered(run):
    pipe, truth, sent, generated, settled = run
    assert sent == generated
    assert settled, pipe.query(
        "SELECT (SELECT count(*) FROM touchpoints), (SELECT count(*) FROM dead_letters)"
    )
    per_topic = dict(pipe.query("SELECT source_topic, count(*) FROM touchpoints GROUP BY ALL"))
    assert per_topic == dict(truth.events)
    reasons = dict(pipe.query("SELECT error_type, count(*) FROM dead_letters GROUP BY ALL"))
    assert reasons == dict(truth.invalid)
    stages = dict(pipe.query("SELECT stage, count(*) FROM dead_letters GROUP BY ALL"))
    assert set(stages) == {"http-collector", "normalise"}, "refused at the door, or downstream"


def test_conversions_have_the_true_paths(run):
    pipe, truth, _, _, _ = run
    got = dict(pipe.query("SELECT conversion_id, path FROM journeys WHERE converted"))
    expected = {c.conversion_id: " > ".join(c.channels) for c in truth.conversions}
    assert got == expected
