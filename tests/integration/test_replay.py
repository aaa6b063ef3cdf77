"""``journeybus replay`` of JSON Lines, CSV and Parquet files onto the real broker."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import uuid

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.testing import example_records, read_topic
from streams.runtime.deadletter import dead_letter_topic

pytestmark = pytest.mark.broker

SOCIAL = "cust.social.raw.v1"
MESSAGING = "cust.messaging.raw.v1"


@pytest.fixture
def prefix(bootstrap: str) -> str:
    prefix = f"replay.{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [prefix + t for topic in (SOCIAL, MESSAGING) for t in (topic, dead_letter_topic(topic))]
    for future in admin.create_topics([NewTopic(n, 2, 1) for n in names]).values():
        future.result(timeout=30)
    return prefix


def _replay(bootstrap: str, prefix: str, *args: str) -> str:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CONNECTORS__REPLAY__TOPIC_PREFIX": prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.app.cli", "replay", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout + done.stderr


def test_jsonl_replay_counts_and_dead_letters(bootstrap, prefix, tmp_path):
    good = example_records(SOCIAL, 0, 50, "jl")
    bad_schema = {**good[0], "event_id": "jl-bad", "followers": "many"}
    lines = [orjson.dumps(r) for r in good] + [b"{not json", orjson.dumps(bad_schema), b""]
    path = tmp_path / "social.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    out = _replay(bootstrap, prefix, str(path), "--topic", SOCIAL, "--batch-size", "7")

    assert "50 accepted, 2 rejected" in out
    records = read_topic(bootstrap, prefix + SOCIAL, SOCIAL)
    assert sorted(r.value["event_id"] for r in records) == sorted(r["event_id"] for r in good)
    assert all(r.key == r.value["handle"] for r in records)
    letters = read_topic(bootstrap, prefix + dead_letter_topic(SOCIAL), dead_letter_topic(SOCIAL))
    assert sorted(d.value["error_type"] for d in letters) == ["invalid_json", "schema_violation"]
    assert b"many" in next(d.value["original"] for d in letters if d.value["event_id"])


def test_csv_and_parquet_replay(bootstrap, prefix, tmp_path):
    rows = example_records(MESSAGING, 0, 20, "cs")
    path = tmp_path / "messaging.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    assert "20 accepted, 0 rejected" in _replay(bootstrap, prefix, str(path), "--topic", MESSAGING)

    social = example_records(SOCIAL, 0, 30, "pq")
    social[3]["occurred_at"] = "not a time"
    parquet = tmp_path / "social.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "campaign": None} for r in social]), parquet)
    assert "29 accepted, 1 rejected" in _replay(bootstrap, prefix, str(parquet), "--topic", SOCIAL)

    messages = read_topic(bootstrap, prefix + MESSAGING, MESSAGING)
    assert sorted(m.value["event_id"] for m in messages) == sorted(r["event_id"] for r in rows)
    assert len(read_topic(bootstrap, prefix + SOCIAL, SOCIAL)) == 29
