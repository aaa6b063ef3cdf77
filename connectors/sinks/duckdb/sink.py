"""The DuckDB sink: derived topics and dead letters → DuckDB tables, exactly once.

Guarantees:

- **Exactly once into tables.** Each batch's rows and the consumed offsets are
  written in one DuckDB transaction; rows are upserted by their deterministic
  record id; on start the sink resumes from the offsets stored in the database,
  not the consumer group's. A kill -9 at any moment loses nothing and doubles
  nothing.
- **Batched.** Records are decoded per batch and loaded through Arrow (no
  row-by-row INSERTs); a batch closes at ``batch_max_rows`` or
  ``batch_max_ms``, whichever comes first.
- **Readable while writing.** DuckDB lets one process open a file read-write
  and no other process open it at all, so after a commit the sink publishes a
  read snapshot (checkpoint, copy, atomic rename) at most every
  ``snapshot_interval_s``; readers open the snapshot read-only
  (``journeybus query``, dashboards) and never block the sink.
- **Invalid records** (undecodable, or rows DuckDB refuses) become
  ``dead_letters`` rows in the same transaction and go to the topic's ``.dlq``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition
from pydantic import SecretStr

from connectors.settings import ConnectorSettings, connector_config
from connectors.sinks.duckdb import ddl
from connectors.sinks.duckdb.tables import INGESTED_AT, TableSpec, table_specs
from streams import metrics
from streams.catalog import Catalog, default_catalog
from streams.codec import Codec, make_codec
from streams.deadletter import dead_letter_record, dead_letter_topic
from streams.errors import FatalError, InvalidRecord
from streams.kafka import make_consumer, make_producer
from streams.settings import Settings, get_settings

log = logging.getLogger(__name__)

VIEWS_SQL = Path(__file__).with_name("views.sql")


class DuckDBSinkSettings(ConnectorSettings):
    """``CONNECTORS__DUCKDB__*``."""

    model_config = connector_config("duckdb")

    database: Path = Path(".journeybus/journeybus.duckdb")
    snapshot: Path = Path(".journeybus/journeybus-read.duckdb")
    snapshot_interval_s: float = 1.0
    batch_max_rows: int = 20_000
    batch_max_ms: int = 200
    group_id: str = "journeybus-duckdb-sink"
    # PII policy per tag: keep, hash (salted SHA-256, joins still work) or drop (NULL)
    pii_direct: str = "hash"
    pii_pseudonymous: str = "keep"
    pii_salt: SecretStr = SecretStr("journeybus-local")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PiiPolicy:
    """Hashes or drops PII-tagged top-level columns, by tag."""

    def __init__(self, direct: str, pseudonymous: str, salt: str) -> None:
        for value in (direct, pseudonymous):
            if value not in ("keep", "hash", "drop"):
                raise FatalError(f"PII policy must be keep, hash or drop, not {value!r}")
        self.by_tag = {"direct": direct, "pseudonymous": pseudonymous}
        self.salt = salt.encode()

    def _hash(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bytes):
            return hashlib.sha256(self.salt + value).digest()
        if isinstance(value, str):
            return hashlib.sha256(self.salt + value.encode()).hexdigest()
        return None  # structured PII cannot keep its shape hashed: drop it

    def actions(self, table: TableSpec) -> list[tuple[str, str]]:
        out = []
        for col in table.columns:
            action = self.by_tag.get(col.pii or "", "keep")
            if action != "keep" and col.name not in table.key:
                out.append((col.name, action))
        return out

    def apply(self, rows: list[dict[str, Any]], actions: list[tuple[str, str]]) -> None:
        for name, action in actions:
            for row in rows:
                row[name] = None if action == "drop" else self._hash(row.get(name))


class DuckDBSink:
    """Consumes the derived topics and dead letters into DuckDB (see module docstring)."""

    def __init__(
        self,
        settings: Settings | None = None,
        bootstrap: str | None = None,
        sink_settings: DuckDBSinkSettings | None = None,
        codec: Codec | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.conf = sink_settings or DuckDBSinkSettings()
        self.catalog = catalog or default_catalog()
        self.codec = codec or make_codec(self.settings, self.catalog)
        self.bootstrap = bootstrap
        self.tables = table_specs(self.catalog)
        self.by_topic: dict[str, list[TableSpec]] = defaultdict(list)
        for table in self.tables:
            for topic in table.topics:
                self.by_topic[topic].append(table)
        self.pii = PiiPolicy(
            self.conf.pii_direct, self.conf.pii_pseudonymous, self.conf.pii_salt.get_secret_value()
        )
        self._pii_actions = {t.name: self.pii.actions(t) for t in self.tables}
        self._arrow = {t.name: ddl.arrow_schema([*t.columns, INGESTED_AT]) for t in self.tables}
        self.db: duckdb.DuckDBPyConnection | None = None
        self.consumer = None
        self.producer = None
        self._last_snapshot = 0.0
        self._snapshot_cost = 0.0
        self.rows_written = 0
        self.assigned = False

    # -- lifecycle -------------------------------------------------------------------
    def setup(self) -> None:
        """Open the database, create or evolve tables, create views."""
        self.conf.database.parent.mkdir(parents=True, exist_ok=True)
        self.db = duckdb.connect(str(self.conf.database))
        db = self.db
        db.execute(
            "CREATE TABLE IF NOT EXISTS _sink_offsets (topic VARCHAR, partition INTEGER, "
            "next_offset BIGINT, committed_at TIMESTAMP, PRIMARY KEY (topic, partition))"
        )
        for table in self.tables:
            self._ensure_table(table)
        db.execute(VIEWS_SQL.read_text())
        self.publish_snapshot(force=True)

    def _ensure_table(self, table: TableSpec) -> None:
        db = self.db
        columns = [*table.columns, INGESTED_AT]
        existing = {
            r[0]: r[1]
            for r in db.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                "AND schema_name = 'main'",
                [table.name],
            ).fetchall()
        }
        if not existing:
            db.execute(ddl.create_table_sql(table.name, columns, table.key))
            db.execute(
                f"COMMENT ON TABLE {_quote(table.name)} IS "
                f"'{table.description.replace(chr(39), chr(39) * 2)}'"
            )
            for col in columns:
                db.execute(ddl.comment_sql(table.name, col))
            return
        for col in columns:
            if col.name not in existing:
                # An added optional field: a new nullable column, no data lost.
                db.execute(
                    f"ALTER TABLE {_quote(table.name)} ADD COLUMN "
                    f"{_quote(col.name)} {col.duck_type}"
                )
                db.execute(ddl.comment_sql(table.name, col))
                log.info("added column %s.%s", table.name, col.name)
            elif _normal_type(existing[col.name]) != _normal_type(col.duck_type):
                raise FatalError(
                    f"table {table.name}: column {col.name} is {existing[col.name]} in "
                    f"{self.conf.database} but the schema says {col.duck_type}; an "
                    "incompatible change needs a new major topic and table"
                )
        order = [
            r[0]
            for r in db.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY "
                "column_index",
                [table.name],
            ).fetchall()
        ]
        table.columns = [c for name in order for c in table.columns if c.name == name]

    def stored_offsets(self) -> dict[tuple[str, int], int]:
        rows = self.db.execute("SELECT topic, partition, next_offset FROM _sink_offsets")
        return {(t, p): o for t, p, o in rows.fetchall()}

    def ready(self) -> tuple[bool, str]:
        if self.db is None:
            return False, "database not open"
        if not self.assigned:
            return False, "waiting for partition assignment"
        return True, "ok"

    def _on_assign(self, consumer, partitions: list[TopicPartition]) -> None:
        self.assigned = True
        stored = self.stored_offsets()
        for part in partitions:
            part.offset = stored.get((part.topic, part.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        log.info("sink assigned %d partitions", len(partitions))

    def topics(self) -> list[str]:
        return sorted(self.by_topic)

    def run(self, stop: threading.Event) -> None:
        """Consume and write until ``stop`` is set."""
        from streams.broker import resolve_bootstrap

        bootstrap = self.bootstrap or resolve_bootstrap(self.settings)
        if self.db is None:
            self.setup()
        self.consumer = make_consumer(
            self.conf.group_id, self.settings, bootstrap, **{"client.id": "journeybus-duckdb-sink"}
        )
        self.producer = make_producer(
            self.settings, bootstrap, **{"client.id": "journeybus-duckdb-sink"}
        )
        self.consumer.subscribe(self.topics(), on_assign=self._on_assign)
        if self.settings.metrics.port is not None:
            from streams.health import serve_health

            serve_health(self.settings.metrics.port, self.ready, self.settings.metrics.host)
        try:
            while not stop.is_set():
                batch = self._collect()
                if batch:
                    self.write_batch(batch)
                self.publish_snapshot()
        finally:
            self.close()

    def _collect(self) -> list[Message]:
        deadline = time.monotonic() + self.conf.batch_max_ms / 1000
        batch: list[Message] = []
        while len(batch) < self.conf.batch_max_rows:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msgs = self.consumer.consume(
                min(5000, self.conf.batch_max_rows - len(batch)), timeout=min(left, 0.05)
            )
            for msg in msgs:
                err = msg.error()
                if err is None:
                    batch.append(msg)
                elif err.code() != KafkaError._PARTITION_EOF:
                    if err.fatal():
                        raise FatalError(f"sink consumer: {err}")
                    log.warning("sink consumer: %s", err)
            if not msgs and not batch:
                break
        return batch

    # -- writing ---------------------------------------------------------------------------
    def write_batch(self, batch: list[Message]) -> int:
        """Decode, upsert and store offsets of ``batch`` in one transaction; rows written."""
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        dead: list[dict[str, Any]] = []
        offsets: dict[tuple[str, int], int] = {}
        for msg in batch:
            topic = msg.topic()
            offsets[(topic, msg.partition())] = msg.offset() + 1
            try:
                record = self.codec.decode(topic, msg.value(), msg.partition(), msg.offset())
                for table in self.by_topic[topic]:
                    rows[table.name].extend(table.rows(record))
            except (InvalidRecord, KeyError, TypeError) as exc:
                error = (
                    exc
                    if isinstance(exc, InvalidRecord)
                    else InvalidRecord("invalid_value", f"cannot make rows: {exc!r}")
                )
                metrics.DEAD_LETTERS.labels("sink", topic, error.reason).inc()
                dead.append(
                    dead_letter_record(
                        stage="sink",
                        source_topic=topic,
                        error=error,
                        original=msg.value(),
                        original_format="avro",
                        partition=msg.partition(),
                        offset=msg.offset(),
                        key=msg.key(),
                        now_ms=now_ms,
                    )
                )
            metrics.EVENTS_IN.labels("sink", topic).inc()
        if dead:
            self._send_dead_letters(dead)
            rows["dead_letters"].extend(dead)
        written = self._commit(rows, offsets, now_ms)
        elapsed = time.perf_counter() - started
        metrics.SINK_BATCH_ROWS.observe(written)
        metrics.SINK_COMMIT_SECONDS.observe(elapsed)
        # Freshness from when journeybus received the event (event times of
        # generated or back-filled data can be days old).
        received = [r["received_time"] for r in rows.get("touchpoints", ())]
        if received:
            metrics.FRESHNESS.observe(max(0.0, (now_ms - min(received)) / 1000))
        self.rows_written += written
        return written

    def _send_dead_letters(self, dead: list[dict[str, Any]]) -> None:
        for record in dead:
            topic = dead_letter_topic(record["source_topic"])
            self.producer.produce(topic, self.codec.encode(topic, record))
        if self.producer.flush(30):
            raise FatalError("sink: dead letters not acknowledged; not committing")

    def _commit(
        self,
        rows: dict[str, list[dict[str, Any]]],
        offsets: dict[tuple[str, int], int],
        now_ms: int,
    ) -> int:
        db = self.db
        written = 0
        db.execute("BEGIN TRANSACTION")
        try:
            for table in self.tables:
                table_rows = rows.get(table.name)
                if table_rows:
                    written += self._upsert(table, table_rows, now_ms)
            db.executemany(
                "INSERT INTO _sink_offsets VALUES (?, ?, ?, now()) ON CONFLICT (topic, partition) "
                "DO UPDATE SET next_offset = excluded.next_offset, "
                "committed_at = excluded.committed_at",
                [(t, p, o) for (t, p), o in offsets.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return written

    def _upsert(self, table: TableSpec, rows: list[dict[str, Any]], now_ms: int) -> int:
        # One row per key (DuckDB cannot update a row twice in one statement): the
        # highest version wins, else the last in offset order.
        unique: dict[tuple, dict[str, Any]] = {}
        for row in rows:
            key = tuple(row[k] for k in table.key)
            if (
                table.version
                and key in unique
                and (unique[key].get(table.version) or 0) > (row.get(table.version) or 0)
            ):
                continue
            unique[key] = row
        values = list(unique.values())
        self.pii.apply(values, self._pii_actions[table.name])
        for row in values:
            row["_ingested_at"] = now_ms
        arrow = pa.Table.from_pylist(values, schema=self._arrow[table.name])
        self.db.register("_batch", arrow)
        try:
            cols = ", ".join(_quote(c) for c in arrow.column_names)
            if table.version:
                updates = ", ".join(
                    f"{_quote(c)} = excluded.{_quote(c)}"
                    for c in arrow.column_names
                    if c not in table.key
                )
                keys = ", ".join(_quote(k) for k in table.key)
                self.db.execute(
                    f"INSERT INTO {_quote(table.name)} ({cols}) SELECT {cols} FROM _batch "
                    f"ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE "
                    f"excluded.{_quote(table.version)} >= "
                    f"{_quote(table.name)}.{_quote(table.version)}"
                )
            else:
                self.db.execute(
                    f"INSERT OR REPLACE INTO {_quote(table.name)} ({cols}) "
                    f"SELECT {cols} FROM _batch"
                )
        finally:
            self.db.unregister("_batch")
        return len(values)

    # -- readers ------------------------------------------------------------------------------
    def publish_snapshot(self, force: bool = False) -> None:
        """Checkpoint and publish a read-only copy for readers (atomic rename)."""
        now = time.monotonic()
        interval = max(self.conf.snapshot_interval_s, 5 * self._snapshot_cost)
        if not force and now - self._last_snapshot < interval:
            return
        started = time.perf_counter()
        self.db.execute("CHECKPOINT")
        target = self.conf.snapshot
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.copyfile(self.conf.database, tmp)
        os.replace(tmp, target)
        self._snapshot_cost = time.perf_counter() - started
        self._last_snapshot = now
        metrics.SINK_SNAPSHOT_SECONDS.observe(self._snapshot_cost)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        if self.producer is not None:
            self.producer.flush(10)
            self.producer = None
        if self.db is not None:
            self.publish_snapshot(force=True)
            self.db.close()
            self.db = None


def _normal_type(text: str) -> str:
    return text.upper().replace(" ", "").replace('"', "")
