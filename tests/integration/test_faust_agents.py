"""Faust agents on the toolkit, on a real embedded broker: the README's example, the two
examples teams copy, dead letters, a scaffolded agent's own test, and kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.core.codec import RegistrySchemaSource, make_codec
from streams.core.settings import SchemaRegistrySettings, Settings
from streams.core.topics import PROFILES, SCORES, TOUCHPOINTS
from streams.faust.codec import avro_codec
from streams.faust.testing import (
    AgentWorker,
    bus_broker,
    catalogue_codec,
    example_records,
    publish,
    read_topic,
)
from streams.faust.topics import model_of_schema
from tests.integration.test_schema_registry import registry  # noqa: F401 (fixture)

pytestmark = pytest.mark.broker
ROOT = Path(__file__).parents[2]
ALERTS = "team.high-value-alerts.v1"
PROFILED = "team.profiled-touchpoints.v1"


@pytest.fixture
def bootstrap(tmp_path):
    """A broker of its own per test (the example apps' consumer groups start afresh),
    with the catalogue's partition counts (a Faust table checks its source's)."""
    with bus_broker(log_path=tmp_path / "tansu.log") as bootstrap:
        yield bootstrap


def scores(n: int, high: set[int]) -> list[dict]:
    (example, *_) = example_records(SCORES)
    typical = example["typical_expected_value_365d"]
    return [
        {
            **example,
            "score_id": f"score-{i}",
            "customer_key": f"cust-{i}",
            "expected_value_365d": typical * (3.0 if i in high else 1.2),
        }
        for i in range(n)
    ]


def touchpoints(customers: list[str], per_customer: int, tag: str = "") -> list[dict]:
    (example, *_) = example_records(TOUCHPOINTS)
    return [
        {**example, "touchpoint_id": f"tp{tag}-{c}-{n}", "customer_key": c}
        for c in customers
        for n in range(per_customer)
    ]


def worker(module: str, bootstrap: str, tmp_path: Path, cwd: Path = ROOT) -> AgentWorker:
    return AgentWorker(module, bootstrap, cwd=cwd, log_path=tmp_path / f"{module}.log")


def test_readme_example_decodes_every_record_with_the_models(bootstrap, tmp_path):
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- faust-example -->\s*```python\n(.*?)```", readme, re.S)
    assert found, "the README's Faust example is marked <!-- faust-example -->"
    (tmp_path / "my_subscriber.py").write_text(found.group(1))
    records = touchpoints([f"c{i}" for i in range(10)], 5)
    publish(bootstrap, TOUCHPOINTS, records)
    agent = worker("my_subscriber", bootstrap, tmp_path, cwd=tmp_path)
    log = tmp_path / "my_subscriber.log"
    with agent:
        deadline = time.monotonic() + 60
        printed: list[dict] = []
        while time.monotonic() < deadline and len(printed) < len(records):
            time.sleep(0.5)
            lines = log.read_text().splitlines() if log.exists() else []
            # Faust's worker logs what the agent prints (a log line prefix, then the JSON)
            printed = [json.loads(line[line.index("{") :]) for line in lines if "{" in line]
        assert agent.alive()
    assert sorted(p["touchpoint_id"] for p in printed) == sorted(
        r["touchpoint_id"] for r in records
    )
    # the example prints fields of the model (a nested one among them)
    assert {p["channel"] for p in printed} == {records[0]["channel"]}
    assert {p["device"] for p in printed} == {records[0]["device"]["type"]}


def test_high_value_alerts_example(bootstrap, tmp_path):
    high = {i for i in range(60) if i % 3 == 0}
    publish(bootstrap, SCORES, scores(30, high))
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(SCORES, b"\x00\x00\x00\x03\xe7not avro", b"cust-poison", partition=0)
    producer.flush(10)
    publish(bootstrap, SCORES, scores(60, high)[30:])  # after the poison record
    with worker("examples.agents.high_value_alerts", bootstrap, tmp_path) as agent:
        found = read_topic(bootstrap, ALERTS, count=len(high), timeout_s=90, settle_s=2)
        dead = read_topic(bootstrap, f"{SCORES}.dlq", count=1, timeout_s=30)
        assert agent.alive()
    alerts = {value["alert_id"]: value for _, value in found}
    assert sorted(alerts) == sorted(f"score-{i}" for i in high)
    assert all(value["ratio"] == 3.0 for value in alerts.values())
    assert all(key == value["customer_key"] for key, value in found)
    ((_, letter),) = dead
    assert letter["error_type"] == "decode_error"
    assert letter["stage"] == "example-high-value-alerts"
    assert (letter["source_topic"], letter["source_partition"]) == (SCORES, 0)
    assert letter["original"] == b"\x00\x00\x00\x03\xe7not avro"


def test_touchpoint_profiles_example_joins_and_keeps_its_table_after_kill(bootstrap, tmp_path):
    (profile, *_) = example_records(PROFILES)
    customers = [f"cust-{i}" for i in range(8)]

    def profile_of(customer: str, version: int, channel: str) -> dict:
        attributes = [
            {**a, "value": channel} if a["name"] == "preferred_channel" else a
            for a in profile["attributes"]
        ]
        if not any(a["name"] == "preferred_channel" for a in attributes):
            attributes.append({**profile["attributes"][0], "name": "preferred_channel"})
            attributes[-1]["value"] = channel
        return {**profile, "customer_key": customer, "version": version, "attributes": attributes}

    # version 2 says email; a late version 1 (push) must not replace it
    publish(bootstrap, PROFILES, [profile_of(c, 2, "email") for c in customers])
    publish(bootstrap, PROFILES, [profile_of(c, 1, "push") for c in customers])
    changelog = "example-touchpoint-profiles-profiles-changelog"
    agent = worker("examples.agents.touchpoint_profiles", bootstrap, tmp_path).start()
    try:
        assert len(read_topic(bootstrap, changelog, count=len(customers), timeout_s=60)) >= 8
        first = touchpoints(customers, 2, "a")
        publish(bootstrap, TOUCHPOINTS, first)
        out = read_topic(bootstrap, PROFILED, count=len(first), timeout_s=60)
        assert sorted(v["touchpoint_id"] for _, v in out) == sorted(
            r["touchpoint_id"] for r in first
        )
        assert {(v["profile_version"], v["preferred_channel"]) for _, v in out} == {(2, "email")}
        # kill -9: a new worker restores the table from its changelog
        agent.kill()
        agent = worker("examples.agents.touchpoint_profiles", bootstrap, tmp_path).start()
        second = touchpoints(customers, 1, "b")
        publish(bootstrap, TOUCHPOINTS, second)
        wanted = {r["touchpoint_id"] for r in second}

        def all_of_second(found: list) -> bool:
            return wanted <= {v["touchpoint_id"] for _, v in found}

        # the killed worker's uncommitted input is processed again (at least once), so
        # the output may hold duplicates of the first batch: wait for the second's ids
        out = read_topic(
            bootstrap, PROFILED, count=len(first) + len(second), timeout_s=90, until=all_of_second
        )
        after = [v for _, v in out if v["touchpoint_id"].startswith("tpb-")]
        assert sorted({v["touchpoint_id"] for v in after}) == sorted(wanted)
        assert {(v["profile_version"], v["preferred_channel"]) for v in after} == {(2, "email")}
        assert agent.alive()
    finally:
        agent.stop()


def test_a_record_the_agent_fails_on_is_dead_lettered_and_the_agent_goes_on(bootstrap, tmp_path):
    records = touchpoints(["c1"], 6)
    records[2]["touchpoint_id"] = "tp-c1-2-raise"
    publish(bootstrap, TOUCHPOINTS, records)
    with worker("tests.integration.faust_raising_agent", bootstrap, tmp_path) as agent:
        seen = read_topic(bootstrap, "test.raising-agent.seen.v1", count=5, timeout_s=60)
        dead = read_topic(bootstrap, f"{TOUCHPOINTS}.dlq", count=1, timeout_s=30)
        assert agent.alive()
    assert [v["touchpoint_id"] for _, v in seen] == [
        r["touchpoint_id"] for r in records if not r["touchpoint_id"].endswith("-raise")
    ]
    ((_, letter),) = dead
    assert letter["error_type"] == "internal_error"
    assert "ValueError: cannot handle tp-c1-2-raise" in letter["error_message"]
    assert letter["stage"] == "test-raising-agent"


def test_a_scaffolded_agent_passes_its_own_test(tmp_path):
    directory = tmp_path / "agents"
    made = subprocess.run(
        [sys.executable, "-m", "streams.app.cli", "agent", "new", "vip_alerts",
         "--topic", SCORES, "--dir", str(directory)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (directory / "vip_alerts.py").exists()
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        capture_output=True, text=True, cwd=directory, timeout=300,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout


def test_kill_9_of_an_agent_loses_no_output(bootstrap, tmp_path):
    """Every high-value score gets its alert although the worker is killed mid-run;
    duplicates (Faust's at-least-once) are counted, and are the same alert."""
    n = 12_000
    published = scores(n, set(range(n)))
    publish(bootstrap, SCORES, published)
    module = "examples.agents.high_value_alerts"
    agent = worker(module, bootstrap, tmp_path).start()
    try:
        progress = read_topic(bootstrap, ALERTS, count=2_000, timeout_s=120)
        assert len(progress) >= 2_000
        agent.kill()
        agent = worker(module, bootstrap, tmp_path).start()
        every_score = {r["score_id"] for r in published}
        found = read_topic(
            bootstrap,
            ALERTS,
            count=n,
            timeout_s=240,
            settle_s=3,
            until=lambda found: every_score <= {v["alert_id"] for _, v in found},
        )
        assert agent.alive()
    finally:
        agent.stop()
    ids = Counter(value["alert_id"] for _, value in found)
    assert set(ids) == every_score  # nothing lost
    duplicates = sum(ids.values()) - len(ids)
    print(f"kill -9 after {len(progress)} alerts: {n} alerts, {duplicates} duplicates")
    assert duplicates < n


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` has committed on ``topic``, by partition (those it has)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in partitions]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)
                if tp.offset >= 0}  # fmt: skip
    finally:
        consumer.close()


def test_a_message_still_in_flight_is_not_committed_past(bootstrap, tmp_path):
    """faust-streaming 0.15.3 commits past the oldest message of a partition when it is
    still being handled and the later ones are done (faust-streaming/faust#606), so a
    kill then loses it. The bus's transport commits no further than the oldest message
    in flight: while it is slow nothing is committed past it, and after kill -9 the
    restarted worker handles it."""
    records = touchpoints(["c1"], 21)
    records[0]["touchpoint_id"] = slow = "tp-c1-0-slow"
    publish(bootstrap, TOUCHPOINTS, records)
    module, seen = "tests.integration.faust_slow_head_agent", "test.slow-head-agent.seen.v1"
    agent = worker(module, bootstrap, tmp_path).start()
    try:
        done = read_topic(bootstrap, seen, count=20, timeout_s=60)
        assert slow not in {v["touchpoint_id"] for _, v in done}
        # Faust commits every 2.8 s (commit_interval): watch three of its commits
        highest: dict[int, int] = {}
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline:
            for partition, offset in committed_offsets(bootstrap, "test-slow-head-agent",
                                                       TOUCHPOINTS).items():  # fmt: skip
                highest[partition] = max(offset, highest.get(partition, 0))
            time.sleep(0.5)
        assert highest == {} or set(highest.values()) == {0}, highest  # slow one: offset 0
        agent.kill()
        agent = AgentWorker(module, bootstrap, cwd=ROOT, env={"SLOW_HEAD_S": "0"},
                            log_path=tmp_path / "restarted.log").start()  # fmt: skip
        after = read_topic(
            bootstrap, seen, count=21, timeout_s=60,
            until=lambda f: slow in {v["touchpoint_id"] for _, v in f},
        )  # fmt: skip
    finally:
        agent.stop()
    assert slow in {v["touchpoint_id"] for _, v in after}


def test_agent_run_runs_a_scaffolded_agent_until_ctrl_c(bootstrap, tmp_path):
    cli = [sys.executable, "-m", "streams.app.cli", "agent"]
    new = subprocess.run([*cli, "new", "vip", "--topic", SCORES], cwd=tmp_path, timeout=60)
    assert new.returncode == 0
    records = example_records(SCORES)
    publish(bootstrap, SCORES, records)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    with (tmp_path / "run.log").open("w") as log:
        run = subprocess.Popen(
            [*cli, "run", "vip"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            found = read_topic(bootstrap, "agents.vip.v1", count=len(records), timeout_s=60)
        finally:
            run.send_signal(signal.SIGINT)
            code = run.wait(30)
    assert sorted(v["source_id"] for _, v in found) == sorted(r["score_id"] for r in records)
    assert code == 0  # Ctrl-C stops the worker cleanly
    missing = subprocess.run(
        [*cli, "run", "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode != 0
    assert "no agent 'nope'" in missing.stderr


def test_the_codec_takes_schema_ids_from_a_registry(registry):  # noqa: F811
    """With SCHEMA_REGISTRY_URL set, an app's codec gets schema ids from the registry
    (here the catalogue's own, served by `journeybus registry serve`): the same bytes."""
    settings = Settings(schema_registry=SchemaRegistrySettings(url=registry))
    through_registry = make_codec(settings)
    assert isinstance(through_registry.source, RegistrySchemaSource)
    from_catalogue = catalogue_codec()
    for topic in (SCORES, TOUCHPOINTS, PROFILES):
        codec = avro_codec(through_registry, topic)
        for record in example_records(topic):
            written = from_catalogue.encode(topic, record)
            model = model_of_schema(from_catalogue.catalog.value_schema(topic).raw)
            value = model.from_data(codec.loads(written), preferred_type=model)
            assert codec.dumps(value) == written
