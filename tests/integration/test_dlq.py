"""`journeybus dlq list` and `dlq replay` against a real broker's dead-letter topics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from connectors.generator.population import PopulationGenerator
from connectors.testing import read_topic
from streams.core.codec import make_codec
from streams.core.errors import InvalidRecord
from streams.core.jsonavro import to_json
from streams.core.settings import Settings
from streams.runtime.deadletter import dead_letter_record, dead_letter_topic

ROOT = Path(__file__).resolve().parents[2]
CLICKS, SOCIAL = "cust.clickstream.raw.v1", "cust.social.raw.v1"


def journeybus(bootstrap: str, tmp_path: Path, *args: str) -> str:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "JOURNEYBUS__RUNTIME_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def dead_letters(bus: str):
    """Four dead letters: two stage letters (Avro originals), a source letter in the
    topic's JSON form, and a Segment call only the collector can read."""
    codec = make_codec(Settings())
    events = PopulationGenerator(20, seed=3).generate()
    click = next(e for e in events if e.topic == CLICKS and not e.invalid)
    click2 = next(e for e in events if e.topic == CLICKS and not e.invalid and e is not click)
    social = next(e for e in events if e.topic == SOCIAL and not e.invalid)
    letters = [
        dead_letter_record(
            stage="normalise",
            source_topic=CLICKS,
            error=InvalidRecord("unknown_event_type", "not mapped yet"),
            original=codec.encode(CLICKS, click.record),
            original_format="avro",
            partition=0,
            offset=11,
            key=click.key.encode(),
            event_id=click.record["event_id"],
        ),
        dead_letter_record(
            stage="normalise",
            source_topic=CLICKS,
            error=InvalidRecord("impossible_timestamp", "too far in the future"),
            original=codec.encode(CLICKS, click2.record),
            original_format="avro",
            key=click2.key.encode(),
            event_id=click2.record["event_id"],
        ),
        dead_letter_record(
            stage="social-file",
            source_topic=SOCIAL,
            error=InvalidRecord("schema_violation", "a field the old schema lacked"),
            original=orjson.dumps(to_json(social.record)),
            original_format="json",
        ),
        dead_letter_record(
            stage="http-collector",
            source_topic=CLICKS,
            error=InvalidRecord("missing_id", "no anonymousId or userId"),
            original=orjson.dumps({"type": "track", "event": "Product Viewed"}),
            original_format="json",
        ),
    ]
    producer = Producer({"bootstrap.servers": bus})
    for letter in letters:
        topic = dead_letter_topic(letter["source_topic"])
        producer.produce(topic, codec.encode(topic, letter))
    assert producer.flush(30) == 0
    return {"click": click, "click2": click2, "social": social}


def test_list_counts_dead_letters_per_topic_and_reason(bus, dead_letters, tmp_path):
    out = journeybus(bus, tmp_path, "dlq", "list")
    rows = {tuple(line.split()) for line in out.splitlines()}
    assert (f"{CLICKS}.dlq", "unknown_event_type", "1") in rows
    assert (f"{CLICKS}.dlq", "impossible_timestamp", "1") in rows
    assert (f"{CLICKS}.dlq", "missing_id", "1") in rows
    assert (f"{SOCIAL}.dlq", "schema_violation", "1") in rows
    only = journeybus(bus, tmp_path, "dlq", "list", "--reason", "missing_id", "--show", "5")
    assert "(1 row)" in only and "no anonymousId or userId" in only


def test_a_dry_run_counts_and_publishes_nothing(bus, dead_letters, tmp_path):
    out = journeybus(bus, tmp_path, "dlq", "replay", "--dry-run")
    assert "would replay 3 of 4 dead letters" in out
    assert "not replayable      1" in out and "schema_violation" in out
    assert read_topic(bus, CLICKS, CLICKS) == [] and read_topic(bus, SOCIAL, SOCIAL) == []


def test_replay_sends_originals_back_to_their_source_topics(bus, dead_letters, tmp_path):
    out = journeybus(bus, tmp_path, "dlq", "replay", "--reason", "unknown_event_type")
    assert "replayed 1 of 1 dead letters" in out
    (replayed,) = read_topic(bus, CLICKS, CLICKS)
    click = dead_letters["click"]
    assert replayed.key == click.key
    assert replayed.value["event_id"] == click.record["event_id"]

    out = journeybus(bus, tmp_path, "dlq", "replay", "--topic", SOCIAL)
    assert "replayed 1 of 1 dead letters" in out
    (social,) = read_topic(bus, SOCIAL, SOCIAL)
    assert social.value["event_id"] == dead_letters["social"].record["event_id"]
    assert social.value["text"] == dead_letters["social"].record["text"]
