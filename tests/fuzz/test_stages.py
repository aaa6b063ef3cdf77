"""Every stage's logic against records valid for its input schema (``avro_values``):
through the runner's record processor, with a real partition store, nothing escapes,
every record is processed or dead-lettered, and none is an ``internal_error`` (an
exception the stage did not expect: a bug). ``make test`` runs a few hundred batches
per stage, ``make fuzz`` 100,000."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from confluent_kafka import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution.stage import AttributionStage
from streams.core.codec import make_codec
from streams.core.errors import InvalidRecord
from streams.core.settings import Settings
from streams.core.topics import RAW_SOURCES
from streams.journeys.stage import JourneysStage
from streams.normalise.stage import NormaliseStage
from streams.profiles.stage import ProfilesStage
from streams.runtime.deadletter import DeadLetterPolicy
from streams.runtime.stage import BatchContext, RecordProcessor, Stage
from streams.runtime.state import PartitionStore
from streams.scoring.model import PurchaseHistory, ScoringModel, fit_scoring_model
from streams.scoring.stage import ScoringStage
from tests.fuzz.avro_values import records
from tests.unit.test_scoring_model import cdnow_journeys

CODEC = make_codec(Settings())
TRIED: Counter = Counter()  # (stage, "batches" | "records" | "dead-lettered" | reason) -> n


@pytest.fixture(scope="module", autouse=True)
def figures():
    """What the properties tried, printed at the end (``make fuzz`` runs with -s)."""
    yield
    stages = sorted({stage for stage, _ in TRIED})
    for stage in stages:
        reasons = {k: v for (s, k), v in TRIED.items() if s == stage and k.startswith("r:")}
        print(
            f"\nfuzz {stage}: {TRIED[stage, 'batches']:,} batches, "
            f"{TRIED[stage, 'records']:,} records, {TRIED[stage, 'dead']:,} dead-lettered "
            f"({', '.join(f'{k[2:]} {v:,}' for k, v in sorted(reasons.items()))})"
        )


def run_batch(stage: Stage, topic: str, batch: list[dict]) -> BatchContext:
    """One batch of ``batch`` (encoded as the topic's bytes) through ``stage``, then a
    second tick a day later (timers), with a store of its own."""
    codec = CODEC.for_topic(topic)
    messages = [
        Message(
            topic=topic,
            partition=0,
            offset=i,
            key=b"k",
            value=codec.encode(record),
            timestamp=(1, int(time.time() * 1000)),
        )
        for i, record in enumerate(batch)
    ]
    processor = RecordProcessor(stage, CODEC)
    policy = DeadLetterPolicy(stage.name, window=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        store = PartitionStore(Path(tmp) / "p.sqlite") if stage.stateful else None
        try:
            ctx = BatchContext(stage.name, policy, int(time.time() * 1000))
            processed, dead = processor.process_partition((topic, 0), messages, store, ctx)
            assert processed + dead == len(batch)
            if store is not None:
                store.commit(len(batch))
                later = BatchContext(stage.name, policy, ctx.now_ms + 86_400_000)
                processor.tick_idle((topic, 0), store, later)
                ctx.outputs += later.outputs
        finally:
            if store is not None:
                store.close()
    TRIED[stage.name, "batches"] += 1
    TRIED[stage.name, "records"] += len(batch)
    TRIED[stage.name, "dead"] += dead
    for out in ctx.outputs:
        if out.dead:
            TRIED[stage.name, "r:" + out.dead] += 1
    internal = [o.record for o in ctx.outputs if o.dead == "internal_error"]
    assert not internal, internal[0]["error_message"]
    assert all(o.value is not None for o in ctx.outputs if o.dead is None or o.value)
    return ctx


def side_input(apply, records: list[dict]) -> None:
    """Apply records as ``SideInput`` does: an invalid one is skipped (its owner
    dead-letters it); anything else raised is a bug and fails the property."""
    for record in records:
        with contextlib.suppress(InvalidRecord):
            apply(record)


def batches(topic: str) -> st.SearchStrategy:
    return st.lists(records(topic), min_size=1, max_size=6)


@pytest.mark.parametrize("topic", RAW_SOURCES)
def test_normalise_processes_or_dead_letters_any_raw_record(topic):
    # the profile's examples are per stage: normalise shares them among its inputs
    @settings(max_examples=max(10, settings.default.max_examples // len(RAW_SOURCES)))
    @given(batch=batches(topic))
    def check(batch):
        run_batch(NormaliseStage(Settings()), topic, batch)

    check()


def journeys_stage() -> JourneysStage:
    stage = JourneysStage(Settings())
    stage.source_partitions = {"cust.clickstream.raw.v1/0"}  # as attach_side_inputs would
    return stage


@given(batch=batches("cust.touchpoints.stitched.v1"))
def test_journeys_processes_or_dead_letters_any_stitched_record(batch):
    run_batch(journeys_stage(), "cust.touchpoints.stitched.v1", batch)


@given(batch=batches("cust.journeys.v1"))
def test_attribution_processes_or_dead_letters_any_journey(batch):
    stage = AttributionStage(Settings())
    side_input(stage.paths.apply, batch)  # the learned models see the same journeys
    stage.learned = stage.paths.learn()
    stage.shares = stage.learned.summary()
    run_batch(stage, "cust.journeys.v1", batch)


@cache
def scoring_model() -> ScoringModel:
    """A model fitted on CDNOW's first 300 customers, for the held first purchases."""
    history = PurchaseHistory()
    for journey in cdnow_journeys(limit_customers=300):
        history.apply_journey(journey)
    model = fit_scoring_model(history)
    assert model is not None
    return model


@given(batch=batches("cust.journeys.v1"), fitted=st.booleans())
def test_scoring_processes_or_dead_letters_any_journey(batch, fitted):
    stage = ScoringStage(Settings())
    stage.model = scoring_model() if fitted else None
    side_input(stage.history.apply_journey, batch)
    run_batch(stage, "cust.journeys.v1", batch)


@given(batch=batches("cust.touchpoints.v1"), scores=st.lists(records("cust.customer-scores.v1")))
def test_profiles_processes_or_dead_letters_any_touchpoint(batch, scores):
    stage = ProfilesStage(Settings())
    side_input(stage._take_score, scores)
    run_batch(stage, "cust.touchpoints.v1", batch)
