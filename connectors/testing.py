"""The contract every connector passes, as pytest classes to subclass in one line.

    class TestPostgresFulfillment(SourceContract):
        connector = PostgresFulfillmentSource

checks, against a real broker (the ``bootstrap`` fixture: journeybus's
``tests/conftest.py`` has one, other packages get it with
``pytest_plugins = ["connectors.testing"]``), that a source

- delivers every record it is fed, with the event ids the input implies,
- keys each record by customer (the topic's key field),
- survives a restart without loss (stopped after its first batch, restarted),
- dead-letters invalid input to ``<topic>.dlq`` with a reason, and goes on;

and that a sink writes every record, survives a restart without loss or
duplicates, and dead-letters records it cannot decode.

A **harness** drives the outside system: writes its input and reads its output.
The built-in connectors' harnesses are found by class (``harness_for``); a new
connector's test sets ``harness = MyHarness`` (``journeybus connector new``
writes one to fill in).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.base import Connector, Sink, Source
from connectors.settings import ConnectorSettings
from connectors.sinks.duckdb.sink import DuckDBSink
from connectors.sources.http_collector import HttpCollector
from connectors.sources.jsonl import JsonlFileSource
from connectors.sources.postgres_fulfillment import PostgresFulfillmentSource, install_schema
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.jsonavro import from_json
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from streams.core.topics import TOUCHPOINTS
from streams.runtime.deadletter import dead_letter_topic


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@dataclass
class Consumed:
    key: str | None
    value: dict[str, Any]


def read_topic(bootstrap: str, topic: str, schema_topic: str) -> list[Consumed]:
    """Every record of ``topic`` (one read from the beginning), decoded with the
    schema of catalogue topic ``schema_topic``."""
    codec = make_codec(Settings()).for_topic(schema_topic)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"contract-{uuid.uuid4().hex}"}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        consumer.assign(parts)
        out: list[Consumed] = []
        positions = {p: 0 for p in ends}
        deadline = time.monotonic() + 30
        last_message = time.monotonic()
        # Past the high watermark too, until a quiet moment: the embedded broker's
        # high watermark can be short by the last batch (BROKER-NOTES.md).
        while time.monotonic() < deadline and (
            any(positions[p] < ends[p] for p in ends) or time.monotonic() - last_message < 0.5
        ):
            for msg in consumer.consume(1000, timeout=0.1):
                if msg.error():
                    continue
                last_message = time.monotonic()
                positions[msg.partition()] = msg.offset() + 1
                key = msg.key().decode() if msg.key() else None
                out.append(Consumed(key, codec.decode(msg.value())))
        return out
    finally:
        consumer.close()


# -- harnesses -------------------------------------------------------------------------
class Harness:
    """Drives one connector's outside system for the contract tests."""

    #: the input can only be fed while the connector runs (an HTTP endpoint)
    feeds_while_running: ClassVar[bool] = False

    def __init__(self, connector: type[Connector], tmp_path: Path, prefix: str) -> None:
        self.connector = connector
        self.tmp_path = tmp_path
        self.prefix = prefix

    def settings(self) -> ConnectorSettings:
        """The connector's settings for this test (its own input, ``topic_prefix``)."""
        return self.connector.settings_class(topic_prefix=self.prefix, poll_interval_s=0.1)

    def feed(self, running: Connector | None, start: int, count: int) -> dict[str, str]:
        """Write ``count`` valid inputs; their event ids and expected keys."""
        raise NotImplementedError

    def feed_invalid(self, running: Connector | None) -> str:
        """Write one invalid input; the dead-letter reason it must get."""
        raise NotImplementedError

    def close(self) -> None:
        """Remove what the test created outside the broker."""


def example_records(topic: str, start: int, count: int, tag: str) -> list[dict[str, Any]]:
    """``count`` plain-JSON records of ``topic`` built from its first example, with
    distinct event ids and distinct keys (``<tag>-k<i>``)."""
    catalog = default_catalog()
    spec = catalog.topic(topic)
    base = catalog.examples(topic)[0][1]
    key_field = spec.key["field"]
    records = []
    for i in range(start, start + count):
        record = {**base, "event_id": f"{tag}-e{i}", key_field: f"{tag}-k{i}"}
        records.append(record)
    return records


