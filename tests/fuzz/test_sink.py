"""The DuckDB sink against records valid for every topic it reads (``avro_values``): a
real database file, a real broker for its dead letters. Nothing escapes, and every
record becomes a row of each table its topic feeds or a dead letter: one the native
decoder cannot convert, or a row DuckDB refuses, is ``table_refused``; none is an
``internal_error``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sinks.duckdb.sink import DuckDBSink, DuckDBSinkSettings
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from streams.core.topics import ERASURE
from streams.runtime.stage import produce_outputs
from tests.fuzz.avro_values import records

pytestmark = pytest.mark.broker

CODEC = make_codec(Settings())
SINK_TOPICS = sorted(
    t
    for t in {topic for table in DuckDBSink(Settings()).tables for topic in table.topics}
    if t != ERASURE
)
OFFSETS = itertools.count()  # unique per record, so each dead letter names its record


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBSink]:
    root = tmp_path_factory.mktemp("sink-fuzz")
    with EmbeddedBroker() as broker:
        create_topics(
            admin_client({"bootstrap.servers": broker.bootstrap}),
            default_catalog().topics.values(),
        )
        conf = DuckDBSinkSettings(database=root / "f.duckdb", snapshot=root / "r.duckdb")
        sink = DuckDBSink(Settings(runtime_dir=root), broker.bootstrap, conf)
        sink.setup()
        producer = make_producer(sink.settings, broker.bootstrap)

        def publish(outputs: list) -> None:  # what the runner does with dead letters
            produce_outputs(producer, sink.codec, outputs, "sink", lambda err, _: None)
            assert producer.flush(30) == 0

        sink.bind(sink.erasures, sink.policy, publish)
        try:
            yield sink
            (dead,) = sink.db.execute(
                "SELECT count(*) FROM dead_letters WHERE stage = 'sink'"
            ).fetchone()
            reasons = sink.db.execute(
                "SELECT error_type, count(*) FROM dead_letters WHERE stage = 'sink' "
                "GROUP BY ALL ORDER BY 1"
            ).fetchall()
            print(
                f"\nfuzz sink: {next(OFFSETS):,} records, {dead:,} dead-lettered "
                f"({', '.join(f'{r} {n:,}' for r, n in reasons)})"
            )
        finally:
            sink.close()


def messages(topic: str, batch: list[dict]) -> list[Message]:
    codec = CODEC.for_topic(topic)
    now = int(time.time() * 1000)
    return [
        Message(
            topic=topic,
            partition=0,
            offset=next(OFFSETS),
            key=b"k",
            value=codec.encode(record),
            timestamp=(1, now),
        )
        for record in batch
    ]


def landed(sink: DuckDBSink, msg: Message, record: dict) -> bool:
    """Whether ``record`` is a row of every plain table its topic feeds, or a dead letter."""
    db = sink.db
    (dead,) = db.execute(
        "SELECT count(*) FROM dead_letters WHERE source_topic = ? AND source_offset = ?",
        [msg.topic(), msg.offset()],
    ).fetchone()
    if dead:
        return True
    for table in sink.by_topic[msg.topic()]:
        if table.explode:
            continue  # rows of an array field: none for an empty array
        where = " AND ".join(f'"{k}" IS NOT DISTINCT FROM ?' for k in table.key)
        (rows,) = db.execute(
            f'SELECT count(*) FROM "{table.name}" WHERE {where}', [record[k] for k in table.key]
        ).fetchone()
        if not rows:
            return False
    return True


# The profile's examples are per stage: the sink's are shared by the topics it reads.
PER_TOPIC = max(10, settings.default.max_examples // len(SINK_TOPICS))


@pytest.mark.parametrize("topic", SINK_TOPICS)
def test_every_record_becomes_rows_or_a_dead_letter(sink, topic):
    @settings(max_examples=PER_TOPIC)
    @given(batch=st.lists(records(topic), min_size=1, max_size=6))
    def check(batch):
        msgs = messages(topic, batch)
        sink.write_now(msgs)
        missing = [r for m, r in zip(msgs, batch, strict=True) if not landed(sink, m, r)]
        assert not missing, missing[0]
        # a refused row is data the table cannot hold, never an exception of the sink's own
        (bugs,) = sink.db.execute(
            "SELECT count(*) FROM dead_letters WHERE stage = 'sink' AND "
            "error_type = 'internal_error'"
        ).fetchone()
        assert bugs == 0

    check()


@given(batch=st.lists(records(ERASURE), min_size=1, max_size=4))
def test_any_erasure_request_is_applied_or_dead_lettered(sink, batch):
    msgs = messages(ERASURE, batch)
    sink.write_now(msgs)
    for msg, request in zip(msgs, batch, strict=True):
        (logged,) = sink.db.execute(
            "SELECT count(*) FROM erasures WHERE request_id = ?", [request["request_id"]]
        ).fetchone()
        (dead,) = sink.db.execute(
            "SELECT count(*) FROM dead_letters WHERE source_topic = ? AND source_offset = ?",
            [ERASURE, msg.offset()],
        ).fetchone()
        assert logged or dead, request
