"""What a stage reads whole at every start (its side inputs) is kept whole: a topic with a
retention would let a restarted or moved worker rebuild its lookups from part of it."""

from __future__ import annotations

from streams.app.worker import STAGES, build_runners
from streams.core.catalog import default_catalog
from streams.core.settings import Settings


def test_every_side_input_topic_is_kept_forever(bus, tmp_path):
    runners = build_runners(list(STAGES), Settings(runtime_dir=tmp_path), bus)
    try:
        read_whole = {
            (runner.stage.name, side.topic)
            for runner in runners
            for side in [runner.stage.erasure_input, *runner.stage.side_inputs]
            if side is not None
        }
    finally:
        for runner in runners:
            runner.close()
    assert {topic for _, topic in read_whole} >= {
        "cust.identity.raw.v1",
        "cust.catalog.products.v1",
        "cust.journeys.v1",
        "cust.customer-scores.v1",
        "cust.erasure.v1",
    }
    catalog = default_catalog()
    limited = {
        (stage, topic, catalog.topic(topic).retention)
        for stage, topic in read_whole
        if catalog.topic(topic).retention_ms != -1
    }
    assert not limited, f"side inputs on topics that are not kept forever: {limited}"