class JsonlFileHarness(Harness):
    """For ``JsonlFileSource`` subclasses: appends lines to the followed file."""

    def settings(self) -> ConnectorSettings:
        self.path = self.tmp_path / "input.jsonl"
        self.tag = uuid.uuid4().hex[:6]
        return self.connector.settings_class(
            topic_prefix=self.prefix, poll_interval_s=0.1, path=self.path, batch_max_records=7
        )

    def _append(self, lines: list[bytes]) -> None:
        with self.path.open("ab") as handle:
            handle.write(b"".join(line + b"\n" for line in lines))

    def feed(self, running: Connector | None, start: int, count: int) -> dict[str, str]:
        records = example_records(self.connector.topic, start, count, self.tag)
        self._append([orjson.dumps(r) for r in records])
        key = default_catalog().topic(self.connector.topic).key["field"]
        return {r["event_id"]: r[key] for r in records}

    def feed_invalid(self, running: Connector | None) -> str:
        self._append([b'{"event_id": "broken", "platform": '])
        return "invalid_json"


class CollectorHarness(Harness):
    """For the HTTP collector: Segment batches from a web write key."""

    feeds_while_running = True
    WRITE_KEY = "contract-web"

    def settings(self) -> ConnectorSettings:
        self.tag = uuid.uuid4().hex[:6]
        return self.connector.settings_class(
            topic_prefix=self.prefix, port=0, write_keys={self.WRITE_KEY: "web"}
        )

    def _post(self, running: Connector | None, batch: list[dict]) -> httpx.Response:
        assert running is not None and running.started.wait(30)
        response = httpx.post(
            f"http://127.0.0.1:{running.port}/v1/batch",
            json={"batch": batch},
            auth=(self.WRITE_KEY, ""),
            timeout=30,
        )
        response.raise_for_status()
        return response

    def feed(self, running: Connector | None, start: int, count: int) -> dict[str, str]:
        batch = [
            {
                "type": "track",
                "event": "Product Viewed",
                "messageId": f"{self.tag}-e{i}",
                "anonymousId": f"{self.tag}-k{i}",
                "timestamp": "2026-11-01T12:00:00Z",
            }
            for i in range(start, start + count)
        ]
        self._post(running, batch)
        return {e["messageId"]: e["anonymousId"] for e in batch}

    def feed_invalid(self, running: Connector | None) -> str:
        self._post(running, [{"type": "track", "event": "No Ids", "messageId": "x"}])
        return "missing_id"


