"""Consumers that keep their own offsets know which log they are offsets in: after the
broker came back without its log (memory storage), a stateful stage and the sink say
so and read the new log from its beginning, keeping their state and rows, where they
used to wait, silently, for the new log to grow past their old offsets."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from connectors.testing import read_topic
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.settings import Settings
from streams.profiles.stage import ProfilesStage
from streams.runtime.stage import StageRunner
from tests.polling import wait_until
from tests.sinkhelpers import TOUCHPOINTS, SinkThread, produce, touchpoints

pytestmark = pytest.mark.broker

PROFILES = "cust.profiles.v1"


def start_bus(port: int = 0) -> EmbeddedBroker:
    broker = EmbeddedBroker(port=port)
    broker.start()
    create_topics(
        admin_client({"bootstrap.servers": broker.bootstrap}), default_catalog().topics.values()
    )
    return broker


@pytest.fixture
def restarted() -> Iterator[list[EmbeddedBroker]]:
    """A memory broker, and (``restart``) the same address with an empty log."""
    brokers = [start_bus()]
    yield brokers
    for broker in brokers:
        broker.stop()


def restart(brokers: list[EmbeddedBroker]) -> str:
    port = brokers[-1].port
    brokers[-1].stop()
    brokers.append(start_bus(port))
    return brokers[-1].bootstrap


def changes(consumer: str, topic: str) -> float:
    value = REGISTRY.get_sample_value(
        "journeybus_log_changes_total", {"consumer": consumer, "topic": topic}
    )
    return value or 0.0


def rows(sink: SinkThread) -> int:
    import duckdb

    try:
        with duckdb.connect(str(sink.conf.snapshot), read_only=True) as db:
            return db.execute("SELECT count(*) FROM touchpoints").fetchone()[0]
    except duckdb.Error:
        return 0


def test_the_sink_reads_a_new_log_from_its_beginning(tmp_path, restarted):
    produce(restarted[-1].bootstrap, TOUCHPOINTS, touchpoints(200), "customer_key")
    with SinkThread(tmp_path, restarted[-1].bootstrap) as sink:
        assert sink.wait_consumed(TOUCHPOINTS, 200)
    before = changes("sink", TOUCHPOINTS)
    bootstrap = restart(restarted)
    produce(bootstrap, TOUCHPOINTS, touchpoints(20, prefix="new"), "customer_key")
    with SinkThread(tmp_path, bootstrap) as sink:
        assert wait_until(lambda: rows(sink) == 220, 60), rows(sink)
    assert changes("sink", TOUCHPOINTS) > before  # said, per partition that moved


class Profiles:
    def __init__(self, bootstrap: str, root) -> None:
        settings = Settings(runtime_dir=root)
        codec = make_codec(settings)
        stage = ProfilesStage(Settings())
        stage.attach_erasures(codec, settings, bootstrap)
        stage.attach_side_inputs(codec, settings, bootstrap)
        self.runner = StageRunner(stage, settings, bootstrap, codec)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.runner.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Profiles:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def profiled(bootstrap: str) -> set[str]:
    return {r.value["customer_key"] for r in read_topic(bootstrap, PROFILES, PROFILES)}


def test_a_stateful_stage_reads_a_new_log_from_its_beginning_and_keeps_its_state(
    tmp_path, restarted
):
    old = touchpoints(200)
    produce(restarted[-1].bootstrap, TOUCHPOINTS, old, "customer_key")
    customers = {t["customer_key"] for t in old}
    with Profiles(restarted[-1].bootstrap, tmp_path / "rt"):
        assert wait_until(lambda: profiled(restarted[-1].bootstrap) == customers, 60)
    before = changes("profiles", TOUCHPOINTS)
    bootstrap = restart(restarted)
    new = [{**t, "customer_key": f"new-{i}"} for i, t in enumerate(touchpoints(8, "new"))]
    again = {**old[0], "touchpoint_id": "tp-again"}  # a known customer: state kept
    produce(bootstrap, TOUCHPOINTS, [*new, again], "customer_key")
    with Profiles(bootstrap, tmp_path / "rt"):
        want = {t["customer_key"] for t in new} | {again["customer_key"]}
        assert wait_until(lambda: profiled(bootstrap) == want, 60), profiled(bootstrap)
    assert changes("profiles", TOUCHPOINTS) > before
    (kept,) = [
        r.value
        for r in read_topic(bootstrap, PROFILES, PROFILES)
        if r.value["customer_key"] == again["customer_key"]
    ]
    assert kept["version"] > 1  # built on the profile of the old log, not started again
