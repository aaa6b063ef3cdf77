"""Erasure in the DuckDB sink: delete a forgotten customer's rows, log it, keep them out.

The sink consumes ``cust.erasure.v1`` like any other topic. A request is applied
in the transaction of its batch (after the batch's rows), so it happens once,
with its offset: every table loses the rows naming one of the request's keys
(customer key, anonymous/user/device id, a dead letter's message key), and the
``erasures`` table gets one row. That row holds a salted hash of the customer
key (with the PII salt, so an auditor who knows the key can find its erasure),
never the key itself.

Rows that arrive later and belong to a forgotten customer are not inserted
(``hidden_rows_filter``): a touchpoint received before the request, any row a
stage produced before it had applied the request (its Kafka timestamp is before
the request plus ``settle_ms``), and everything of a customer who opted out.
This is what keeps them out when a topic is read again from the start.
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson
import pyarrow as pa

from connectors.sinks.duckdb.ddl import quote_ident
from connectors.sinks.duckdb.tables import TableSpec
from streams.runtime.erasures import ErasureList, request_keys

ERASURES_TABLE = "erasures"
ERASED_VIEW = "_erased"  # the registered Arrow table of erased keys
# Columns that name a customer, in any table that has them.
SUBJECT_COLUMNS = ("customer_key", "anonymous_id", "user_id", "device_id")
BLOB_SUBJECT_COLUMNS = ("source_key",)  # dead letters: the original message's key

ERASURES_DDL = f"""
CREATE TABLE IF NOT EXISTS {ERASURES_TABLE} (
    request_id VARCHAR PRIMARY KEY,
    subject_hash VARCHAR,
    identifiers INTEGER,
    opt_out BOOLEAN,
    reason VARCHAR,
    requested_at TIMESTAMP,
    applied_at TIMESTAMP,
    rows_deleted BIGINT,
    rows_by_table VARCHAR
);
COMMENT ON TABLE {ERASURES_TABLE} IS 'Every erasure request the sink applied (right to be
forgotten): when, how many rows it deleted from which table. The customer is named only by a
salted hash of their key.';
COMMENT ON COLUMN {ERASURES_TABLE}.subject_hash IS 'sha256(PII salt || customer key).';
COMMENT ON COLUMN {ERASURES_TABLE}.rows_by_table IS 'JSON: table -> rows deleted.';
"""


def subject_columns(columns: list[str]) -> tuple[list[str], list[str]]:
    """(text columns, blob columns) among ``columns`` that name a customer."""
    return (
        [c for c in SUBJECT_COLUMNS if c in columns],
        [c for c in BLOB_SUBJECT_COLUMNS if c in columns],
    )


def _hidden_by(
    erased: str, text: list[str], blobs: list[str], row_time_ms: str, settle_ms: int
) -> str:
    """SQL: an ``erased`` key (columns k, requested_at, opt_out) names the row and hides
    it: the customer opted out, or the row's time is before the request (plus
    ``settle_ms``; an unknown time counts as before)."""
    named = [f"e.k = {quote_ident(c)}" for c in text] + [
        f"encode(e.k) = {quote_ident(c)}" for c in blobs
    ]
    return (
        f"EXISTS (SELECT 1 FROM {erased} e WHERE ({' OR '.join(named)}) AND (e.opt_out OR "
        f"coalesce({row_time_ms} < e.requested_at + {int(settle_ms)}, TRUE)))"
    )


def _row_time(columns: set[str], produced: str, settle_ms: int) -> tuple[str, int]:
    """How old a row is, in ms: a touchpoint by when it was received (exact), any other
    row by when its record was produced (a stage may produce a forgotten customer's
    row for up to ``settle_ms`` after the request, until it has applied it)."""
    if "received_time" in columns:
        return f"epoch_ms({quote_ident('received_time')})", 0
    return produced, settle_ms


def apply_request(
    db: duckdb.DuckDBPyConnection,
    tables: list[TableSpec],
    request: dict[str, Any],
    salt: str,
    settle_ms: int,
) -> None:
    """Delete the request's customer from every table and log it (inside the caller's
    transaction). Rows the request does not hide stay: a customer who returned after
    it (without opting out) keeps the new history, also when the sink reads the
    request late (a database rebuilt from the topics). Applying a request again
    deletes nothing more and keeps one log row."""
    db.execute(
        "CREATE OR REPLACE TEMP TABLE _erase_keys (k VARCHAR, requested_at BIGINT, opt_out BOOLEAN)"
    ).fetchall()
    db.executemany(
        "INSERT INTO _erase_keys VALUES (?, ?, ?)",
        [(k, int(request["requested_at"]), request["opt_out"]) for k in request_keys(request)],
    )
    deleted: dict[str, int] = {}
    for table in tables:
        names = set(table.column_names)
        text, blobs = subject_columns(sorted(names))
        if not text and not blobs:
            continue
        row_time, settle = _row_time(names, "epoch_ms(_produced_at)", settle_ms)
        hidden = _hidden_by("_erase_keys", text, blobs, row_time, settle)
        (count,) = db.execute(f"DELETE FROM {quote_ident(table.name)} WHERE {hidden}").fetchone()
        if count:
            deleted[table.name] = int(count)
    db.execute(
        f"INSERT OR REPLACE INTO {ERASURES_TABLE} VALUES "
        "(?, sha256(? || ?), ?, ?, ?, make_timestamp(?::BIGINT * 1000), now(), ?, ?)",
        [
            request["request_id"],
            salt,
            request["customer_key"],
            len(request["identifiers"]),
            request["opt_out"],
            request.get("reason"),
            int(request["requested_at"]),
            sum(deleted.values()),
            orjson.dumps(deleted).decode(),
        ],
    ).fetchall()
    db.execute("DROP TABLE _erase_keys").fetchall()


def erased_keys_table(erasures: ErasureList) -> pa.Table:
    """The erased keys as an Arrow table (k, requested_at ms, opt_out) for the filter."""
    keys = list(erasures.keys)
    return pa.table(
        {
            "k": pa.array(keys, pa.string()),
            "requested_at": pa.array([erasures.keys[k].requested_at for k in keys], pa.int64()),
            "opt_out": pa.array([erasures.keys[k].opt_out for k in keys], pa.bool_()),
        }
    )


def hidden_rows_filter(available: set[str], settle_ms: int) -> str | None:
    """A WHERE condition keeping a batch's rows of forgotten customers out, or None if
    the rows name no customer. Needs ``ERASED_VIEW`` registered and, in the batch,
    ``__ts`` (the record's Kafka timestamp, ms)."""
    text, blobs = subject_columns(sorted(available))
    if not text and not blobs:
        return None
    row_time, settle = _row_time(available, "__ts", settle_ms)
    return "NOT " + _hidden_by(ERASED_VIEW, text, blobs, row_time, settle)
