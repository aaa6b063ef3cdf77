"""No single record stops a stage: on the real broker, a record the stage raises on (or
whose output does not fit its schema) is dead-lettered as ``internal_error`` and the
batch goes on; a timer that raises is skipped; a stage whose records mostly fail halts
and says so in ``/ready``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.testing import read_topic
from streams.core.codec import make_codec
from streams.core.settings import Settings
from streams.journeys.stage import JourneysStage
from streams.normalise.stage import NormaliseStage
from streams.runtime.stage import StageRunner, runners_ready
from tests.polling import wait_until
from tests.sinkhelpers import example, produce

pytestmark = pytest.mark.broker

CLICKS, STITCHED = "cust.clickstream.raw.v1", "cust.touchpoints.stitched.v1"
TOUCHPOINTS = "cust.touchpoints.v1"
DLQ = f"{CLICKS}.dlq"


def clicks(
    names: list[str], referrer: str = "https://www.example.org/", tag: str = ""
) -> list[dict]:
    """Track calls named ``names`` from ``referrer`` (one customer each), received now."""
    base = example(CLICKS)
    now = int(time.time() * 1000)
    records = []
    for i, name in enumerate(names):
        page = {**base["page"], "referrer": referrer}
        records.append(
            {
                **base,
                "event_id": f"evt-{tag}{i}",
                "event_name": name,
                "anonymous_id": f"anon-{tag}{i}",
                "user_id": None,
                "event_time": now - 1000,
                "sent_at": None,
                "received_at": now,
                "page": page,
                "properties_json": None,
            }
        )
    return records


class BuggyNormalise(NormaliseStage):
    """A normalise stage with two bugs a record can expose: it divides by zero on
    "Poison" events and builds an output that does not fit the schema on "Misfit"."""

    def process(self, tp, items, store, ctx) -> None:
        for _msg, record in items:
            if record["event_name"] == "Poison":
                _ = 1 / 0
        mark = len(ctx.outputs)
        super().process(tp, items, store, ctx)
        for out in ctx.outputs[mark:]:
            touchpoint = out.record.get("touchpoint") or {}
            if touchpoint.get("event_name") == "Misfit":
                touchpoint["channel"] = 42  # a string field


class FailingTimers(JourneysStage):
    """A journeys stage whose timers raise."""

    def tick(self, tp, store, ctx) -> None:
        raise KeyError("a timer bug")


class Running:
    def __init__(self, stage: Any, bootstrap: str, root, **runner: Any) -> None:
        settings = Settings(runtime_dir=root)
        codec = make_codec(settings)
        stage.attach_erasures(codec, settings, bootstrap)
        stage.attach_side_inputs(codec, settings, bootstrap)
        self.runner = StageRunner(stage, settings, bootstrap, codec, **runner)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.runner.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def committed(bootstrap: str, group: str, topic: str, partitions: int = 2) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
        return sum(max(0, tp.offset) for tp in offsets)
    finally:
        consumer.close()


def touchpoint_names(bus: str) -> list[str]:
    return [
        r.value["touchpoint"]["event_name"]
        for r in read_topic(bus, STITCHED, STITCHED)
        if r.value["kind"] == "touchpoint"
    ]


def test_records_a_stage_raises_on_are_dead_lettered_and_the_batch_goes_on(bus, tmp_path):
    names = [f"Viewed {i}" for i in range(20)]
    names[3] = names[11] = "Poison"
    names[7] = "Misfit"
    records = clicks(names)
    produce(bus, CLICKS, records, "anonymous_id")
    running = Running(BuggyNormalise(Settings()), bus, tmp_path / "rt")
    try:
        assert wait_until(lambda: len(read_topic(bus, DLQ, DLQ)) >= 3, 60)
        assert wait_until(lambda: len(touchpoint_names(bus)) >= 17, 60)
        assert wait_until(lambda: committed(bus, "journeybus-normalise", CLICKS) == 20, 30)
    finally:
        running.close()
    assert sorted(touchpoint_names(bus)) == sorted(
        n for n in names if n not in ("Poison", "Misfit")
    )
    letters = sorted((r.value for r in read_topic(bus, DLQ, DLQ)), key=lambda v: v["event_id"])
    assert [v["event_id"] for v in letters] == ["evt-11", "evt-3", "evt-7"]
    by_id = {v["event_id"]: v for v in letters}
    for letter in letters:
        assert letter["error_type"] == "internal_error"
        assert letter["stage"] == "normalise"
        assert letter["source_topic"] == CLICKS
        assert letter["source_partition"] in (0, 1) and letter["source_offset"] >= 0
        assert letter["original"]  # the record's bytes, to replay after a fix
    assert "ZeroDivisionError: division by zero" in by_id["evt-3"]["error_message"]
    assert "stage normalise failed on this record" in by_id["evt-3"]["error_message"]
    assert f"{STITCHED} does not fit the schema" in by_id["evt-7"]["error_message"]
    assert running.runner.halted is None


ASSISTANTS = {  # referrer: (event name, GA4's channel group)
    "https://chatgpt.com/": ("chatgpt.com", "Referral"),
    "https://so.com/s?q=shoes": ("so.com", "Organic Search"),
    "https://copilot.microsoft.com/": ("copilot.microsoft.com", "Referral"),
}


def test_assistant_referrers_become_touchpoints(bus, tmp_path):
    """chatgpt.com once raised StopIteration in the channel rules, and the normalise
    stage replayed the same batch for ever."""
    for referrer, (name, _) in ASSISTANTS.items():
        produce(bus, CLICKS, clicks([name] * 3, referrer, tag=name), "anonymous_id")
    running = Running(NormaliseStage(Settings()), bus, tmp_path / "rt")
    try:
        assert wait_until(lambda: len(touchpoint_names(bus)) >= 3 * len(ASSISTANTS), 60)
    finally:
        running.close()
    touchpoints = [
        r.value["touchpoint"]
        for r in read_topic(bus, STITCHED, STITCHED)
        if r.value["kind"] == "touchpoint"
    ]
    assert len(touchpoints) == 3 * len(ASSISTANTS)
    assert {(t["event_name"], t["channel"]) for t in touchpoints} == set(ASSISTANTS.values())
    assert read_topic(bus, DLQ, DLQ) == []


def test_a_timer_that_raises_is_skipped_and_touchpoints_still_flow(bus, tmp_path):
    produce(bus, CLICKS, clicks([f"Viewed {i}" for i in range(10)]), "anonymous_id")
    normalise = Running(NormaliseStage(Settings()), bus, tmp_path / "n")
    journeys = Running(FailingTimers(Settings()), bus, tmp_path / "j")
    try:
        assert wait_until(lambda: len(read_topic(bus, TOUCHPOINTS, TOUCHPOINTS)) >= 10, 60)
        assert journeys.runner.halted is None and journeys.thread.is_alive()
    finally:
        normalise.close()
        journeys.close()
    assert len(read_topic(bus, TOUCHPOINTS, TOUCHPOINTS)) == 10


def test_a_stage_whose_records_mostly_fail_halts_and_says_why(bus, tmp_path):
    produce(bus, CLICKS, clicks(["Poison"] * 30), "anonymous_id")
    running = Running(BuggyNormalise(Settings()), bus, tmp_path / "rt", dlq_window=10)
    try:
        assert wait_until(lambda: running.runner.halted is not None, 60)
        running.thread.join(timeout=30)
        assert not running.thread.is_alive()  # the stage stopped, the process did not
        ready, reason = runners_ready([running.runner])
    finally:
        running.close()
    assert not ready
    assert reason.startswith("normalise halted: stage normalise halted: ")
    assert "records were invalid" in reason
    assert committed(bus, "journeybus-normalise", CLICKS) == 0  # nothing skipped
