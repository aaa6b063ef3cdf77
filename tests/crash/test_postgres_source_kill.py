"""kill -9 of the PostgreSQL fulfilment source during capture, then restart: nothing lost,
the same event id every time an event is re-sent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.generator.oms import SampleOrders, write_sample_orders
from connectors.sources.postgres_fulfillment import FulfillmentSettings
from connectors.testing import read_topic
from streams.runtime.deadletter import dead_letter_topic
from tests.polling import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

TOPIC = "cust.fulfillment.raw.v1"
DSN = FulfillmentSettings().dsn.get_secret_value()


def test_kill_9_during_capture_loses_nothing_and_keeps_event_ids(bootstrap, tmp_path):
    schema = f"kill_{uuid.uuid4().hex[:8]}"
    prefix = f"pgkill.{uuid.uuid4().hex[:8]}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(prefix + t, 3, 1) for t in (TOPIC, dead_letter_topic(TOPIC))]
    ).values():
        future.result(timeout=30)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "JOURNEYBUS__RUNTIME_DIR": str(tmp_path / "rt"),
        "CONNECTORS__POSTGRES_FULFILLMENT__SCHEMA_NAME": schema,
        "CONNECTORS__POSTGRES_FULFILLMENT__TOPIC_PREFIX": prefix,
        "CONNECTORS__POSTGRES_FULFILLMENT__BATCH_MAX_RECORDS": "40",
        "CONNECTORS__POSTGRES_FULFILLMENT__POLL_INTERVAL_S": "0.05",
    }
    command = [sys.executable, "-m", "streams.app.cli", "connector", "run", "postgres-fulfillment"]
    log = (tmp_path / "source.log").open("ab")

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)

    # Orders are written in waves until the source has been killed three times, each
    # kill right after the source committed progress: mid-capture by construction.
    written = SampleOrders()
    kills_done = threading.Event()

    def write() -> None:
        wave = 0
        while not kills_done.is_set() and wave < 40:
            part = write_sample_orders(DSN, schema, 40, seed=wave, first=wave * 40)
            written.events.update(part.events)
            wave += 1
            time.sleep(0.3)
        # one more wave after the last kill: the last process has orders of its own
        # to capture (else the last kill may have come after the end of the capture)
        part = write_sample_orders(DSN, schema, 40, seed=wave, first=wave * 40)
        written.events.update(part.events)

    writer = threading.Thread(target=write, daemon=True)
    with psycopg.connect(DSN, autocommit=True) as conn:
        from connectors.sources.postgres_fulfillment import install_schema

        install_schema(conn, schema)

    def cursor() -> int | None:
        with psycopg.connect(DSN, autocommit=True) as conn:
            row = conn.execute(f"SELECT seq FROM {schema}.journeybus_cursor").fetchone()
        return row[0] if row else None

    proc = start()
    writer.start()
    cursors: list[int] = []  # where the source stood at each kill
    try:
        for _ in range(3):
            last = cursors[-1] if cursors else None
            assert wait_until(lambda last=last: cursor() not in (None, last), 60), "no progress"
            time.sleep(random.uniform(0, 0.3))
            cursors.append(cursor())
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = start()
        kills_done.set()
        writer.join()

        def captured() -> bool:
            ids = {r.value["event_id"] for r in read_topic(bootstrap, prefix + TOPIC, TOPIC)}
            return set(written.events) <= ids

        if not wait_until(captured, 180):
            ids = {r.value["event_id"] for r in read_topic(bootstrap, prefix + TOPIC, TOPIC)}
            from0 = _read_from_zero(bootstrap, prefix + TOPIC)
            raise AssertionError(
                f"events were lost: {diagnosis(schema, written, ids, proc)}; "
                f"read from offset 0: {len(set(written.events) - from0)} missing; {from0.lows}"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    records = read_topic(bootstrap, prefix + TOPIC, TOPIC)
    copies: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        copies[record.value["event_id"]].append(record.value)
    assert set(copies) == set(written.events), "only the written events, each at least once"
    for event_id, same in copies.items():
        # a re-sent event is the same event: same id, same position, same content
        stable = [{k: v for k, v in c.items() if k != "captured_at"} for c in same]
        assert all(s == stable[0] for s in stable), event_id
    assert all(r.key == written.events[r.value["event_id"]] for r in records), "keyed by customer"
    last_seq = max(int(r.value["source_position"].split(":")[1]) for r in records)
    assert len(set(cursors)) == 3 and max(cursors) < last_seq, "killed mid-capture"
    assert read_topic(bootstrap, prefix + dead_letter_topic(TOPIC), dead_letter_topic(TOPIC)) == []


def diagnosis(schema: str, written: SampleOrders, ids: set[str], proc) -> str:
    """What a failed capture looked like: what is missing, where the source stands, and
    what could hold the snapshot xmin back (a transaction left open anywhere)."""
    missing = sorted(set(written.events) - ids)
    with psycopg.connect(DSN, autocommit=True) as conn:
        cursor = conn.execute(f"SELECT txid::text, seq FROM {schema}.journeybus_cursor").fetchall()
        xmin = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
        pending = conn.execute(
            "SELECT count(*), min(o.txid)::text, max(o.txid)::text "
            f"FROM {schema}.journeybus_outbox o, {schema}.journeybus_cursor c "
            "WHERE (o.txid, o.seq) > (c.txid, c.seq)"
        ).fetchone()
        open_xacts = conn.execute(
            "SELECT pid, state, backend_xid::text, backend_xmin::text, left(query, 80) "
            "FROM pg_stat_activity WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL"
        ).fetchall()
    return (
        f"{len(missing)} missing (e.g. {missing[:5]}); source alive: {proc.poll() is None}; "
        f"cursor {cursor}; snapshot xmin {xmin}; outbox rows after the cursor {pending}; "
        f"sessions holding xids/xmin {open_xacts}"
    )


class _Ids(set):
    lows: dict


def _read_from_zero(bootstrap: str, topic: str) -> _Ids:
    """Event ids read from explicit offset 0 (not the broker's "earliest"), and the
    watermarks the broker reports: tells a lost record from a reader that skipped it."""
    from confluent_kafka import Consumer, TopicPartition

    from streams.core.codec import make_codec
    from streams.core.settings import Settings

    codec = make_codec(Settings()).for_topic(TOPIC)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"diag-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    ids = _Ids()
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ids.lows = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        quiet = time.monotonic()
        while time.monotonic() - quiet < 2:
            for msg in consumer.consume(1000, timeout=0.2):
                if not msg.error():
                    quiet = time.monotonic()
                    ids.add(codec.decode(msg.value())["event_id"])
        return ids
    finally:
        consumer.close()
