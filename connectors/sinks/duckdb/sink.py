"""The DuckDB sink: derived topics and dead letters → DuckDB tables, exactly once.

Guarantees:

- **Exactly once into tables.** Each batch's rows and the consumed offsets are
  written in one DuckDB transaction; rows are upserted by their deterministic
  record id; on start the sink resumes from the offsets stored in the database,
  not the consumer group's. A kill -9 at any moment loses nothing and doubles
  nothing.
- **Batched.** Records are decoded per batch and loaded through Arrow (no
  row-by-row INSERTs); a batch closes at ``batch_max_rows``, or after
  ``batch_max_ms`` once the previous batch's write has finished.
- **Readable while writing.** DuckDB lets one process open a file read-write
  and no other process open it at all, so after a commit the sink publishes a
  read snapshot (checkpoint, copy, atomic rename) at most every
  ``snapshot_interval_s`` (0.5 s), and less often once copying the file takes
  more than ``snapshot_max_share`` of that time; readers open the snapshot read-only
  (``journeybus query``, dashboards) and never block the sink.
- **Invalid records** (undecodable, or rows DuckDB refuses) become
  ``dead_letters`` rows in the same transaction and go to the topic's ``.dlq``.
- **Erasure.** Requests on ``cust.erasure.v1`` delete the customer's rows from
  every table in the transaction of their batch and are logged in ``erasures``;
  later rows of forgotten customers are kept out (``erasure.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Message

from connectors.base import Sink
from connectors.registry import sink
from connectors.sinks.duckdb import ddl
from connectors.sinks.duckdb.batch_decode import decode_records
from connectors.sinks.duckdb.ddl import Column, quote_ident
from connectors.sinks.duckdb.erasure import (
    ERASED_VIEW,
    ERASURES_DDL,
    ERASURES_TABLE,
    apply_request,
    erased_keys_table,
    hidden_rows_filter,
)
from connectors.sinks.duckdb.settings import DuckDBSinkSettings
from connectors.sinks.duckdb.tables import INGESTED_AT, PRODUCED_AT, TableSpec, table_specs
from connectors.sinks.duckdb.written import WrittenKeys, key_values
from streams.core import metrics
from streams.core.catalog import Catalog, default_catalog
from streams.core.codec import Codec, make_codec
from streams.core.errors import FatalError, InvalidRecord, internal_error, is_record_fault
from streams.core.settings import Settings
from streams.core.topics import ERASURE, TOUCHPOINTS
from streams.runtime.stage import BatchContext, Output

log = logging.getLogger(__name__)

# What DuckDB raises when a row's data does not fit (not the machine failing).
ROW_ERRORS = (
    duckdb.ConversionException,
    duckdb.OutOfRangeException,
    duckdb.InvalidInputException,
    duckdb.ConstraintException,
    duckdb.TypeMismatchException,
)

VIEWS_SQL = Path(__file__).with_name("views.sql")
HEADER = 5  # magic byte + schema id
# The sink's own bookkeeping, in a schema of its own: ``SHOW TABLES`` (the main
# schema) lists only what analysts read. Not "journeybus": DuckDB names a database
# after its file (journeybus.duckdb), and the two names would be ambiguous.
INTERNAL_SCHEMA = "journeybus_internal"
SINK_OFFSETS = f"{INTERNAL_SCHEMA}.sink_offsets"


def _move_legacy(db: duckdb.DuckDBPyConnection, old: str, new: str) -> None:
    """Move the rows of ``main.<old>``, where a database written before the sink had a
    schema of its own kept them, into ``new`` (created already), in one transaction.
    By name: a column the old table lacks (``log_id`` in the oldest) is NULL."""
    (legacy,) = db.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
        [old],
    ).fetchone()
    if not legacy:
        return
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute(f"INSERT INTO {new} BY NAME SELECT * FROM main.{old} ON CONFLICT DO NOTHING")
        db.execute(f"DROP TABLE main.{old}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class PiiPolicy:
    """SQL expressions that keep, hash (salted SHA-256, so joins still work) or drop
    (NULL) the PII-tagged columns of a table, by tag."""

    def __init__(self, direct: str, pseudonymous: str, salt: str) -> None:
        for value in (direct, pseudonymous):
            if value not in ("keep", "hash", "drop"):
                raise FatalError(f"PII policy must be keep, hash or drop, not {value!r}")
        self.by_tag = {"direct": direct, "pseudonymous": pseudonymous}
        self.salt = salt.replace("'", "''")

    def expression(self, column: Column, source: str, key: tuple[str, ...]) -> str:
        action = self.by_tag.get(column.pii or "", "keep")
        if action == "keep" or column.name in key:
            return source
        if action == "hash" and column.duck_type == "VARCHAR":
            return f"sha256('{self.salt}' || {source})"
        if action == "hash" and column.duck_type == "BLOB":
            return f"unhex(sha256('{self.salt}'::BLOB || {source}))"
        return "NULL"  # dropped, or structured PII that cannot keep its shape hashed


@dataclass
class PreparedBatch:
    """A decoded batch waiting to be written."""

    frames: dict[str, list[pa.Table]]
    offsets: dict[tuple[str, int], int]
    now_ms: int
    started: float
    erasures: list[dict[str, Any]] = field(default_factory=list)  # requests to apply
    erased: pa.Table | None = None  # every key erased so far, for the filter
    messages: list[Message] = field(default_factory=list)  # by batch position (``__pos``)


@sink("duckdb")
class DuckDBSink(Sink[DuckDBSinkSettings]):
    """Consumes the derived topics and dead letters into DuckDB (see module docstring)."""

    settings_class = DuckDBSinkSettings
    serves_health = True

    @property
    def stage_name(self) -> str:
        return "sink"  # the name its metrics, dead letters and dashboards have always had

    def __init__(
        self,
        settings: Settings,
        bootstrap: str | None = None,
        conf: DuckDBSinkSettings | None = None,
        codec: Codec | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        super().__init__(settings, bootstrap, conf)
        self.conf = self.conf.resolved(self.settings)
        self.catalog = catalog or default_catalog()
        self._codec = codec or make_codec(self.settings, self.catalog)
        self.linger_ms = self.conf.batch_max_ms
        self.max_batch = self.conf.batch_max_rows
        self.bootstrap = bootstrap
        self.tables = table_specs(self.catalog)
        self.by_topic: dict[str, list[TableSpec]] = defaultdict(list)
        for table in self.tables:
            for topic in table.topics:
                self.by_topic[topic].append(table)
        self.pii = PiiPolicy(
            self.conf.pii_direct, self.conf.pii_pseudonymous, self.conf.pii_salt.get_secret_value()
        )
        self.db: duckdb.DuckDBPyConnection | None = None
        self._last_snapshot = 0.0
        self._copy_s = 0.0  # how long the last snapshot's file copy took
        self.written = WrittenKeys()  # keys each table may hold: new ones skip the delete
        self.rows_written = 0
        self._pending: Future | None = None
        # Decoding the next batch overlaps with writing the previous one (polars and
        # DuckDB both release the GIL); at most one write is in flight.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-writer")
        self._copy: threading.Thread | None = None
        self._erased_table: pa.Table | None = None
        self._logs: dict[str, str] = {}  # topic -> the log it is now (streams.core.kafka.log_ids)
        self._rewrite_due = False  # erasures applied since the database was last rewritten
        self._rewritten_at = 0.0

    @property
    def codec(self) -> Codec:
        return self._codec

    # -- lifecycle -------------------------------------------------------------------
    def setup(self) -> None:
        """Open the database, create or evolve tables, create views (once)."""
        if self.db is not None:
            return
        self.conf.database.parent.mkdir(parents=True, exist_ok=True)
        for stale in self._leftovers():  # copies a killed sink left: they may hold erased rows
            stale.unlink(missing_ok=True)
        self._open()
        db = self.db
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {INTERNAL_SCHEMA}")
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {SINK_OFFSETS} (topic VARCHAR, partition INTEGER, "
            "next_offset BIGINT, committed_at TIMESTAMP, log_id VARCHAR, "
            "PRIMARY KEY (topic, partition))"
        )
        _move_legacy(db, "_sink_offsets", SINK_OFFSETS)
        for table in self.tables:
            self._ensure_table(table)
            self.written.load(db, table.name, self._row_key(table))
        db.execute(ERASURES_DDL)
        db.execute(VIEWS_SQL.read_text())
        db.execute(f"CREATE TABLE IF NOT EXISTS {REWRITTEN} (upto TIMESTAMP)")
        _move_legacy(db, "_sink_rewritten", REWRITTEN)
        if self._erasures_not_rewritten():  # a sink stopped before its rewrite
            self.rewrite_database()
        else:
            self.publish_snapshot(force=True)

    def _erasures_not_rewritten(self) -> bool:
        (pending,) = self.db.execute(
            f"SELECT (SELECT max(applied_at) FROM {ERASURES_TABLE}) > "
            f"coalesce((SELECT max(upto) FROM {REWRITTEN}), '-infinity'::TIMESTAMP)"
        ).fetchone()
        return bool(pending)

    def _open(self) -> None:
        self.db = duckdb.connect(str(self.conf.database))
        # Decoded timestamps are UTC instants; the tables hold them as UTC.
        self.db.execute("SET TimeZone = 'UTC'")
        # Checkpoints happen when a read snapshot is published (every half second or so,
        # see publish_snapshot); DuckDB's own every-16-MB checkpoint would double
        # the cost of a commit and must not run while a snapshot is being copied.
        self.db.execute("SET wal_autocheckpoint = '4GB'")

    def _leftovers(self) -> list[Path]:
        database, snapshot = self.conf.database, self.conf.snapshot
        return [
            *database.parent.glob(database.name + REWRITE_SUFFIX),
            *snapshot.parent.glob(snapshot.name + ".tmp*"),
        ]

    def _ensure_table(self, table: TableSpec) -> None:
        db = self.db
        columns = [*table.columns, INGESTED_AT, PRODUCED_AT]
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
                f"COMMENT ON TABLE {quote_ident(table.name)} IS "
                f"'{table.description.replace(chr(39), chr(39) * 2)}'"
            )
            for col in columns:
                db.execute(ddl.comment_sql(table.name, col))
            return
        for col in columns:
            if col.name not in existing:
                # An added optional field: a new nullable column, no data lost.
                db.execute(
                    f"ALTER TABLE {quote_ident(table.name)} ADD COLUMN "
                    f"{quote_ident(col.name)} {col.duck_type}"
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

    def stored_offsets(self) -> dict[tuple[str, int], tuple[int, str | None]]:
        """The next offset of every partition written, and the log it is an offset in."""
        if self.db is None:
            self.setup()
        rows = self.db.execute(f"SELECT topic, partition, next_offset, log_id FROM {SINK_OFFSETS}")
        return {(t, p): (o, log_id) for t, p, o, log_id in rows.fetchall()}

    def ready(self) -> tuple[bool, str]:
        if self.db is None:
            return False, "database not open"
        return True, "ok"

    def writing(self) -> bool:
        return self._pending is not None and not self._pending.done()

    def wait_written(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # re-raises a failed write: the process stops, nothing committed

    def store_offsets(self, offsets: dict[tuple[str, int], int], logs: dict[str, str]) -> None:
        """Offsets (and their logs) alone, in a transaction of their own."""
        self._logs.update(logs)
        db = self.db.cursor()
        try:
            _run(db, "BEGIN TRANSACTION")
            self._write_offsets(db, offsets)
            _run(db, "COMMIT")
        finally:
            db.close()

    def topics(self) -> list[str]:
        return sorted([*self.by_topic, ERASURE])

    # -- writing ---------------------------------------------------------------------------
    def write(
        self,
        prepared: PreparedBatch,
        offsets: dict[tuple[str, int], int],
        logs: dict[str, str],
    ) -> None:
        """Write a prepared batch's rows and ``offsets`` in one DuckDB transaction, in the
        writer thread, while the runner prepares the next batch (``wait_written``
        waits for it; a write that failed raises there: nothing of it committed)."""
        self.wait_written()
        self._logs.update(logs)
        prepared.offsets = offsets
        self._pending = self._writer.submit(self.commit_prepared, prepared)

    def idle(self) -> None:
        """No batch: between writes, rewrite the database after erasures and publish a
        read snapshot when one is due."""
        if not self.writing():
            self.wait_written()
            self._pending = self._writer.submit(self.maintain)

    def prepare(self, batch: list[Message], ctx: BatchContext) -> PreparedBatch:
        """Decode a batch into Arrow frames; its dead letters into ``ctx`` (the runner
        produces them) and into this batch's rows. No database access."""
        if self.db is None:
            self.setup()
        started = time.perf_counter()
        now_ms = ctx.now_ms
        groups: dict[tuple[str, int], list[tuple[int, Message]]] = defaultdict(list)
        erasures: list[dict[str, Any]] = []
        mark = ctx.mark()
        for pos, msg in enumerate(batch):
            topic, value = msg.topic(), msg.value()
            if topic == ERASURE:
                try:
                    request = self.codec.decode(topic, value, msg.partition(), msg.offset())
                    self.erasures.add(request)  # the filter: on_erasure
                except Exception as exc:
                    if not is_record_fault(exc):
                        raise
                    ctx.dead_letter(msg, internal_error(exc, "decoding"))
                else:
                    erasures.append(request)
                continue
            if not value or len(value) < HEADER or value[0] != 0:
                error = InvalidRecord("decode_error", "not a Confluent-framed Avro record")
                ctx.dead_letter(msg, error)
                continue
            groups[(topic, int.from_bytes(value[1:HEADER], "big"))].append((pos, msg))
        frames: dict[str, list[pa.Table]] = defaultdict(list)
        for (topic, schema_id), items in groups.items():
            table = self._decode_group(topic, schema_id, items, ctx)
            if table is not None:
                frames[topic].append(table)
        self._dead_letter_rows(ctx.outputs[mark[0] :], frames, len(batch), now_ms)
        return PreparedBatch(frames, {}, now_ms, started, erasures, self._erased_table, batch)

    def on_erasure(self, request: dict[str, Any]) -> None:
        """A new erasure request (from the runner's side input or this sink's input):
        rows of forgotten customers are kept out from now on."""
        self._erased_table = erased_keys_table(self.erasures)

    def commit_prepared(self, prepared: PreparedBatch) -> int:
        """Write a prepared batch and its offsets in one transaction; rows written.

        When DuckDB refuses the batch for its data (a value out of a column's
        range), the refused records are found by bisection in transactions that
        are rolled back, dead-lettered (reason ``table_refused``, DuckDB's
        message), and the rest is written."""
        try:
            written = self._commit_batch(prepared)
        except ROW_ERRORS as exc:
            log.warning("sink: DuckDB refused a batch (%s); finding the records", exc)
            self._set_aside_refused(prepared)
            written = self._commit_batch(prepared)
        metrics.SINK_BATCH_ROWS.observe(written)
        metrics.SINK_COMMIT_SECONDS.observe(time.perf_counter() - prepared.started)
        self._observe_freshness(prepared.frames.get(TOUCHPOINTS, []), int(time.time() * 1000))
        self.rows_written += written
        if prepared.erasures:
            self._rewrite_due = True
        self.maintain()
        return written

    def maintain(self) -> None:
        """Between writes: rewrite the database if erasures are waiting for it, then
        publish a read snapshot if one is due."""
        if (
            self._rewrite_due
            and time.monotonic() - self._rewritten_at >= self.conf.erasure_rewrite_interval_s
        ):
            self.rewrite_database()
        self.publish_snapshot()

    def rewrite_database(self) -> None:
        """Copy the database into a new file that takes its place, and publish it.

        DuckDB leaves deleted rows in its blocks (a checkpoint does not clear
        them): after an erasure the customer's values would stay in the file's
        bytes. The copy holds only live rows; the old file is removed and the read
        snapshot replaced. Tables, views, comments and offsets are copied as they
        are, in the writer's turn (no batch is in flight)."""
        if self._copy is not None:
            self._copy.join()  # a snapshot copy reads the file
        started = time.perf_counter()
        path = self.conf.database
        fresh = path.with_name(path.name + REWRITE_SUFFIX)
        fresh.unlink(missing_ok=True)
        db = self.db
        _run(db, f"DELETE FROM {REWRITTEN}")  # the erasures this copy has applied
        _run(db, f"INSERT INTO {REWRITTEN} SELECT max(applied_at) FROM {ERASURES_TABLE}")
        (name,) = db.execute("SELECT current_database()").fetchone()
        _run(db, f"ATTACH {_literal(str(fresh))} AS _rewrite")
        _run(db, f"COPY FROM DATABASE {quote_ident(name)} TO _rewrite")
        _run(db, "DETACH _rewrite")
        db.close()  # checkpoints: no WAL is left beside the old file
        os.replace(fresh, path)
        self._open()
        self._rewrite_due = False
        self._rewritten_at = time.monotonic()
        self.publish_snapshot(force=True)
        log.info("sink: database rewritten after erasures in %.2f s", time.perf_counter() - started)

    def _commit_batch(self, prepared: PreparedBatch) -> int:
        return self._commit(
            prepared.frames, prepared.offsets, prepared.now_ms, prepared.erasures, prepared.erased
        )

    def _set_aside_refused(self, prepared: PreparedBatch) -> None:
        """Take the records DuckDB refuses out of ``prepared``, as dead letters."""
        refused: dict[int, str] = {}
        for topic, tables in prepared.frames.items():
            for arrow in tables:
                refused.update(self._refused(topic, arrow, prepared))
        if not refused:
            raise FatalError("sink: DuckDB refused a batch but none of its records alone")
        ctx = BatchContext(self.stage_name, self.policy, prepared.now_ms)
        for pos, reason in sorted(refused.items()):
            if pos < len(prepared.messages):
                error = InvalidRecord("table_refused", f"DuckDB refused its row: {reason}")
                ctx.dead_letter(prepared.messages[pos], error)
            else:  # one of the sink's own dead letters: it is on its topic already
                log.error("sink: DuckDB refused a dead letter's row: %s", reason)
        keep = pa.array(sorted(refused), pa.int64())
        last = 0
        for topic, tables in prepared.frames.items():
            prepared.frames[topic] = [
                t.filter(pc.invert(pc.is_in(t.column("__pos"), value_set=keep))) for t in tables
            ]
            last = max([last] + [pc.max(t.column("__pos")).as_py() or 0 for t in tables])
        if ctx.outputs:
            self._dead_letter_rows(ctx.outputs, prepared.frames, last + 1, prepared.now_ms)
            self.publish(ctx.outputs)  # acknowledged before the batch commits

    def _refused(self, topic: str, arrow: pa.Table, prepared: PreparedBatch) -> dict[int, str]:
        """Batch positions of the rows of ``arrow`` DuckDB refuses, with its message
        (bisection: a trial transaction per half that fails, rolled back)."""
        try:
            self._commit({topic: [arrow]}, {}, prepared.now_ms, dry_run=True)
            return {}
        except ROW_ERRORS as exc:
            if arrow.num_rows == 1:
                return {arrow.column("__pos")[0].as_py(): str(exc)}
        half = arrow.num_rows // 2
        return {
            **self._refused(topic, arrow.slice(0, half), prepared),
            **self._refused(topic, arrow.slice(half), prepared),
        }

    def _decode_group(
        self,
        topic: str,
        schema_id: int,
        items: list[tuple[int, Message]],
        ctx: BatchContext,
    ) -> pa.Table | None:
        """Arrow rows of records of one topic and writer schema, with their batch position.

        The whole group is decoded natively; if that fails, each record is checked
        with fastavro, the bad ones dead-lettered and the rest decoded again.
        """
        writer = self.codec.source.writer_schema(schema_id)
        if writer is None:
            error = InvalidRecord("decode_error", f"unknown schema id {schema_id}")
            for _, msg in items:
                ctx.dead_letter(msg, error)
            return None
        try:
            table = decode_records(writer, [m.value()[HEADER:] for _, m in items])
        except Exception:
            good = []
            for pos, msg in items:
                try:
                    self.codec.decode(topic, msg.value(), msg.partition(), msg.offset())
                    good.append((pos, msg))
                except InvalidRecord as exc:
                    ctx.dead_letter(msg, exc)
            items = self._natively_decodable(writer, good, ctx)
            if not items:
                return None
            table = decode_records(writer, [m.value()[HEADER:] for _, m in items])
        table = table.append_column("__pos", pa.array([p for p, _ in items], pa.int64()))
        # the Kafka timestamp (when the stage produced it), for the erasure filter
        return table.append_column(
            "__ts", pa.array([m.timestamp()[1] for _, m in items], pa.int64())
        )

    def _natively_decodable(
        self,
        writer: dict[str, Any],
        items: list[tuple[int, Message]],
        ctx: BatchContext,
    ) -> list[tuple[int, Message]]:
        """The records the native decoder takes (bisection); the others, valid Avro it
        cannot convert (a timestamp beyond its range), are dead-lettered as
        ``table_refused``."""
        if not items:
            return []
        try:
            decode_records(writer, [m.value()[HEADER:] for _, m in items])
            return items
        except Exception as exc:
            if not is_record_fault(exc):
                raise
            if len(items) == 1:
                error = InvalidRecord(
                    "table_refused",
                    f"its values do not convert to the table's types: {type(exc).__name__}: "
                    f"{str(exc)[:500]}",
                )
                ctx.dead_letter(items[0][1], error)
                return []
        half = len(items) // 2
        return self._natively_decodable(writer, items[:half], ctx) + self._natively_decodable(
            writer, items[half:], ctx
        )

    def _dead_letter_rows(
        self,
        dead: list[Output],
        frames: dict[str, list[pa.Table]],
        first_pos: int,
        now_ms: int,
    ) -> None:
        """Add the sink's own dead letters (encoded here, produced by the runner) to the
        batch's rows: the table has them whether or not the topic is read back yet."""
        by_topic: dict[str, list[bytes]] = defaultdict(list)
        for out in dead:
            out.value = self.codec.encode(out.topic, out.record)
            by_topic[out.topic].append(out.value[HEADER:])
        schema = self.catalog.latest("cust.dead-letter.v1").raw
        for topic, payloads in by_topic.items():
            table = decode_records(schema, payloads)
            positions = pa.array(range(first_pos, first_pos + len(payloads)), pa.int64())
            table = table.append_column("__pos", positions)
            frames[topic].append(table.append_column("__ts", pa.array([now_ms] * len(payloads))))
            first_pos += len(payloads)

    def _observe_freshness(self, tables: list[pa.Table], now_ms: int) -> None:
        # From when journeybus received the event: event times of generated or
        # back-filled data can be days old.
        for table in tables:
            received = table.column("received_time").cast(pa.timestamp("ms")).cast(pa.int64())
            oldest = pc.min(received).as_py()  # epoch ms: no Python date to overflow
            if oldest is not None:
                metrics.FRESHNESS.observe(max(0.0, (now_ms - oldest) / 1000))

    def _commit(
        self,
        frames: dict[str, list[pa.Table]],
        offsets: dict[tuple[str, int], int],
        now_ms: int,
        erasures: list[dict[str, Any]] | None = None,
        erased: pa.Table | None = None,
        dry_run: bool = False,
    ) -> int:
        """Upsert ``frames``, apply ``erasures`` and store ``offsets`` in one transaction;
        rows written. ``dry_run``: roll it back instead (a trial)."""
        # A cursor of its own: the write may run in the writer thread, and DuckDB
        # connections do not share statements across threads.
        db = self.db.cursor()
        written = 0
        views: list[str] = []
        if erased is not None:
            db.register(ERASED_VIEW, erased)
            views.append(ERASED_VIEW)
        _run(db, "BEGIN TRANSACTION")
        try:
            for table in self.tables:
                parts = []
                for topic in table.topics:
                    for arrow in frames.get(topic, ()):
                        view = f"_batch{len(views)}"
                        db.register(view, arrow)
                        views.append(view)
                        parts.append((view, arrow))
                if parts:
                    written += self._upsert(db, table, parts, now_ms, erased is not None)
            salt = self.conf.pii_salt.get_secret_value()
            for request in erasures or ():
                apply_request(db, self.tables, request, salt, self.conf.erasure_settle_ms)
            # One statement over an Arrow table: executemany costs about a millisecond
            # per row in DuckDB, and a batch has an offset per topic partition (a
            # quarter of the sink's CPU went there at 2k events/s).
            if offsets:
                self._write_offsets(db, offsets)
            _run(db, "ROLLBACK" if dry_run else "COMMIT")
        except BaseException:
            _run(db, "ROLLBACK")
            raise
        finally:
            for view in views:
                db.unregister(view)
            db.close()
        return written

    def _write_offsets(
        self, db: duckdb.DuckDBPyConnection, offsets: dict[tuple[str, int], int]
    ) -> None:
        """Upsert ``offsets`` with their logs inside the caller's transaction."""
        # One statement over an Arrow table: executemany costs about a millisecond
        # per row in DuckDB, and a batch has an offset per topic partition (a
        # quarter of the sink's CPU went there at 2k events/s).
        db.register(OFFSETS_VIEW, _offsets_table(offsets, self._logs))
        try:
            _run(
                db,
                f"INSERT INTO {SINK_OFFSETS} BY NAME SELECT topic, partition, next_offset, "
                f"now() AS committed_at, log_id FROM {OFFSETS_VIEW} "
                "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset, "
                "committed_at = excluded.committed_at, log_id = excluded.log_id",
            )
        finally:
            db.unregister(OFFSETS_VIEW)

    def _select(
        self,
        table: TableSpec,
        view: str,
        available: set[str],
        now_ms: int,
        with_position: bool = False,
        hide_erased: bool = False,
    ) -> str:
        """SELECT of ``table``'s rows from one decoded batch, PII policy applied; with
        ``hide_erased``, without forgotten customers' rows (``ERASED_VIEW`` registered)."""
        exprs = []
        if table.explode:
            items = {c.name for c in table.columns} - set(table.parent.values()) - {"position"}
            by_column = {out: src for src, out in table.parent.items()}
            for col in table.columns:
                if col.name in by_column:
                    source = quote_ident(by_column[col.name])
                elif col.name == "position":
                    source = "__idx::INTEGER"
                else:
                    source = f"__item.{quote_ident(col.name)}" if col.name in items else "NULL"
                exprs.append(self._expr(table, col, source))
            origin = (
                f"(SELECT *, unnest(range(len({quote_ident(table.explode)}))) AS __idx, "
                f"unnest({quote_ident(table.explode)}) AS __item FROM {view})"
            )
        else:
            for col in table.columns:
                if col.name in available:
                    source = quote_ident(col.name)
                else:  # a field the writer's (older) schema did not have: its default
                    source = f"CAST({_literal(table.defaults.get(col.name))} AS {col.duck_type})"
                exprs.append(self._expr(table, col, source))
            origin = view
        exprs.append(f"epoch_ms({now_ms}::BIGINT) AS _ingested_at")
        exprs.append("epoch_ms(__ts) AS _produced_at")
        if with_position:
            exprs.append("__pos")
        select = f"SELECT {', '.join(exprs)} FROM {origin}"
        hidden = hidden_rows_filter(available, self.conf.erasure_settle_ms) if hide_erased else None
        return f"{select} WHERE {hidden}" if hidden else select

    def _expr(self, table: TableSpec, col: Column, source: str) -> str:
        return f"{self.pii.expression(col, source, table.key)} AS {quote_ident(col.name)}"

    def _row_key(self, table: TableSpec) -> list[str]:
        """The columns that identify a record's rows (an exploded table: its parent's key)."""
        if table.explode:
            return [src for src, out in table.parent.items() if out in table.key]
        return list(table.key)

    def _upsert(
        self,
        db: duckdb.DuckDBPyConnection,
        table: TableSpec,
        parts: list[tuple[str, pa.Table]],
        now_ms: int,
        hide_erased: bool = False,
    ) -> int:
        """Replace the batch's rows by key (latest version wins where versioned).

        Keys stay unique without a PRIMARY KEY index: rows of a record are deleted
        and inserted again in the batch's transaction. A record's rows are deleted
        as a whole (a journey republished with fewer touches loses the others).
        """
        name = quote_ident(table.name)
        row_key = self._row_key(table)
        ((view, arrow),) = parts if len(parts) == 1 else [(None, None)]
        unique = (
            arrow is not None
            and not table.version
            and len(row_key) == 1
            and pc.count_distinct(arrow.column(row_key[0])).as_py() == arrow.num_rows
        )
        if unique:  # the common case: one decoded frame, each record once
            key = quote_ident(row_key[0])
            keys = key_values(arrow.select(row_key))
            if self.written.may_hold_any(table.name, keys):
                _run(db, f"DELETE FROM {name} WHERE {key} IN (SELECT {key} FROM {view})")
            select = self._select(
                table, view, set(arrow.column_names), now_ms, hide_erased=hide_erased
            )
            inserted = _run(db, f"INSERT INTO {name} BY NAME {select}")[0][0]
            self.written.add(db, table.name, row_key, keys)
            return inserted
        # Several frames, a record and its replay in one batch, or latest-version-wins:
        # one row per key first (DuckDB cannot change a row twice in one statement).
        selects = [
            self._select(
                table, v, set(a.column_names), now_ms, with_position=True, hide_erased=hide_erased
            )
            for v, a in parts
        ]
        keys = [quote_ident(k) for k in table.key]
        order = "__pos DESC"
        if table.version:
            order = f"{quote_ident(table.version)} DESC NULLS LAST, {order}"
        _run(
            db,
            f"CREATE OR REPLACE TEMP TABLE _rows AS SELECT * EXCLUDE (__pos) FROM "
            f"({' UNION ALL '.join(selects)}) QUALIFY row_number() OVER "
            f"(PARTITION BY {', '.join(keys)} ORDER BY {order}) = 1",
        )
        distinct = ", ".join(quote_ident(k) for k in row_key)
        keys = key_values(db.sql(f"SELECT DISTINCT {distinct} FROM _rows").to_arrow_table())
        match = " AND ".join(f"{name}.{quote_ident(k)} = r.{quote_ident(k)}" for k in row_key)
        if not self.written.may_hold_any(table.name, keys):
            # every key is new: nothing to replace or to compare versions with
            written = _run(db, f"INSERT INTO {name} BY NAME SELECT * FROM _rows")[0][0]
        elif table.version:
            version = quote_ident(table.version)
            _run(
                db,
                f"DELETE FROM {name} USING _rows r WHERE {match} "
                f"AND {name}.{version} <= r.{version}",
            )
            _run(
                db,
                f"INSERT INTO {name} BY NAME SELECT r.* FROM _rows r WHERE NOT EXISTS "
                f"(SELECT 1 FROM {name} WHERE {match})",
            )
            written = _run(db, "SELECT count(*) FROM _rows")[0][0]
        else:
            _run(
                db,
                f"DELETE FROM {name} USING (SELECT DISTINCT {distinct} FROM _rows) r WHERE {match}",
            )
            written = _run(db, f"INSERT INTO {name} BY NAME SELECT * FROM _rows")[0][0]
        # after the insert: a filter rebuilt from the table now must find these keys
        self.written.add(db, table.name, row_key, keys)
        return written

    # -- readers ------------------------------------------------------------------------------
    def publish_snapshot(self, force: bool = False) -> None:
        """Checkpoint, then publish a read-only copy of the database for readers.

        DuckDB only rewrites the main file at a checkpoint (commits go to the
        WAL and to free blocks the file's header does not reference), so once
        the checkpoint is done the file is copied in a background thread while
        the sink keeps committing; the copy replaces the snapshot atomically
        (rename), and readers holding the old one keep reading it. No checkpoint
        may run while a copy does: the next snapshot waits for it, and DuckDB's
        automatic checkpoint is set far above what a snapshot interval writes.
        """
        now = time.monotonic()
        copying = self._copy is not None and self._copy.is_alive()
        if copying and not force:
            return
        if copying:
            self._copy.join()
        if not force and now - self._last_snapshot < self.snapshot_wait_s():
            return
        started = time.perf_counter()
        self.db.execute("CHECKPOINT").fetchall()
        self._last_snapshot = now
        self._copy = threading.Thread(
            target=self._copy_snapshot, args=(started,), name="duckdb-snapshot", daemon=True
        )
        self._copy.start()
        if force:
            self._copy.join()

    def snapshot_wait_s(self) -> float:
        """Seconds from one snapshot to the next: the configured interval, or longer
        when the last file copy took more than ``snapshot_max_share`` of it."""
        return max(self.conf.snapshot_interval_s, self._copy_s / self.conf.snapshot_max_share)

    def _copy_snapshot(self, started: float) -> None:
        target = self.conf.snapshot
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        copying = time.perf_counter()
        shutil.copyfile(self.conf.database, tmp)
        os.replace(tmp, target)
        done = time.perf_counter()
        self._copy_s = done - copying
        metrics.SINK_SNAPSHOT_SECONDS.observe(done - started)

    def close(self) -> None:
        try:
            self.wait_written()
        finally:
            self._writer.shutdown(wait=True)
        if self.db is not None:
            if self._rewrite_due:  # not later: erased rows must not stay in the file
                self.rewrite_database()
            self.publish_snapshot(force=True)
            self.db.close()
            self.db = None


OFFSETS_VIEW = "_batch_offsets"
REWRITE_SUFFIX = ".rewrite"
# the newest erasure the file was last rewritten after
REWRITTEN = f"{INTERNAL_SCHEMA}.rewritten"


def _offsets_table(offsets: dict[tuple[str, int], int], logs: dict[str, str]) -> pa.Table:
    return pa.table(
        {
            "topic": pa.array([t for t, _ in offsets], pa.string()),
            "partition": pa.array([p for _, p in offsets], pa.int32()),
            "next_offset": pa.array(list(offsets.values()), pa.int64()),
            "log_id": pa.array([logs.get(t) for t, _ in offsets], pa.string()),
        }
    )


def _run(db: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    """Execute and fetch: DuckDB 2.0 refuses further work (``register``) on a
    connection whose last result was not consumed."""
    return db.execute(sql).fetchall()


def _literal(value: Any) -> str:
    """A SQL literal of an Avro default value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dict) and not value:
        return "MAP {}"
    if isinstance(value, list) and not value:
        return "[]"
    raise FatalError(f"no SQL literal for the default {value!r}")


def _normal_type(text: str) -> str:
    return text.upper().replace(" ", "").replace('"', "")