class PostgresHarness(Harness):
    """For the PostgreSQL fulfilment source: orders in a schema of the test's own."""

    def settings(self) -> ConnectorSettings:
        self.schema = f"contract_{uuid.uuid4().hex[:10]}"
        self.conf = self.connector.settings_class(
            topic_prefix=self.prefix,
            poll_interval_s=0.1,
            schema_name=self.schema,
            batch_max_records=7,
        )
        return self.conf

    def _connect(self):
        import psycopg

        conn = psycopg.connect(self.conf.dsn.get_secret_value(), autocommit=True)
        install_schema(conn, self.schema)
        return conn

    def feed(self, running: Connector | None, start: int, count: int) -> dict[str, str]:
        with self._connect() as conn, conn.transaction():
            for i in range(start, start + count):
                conn.execute(
                    f"INSERT INTO {self.schema}.orders (order_id, customer_id, order_total) "
                    "VALUES (%s, %s, 10)",
                    (f"o{i}", f"c{i}"),
                )
                conn.execute(
                    f"INSERT INTO {self.schema}.order_lines "
                    "(order_id, line_id, product_id, quantity, unit_price) "
                    "VALUES (%s, '1', 'p-1', 1, 10)",
                    (f"o{i}",),
                )
        return {f"ful-o{i}-order_placed": f"c{i}" for i in range(start, start + count)}

    def feed_invalid(self, running: Connector | None) -> str:
        # what a legacy writer bypassing the triggers could leave: an event without a customer
        with self._connect() as conn:
            conn.execute(
                f"INSERT INTO {self.schema}.journeybus_outbox "
                "(event_type, entity_id, payload, occurred_at) "
                """VALUES ('order_placed', 'o-bad', '{"order": {"order_id": "o-bad"}}', now())"""
            )
        return "missing_id"

    def close(self) -> None:
        import psycopg

        with psycopg.connect(self.conf.dsn.get_secret_value(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def harness_for(connector: type[Connector]) -> type[Harness]:
    """The built-in harness for ``connector`` (by its class)."""

    for base, harness in (
        (JsonlFileSource, JsonlFileHarness),
        (HttpCollector, CollectorHarness),
        (PostgresFulfillmentSource, PostgresHarness),
    ):
        if issubclass(connector, base):
            return harness
    raise TypeError(f"no built-in contract harness for {connector}; set `harness = ...`")


# -- running a connector in the test ---------------------------------------------------
class Running:
    """A connector in a thread; ``stop()`` ends it gracefully, failures are re-raised."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @classmethod
    def of(
        cls, connector: type[Connector], root: Path, bootstrap: str, conf: ConnectorSettings
    ) -> Running:
        """``connector`` with its runtime directory under ``root``, started."""
        settings = Settings(runtime_dir=root / "runtime")
        return cls(connector(settings, bootstrap, conf))

    def _run(self) -> None:
        try:
            self.connector.run(self.stop_event)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the connector did not stop"
        if self.error is not None:
            raise self.error


# -- the source contract ---------------------------------------------------------------
class SourceContract:
    """Subclass with ``connector = MySource`` (and ``harness = ...`` if not built in)."""

    connector: ClassVar[type[Source]]
    harness: ClassVar[type[Harness] | None] = None
    count: ClassVar[int] = 30

    @pytest.fixture
    def env(self, bootstrap: str, tmp_path: Path) -> Iterator[SourceEnv]:
        prefix = f"contract.{uuid.uuid4().hex[:8]}."
        harness = (self.harness or harness_for(self.connector))(self.connector, tmp_path, prefix)
        topic = self.connector.topic
        admin = AdminClient({"bootstrap.servers": bootstrap})
        names = [prefix + topic, prefix + dead_letter_topic(topic)]
        for future in admin.create_topics(
            [NewTopic(n, num_partitions=3, replication_factor=1) for n in names]
        ).values():
            future.result(timeout=30)
        env = SourceEnv(self.connector, harness, harness.settings(), bootstrap, tmp_path, prefix)
        try:
            yield env
        finally:
            harness.close()

    def test_delivers_every_record_keyed_by_customer(self, env: SourceEnv) -> None:
        expected = env.feed_and_run(0, self.count)
        records = env.wait_delivered(expected)
        assert {r.value["event_id"] for r in records} == set(expected)
        assert all(r.key == expected[r.value["event_id"]] for r in records), "keyed by customer"

    def test_survives_a_restart_without_loss(self, env: SourceEnv) -> None:
        expected = env.feed_and_run(0, self.count, stop_after_first=True)
        more = env.feed_and_run(self.count, self.count)
        expected.update(more)
        records = env.wait_delivered(expected)
        assert {r.value["event_id"] for r in records} == set(expected)

    def test_dead_letters_invalid_input_and_goes_on(self, env: SourceEnv) -> None:
        running = env.start()
        try:
            reason = env.harness.feed_invalid(running.connector)
            expected = env.harness.feed(running.connector, 0, 3)
            env.wait_delivered(expected)
            letters = env.wait_dead_letters(1)
        finally:
            running.stop()
        assert [letter.value["error_type"] for letter in letters] == [reason]
        assert letters[0].value["original"], "the dead letter keeps the original input"
        assert letters[0].value["stage"] == self.connector.name


@dataclass
class SourceEnv:
    """One contract test's connector, harness, settings and topics."""

    connector: type[Source]
    harness: Harness
    conf: ConnectorSettings
    bootstrap: str
    tmp_path: Path
    prefix: str

    def start(self) -> Running:
        return Running.of(self.connector, self.tmp_path, self.bootstrap, self.conf)

    def feed_and_run(
        self, start: int, count: int, stop_after_first: bool = False
    ) -> dict[str, str]:
        """Feed ``count`` inputs and run the connector until they are delivered (or,
        with ``stop_after_first``, until the first of them is); then stop it."""
        expected: dict[str, str] = {}
        if not self.harness.feeds_while_running:
            expected = self.harness.feed(None, start, count)
        running = self.start()
        try:
            if self.harness.feeds_while_running:
                expected = self.harness.feed(running.connector, start, count)
            if stop_after_first:
                assert wait_for(lambda: len(self.records()) > 0), "nothing delivered"
            else:
                self.wait_delivered(expected)
        finally:
            running.stop()
        return expected

    def records(self) -> list[Consumed]:
        topic = self.connector.topic
        return read_topic(self.bootstrap, self.prefix + topic, topic)

    def wait_delivered(self, expected: dict[str, str]) -> list[Consumed]:
        records: list[Consumed] = []

        def delivered() -> bool:
            records[:] = self.records()
            return set(expected) <= {r.value["event_id"] for r in records}

        assert wait_for(delivered), (
            f"{len(set(expected) - {r.value['event_id'] for r in records})} records missing"
        )
        return records

    def wait_dead_letters(self, count: int) -> list[Consumed]:
        dlq = dead_letter_topic(self.connector.topic)
        letters: list[Consumed] = []

        def arrived() -> bool:
            letters[:] = read_topic(self.bootstrap, self.prefix + dlq, dlq)
            return len(letters) >= count

        assert wait_for(arrived), "no dead letter"
        return letters


# -- the sink contract -----------------------------------------------------------------
class SinkHarness:
    """Reads back what a sink wrote to its outside system."""

    def __init__(self, sink: type[Sink], tmp_path: Path) -> None:
        self.sink = sink
        self.tmp_path = tmp_path

    def settings(self) -> ConnectorSettings:
        raise NotImplementedError

    def written_ids(self, conf: ConnectorSettings, table: str, id_field: str) -> list[str]:
        """Ids of the rows written (one per row, so duplicates show)."""
        raise NotImplementedError

    def dead_letter_count(self, conf: ConnectorSettings) -> int:
        raise NotImplementedError


class DuckDBHarness(SinkHarness):
    """For the DuckDB sink: reads its read snapshot."""

    def settings(self) -> ConnectorSettings:
        return self.sink.settings_class(
            database=self.tmp_path / "sink.duckdb",
            snapshot=self.tmp_path / "read.duckdb",
            snapshot_interval_s=0.1,
            batch_max_ms=100,
        )

    def _query(self, conf: ConnectorSettings, sql: str) -> list[tuple]:
        import duckdb

        try:
            with duckdb.connect(str(conf.snapshot), read_only=True) as db:
                return db.execute(sql).fetchall()
        except duckdb.Error:
            return []  # not published yet

    def written_ids(self, conf: ConnectorSettings, table: str, id_field: str) -> list[str]:
        return [row[0] for row in self._query(conf, f"SELECT {id_field} FROM {table}")]

    def dead_letter_count(self, conf: ConnectorSettings) -> int:
        rows = self._query(conf, "SELECT count(*) FROM dead_letters")
        return rows[0][0] if rows else 0


def sink_harness_for(sink: type[Sink]) -> type[SinkHarness]:

    if issubclass(sink, DuckDBSink):
        return DuckDBHarness
    raise TypeError(f"no built-in contract harness for {sink}; set `harness = ...`")


class SinkContract:
    """Subclass with ``connector = MySink`` (and ``harness = ...`` if not built in).

    Sinks consume the catalogue's topic names, so each test class gets a broker
    of its own (the embedded one).
    """

    connector: ClassVar[type[Sink]]
    harness: ClassVar[type[SinkHarness] | None] = None
    topic: ClassVar[str] = TOUCHPOINTS
    table: ClassVar[str] = "touchpoints"
    id_field: ClassVar[str] = "touchpoint_id"
    count: ClassVar[int] = 200

    @pytest.fixture(scope="class")
    @classmethod
    def sink_bootstrap(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:

        log = tmp_path_factory.mktemp("sink-broker") / "tansu.log"
        with EmbeddedBroker(log_path=log) as broker:
            create_topics(
                admin_client({"bootstrap.servers": broker.bootstrap}),
                default_catalog().topics.values(),
            )
            yield broker.bootstrap

    @pytest.fixture
    def sink_env(self, sink_bootstrap: str, tmp_path: Path) -> SinkEnv:
        harness = (self.harness or sink_harness_for(self.connector))(self.connector, tmp_path)
        return SinkEnv(self, harness, harness.settings(), sink_bootstrap, tmp_path)

    def test_writes_every_record_once(self, sink_env: SinkEnv) -> None:
        ids = sink_env.produce(0, self.count)
        running = sink_env.start()
        try:
            written = sink_env.wait_written(ids)
        finally:
            running.stop()
        assert sorted(written) == sorted(ids)

    def test_survives_a_restart_without_loss_or_duplicates(self, sink_env: SinkEnv) -> None:
        first = sink_env.produce(0, self.count)
        running = sink_env.start()
        try:
            sink_env.wait_written(first[:1])
        finally:
            running.stop()
        again = sink_env.produce(0, self.count)  # the same records re-sent, as after a crash
        more = sink_env.produce(self.count, self.count)
        running = sink_env.start()
        try:
            written = sink_env.wait_written(first + more)
        finally:
            running.stop()
        assert again == first
        assert sorted(written) == sorted(first + more), "one row per record"

    def test_dead_letters_undecodable_records_and_goes_on(self, sink_env: SinkEnv) -> None:
        sink_env.produce_raw(b"\x00\x7f\xff\xff\xffnot an avro record")
        ids = sink_env.produce(0, 3)
        running = sink_env.start()
        try:
            sink_env.wait_written(ids)
            dead = wait_for(lambda: sink_env.harness.dead_letter_count(sink_env.conf) >= 1)
        finally:
            running.stop()
        assert dead, "the undecodable record was not dead-lettered"
        assert sink_env.harness.dead_letter_count(sink_env.conf) == 1


@dataclass
class SinkEnv:
    """One sink contract test's sink, harness, settings and broker."""

    contract: SinkContract
    harness: SinkHarness
    conf: ConnectorSettings
    bootstrap: str
    tmp_path: Path

    def start(self) -> Running:
        return Running.of(self.contract.connector, self.tmp_path, self.bootstrap, self.conf)

    def produce(self, start: int, count: int) -> list[str]:
        """Produce ``count`` records with ids unique to this test; their ids."""

        topic, field = self.contract.topic, self.contract.id_field
        codec = make_codec(Settings()).for_topic(topic)
        base = default_catalog().examples(topic)[0][1]
        schema = default_catalog().value_schema(topic).raw
        producer = make_producer(Settings(), self.bootstrap)
        ids = [f"{self.tmp_path.name}-{i}" for i in range(start, start + count)]
        for ident in ids:
            value = codec.encode(from_json(schema, {**base, field: ident}))
            producer.produce(topic, value, ident.encode())
        assert producer.flush(30) == 0
        return ids

    def produce_raw(self, value: bytes) -> None:

        producer = make_producer(Settings(), self.bootstrap)
        producer.produce(self.contract.topic, value, b"bad")
        assert producer.flush(30) == 0

    def written(self) -> list[str]:
        mine = f"{self.tmp_path.name}-"
        ids = self.harness.written_ids(self.conf, self.contract.table, self.contract.id_field)
        return [i for i in ids if i.startswith(mine)]

    def wait_written(self, ids: list[str]) -> list[str]:
        rows: list[str] = []

        def done() -> bool:
            rows[:] = self.written()
            return set(ids) <= set(rows)

        assert wait_for(done), f"{len(set(ids) - set(rows))} records not written"
        return rows


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker for the contract suites (plugin use): ``KAFKA_BOOTSTRAP_SERVERS`` or the
    embedded one."""
    import os

    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log") as broker:
        yield broker.bootstrap
