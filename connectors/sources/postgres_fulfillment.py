"""Order events from the order-management database (PostgreSQL) → ``cust.fulfillment.raw.v1``.

Design: a transactional outbox filled by triggers (``postgres_fulfillment.sql``),
read with a cursor. Any application writing the order tables (orders,
order_lines, shipments, returns, support_tickets) produces events, without
knowing about Kafka:

=====================  ==========================================
change                 event
=====================  ==========================================
order inserted         order_placed
order status → paid    order_paid
shipment inserted      order_shipped
shipment → delayed     order_delayed
shipment → delivered   order_delivered
return inserted        order_returned
return → refunded      order_refunded
ticket inserted        ticket_opened
ticket → closed        ticket_closed
=====================  ==========================================

Guarantees:

- **At least once, nothing skipped.** The cursor ``(txid, seq)`` lives in the
  database (``journeybus_cursor``) and moves only after the broker acknowledged
  the events up to it. Only rows of transactions older than every running one
  are read, so a slow transaction can never commit a row behind the cursor.
  After a kill -9 the source re-reads from the cursor.
- **Deterministic event ids**: ``ful-<order_id>-<event_type>`` for order
  events, ``ful-<return_id>-…`` / ``ful-<ticket_id>-…`` for returns and
  tickets, the same however often a row is re-sent (an order delayed twice is
  one ``order_delayed`` event).
- Key: customer id. Order: per customer, commit order.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from pydantic import SecretStr

from connectors.base import PollingSource
from connectors.record import SourceRecord
from connectors.registry import source
from connectors.settings import ConnectorSettings
from streams.core.errors import FatalError, InvalidRecord, Retriable
from streams.core.topics import FULFILLMENT

log = logging.getLogger(__name__)

SCHEMA_SQL = Path(__file__).with_suffix(".sql")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
START = ("0", 0)  # (txid, seq) before the first outbox row


class FulfillmentSettings(ConnectorSettings):
    """``CONNECTORS__POSTGRES_FULFILLMENT__*``."""

    # SecretStr: a DSN may carry a password; it never shows in logs or reprs
    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/test")
    schema_name: str = "oms"
    poll_interval_s: float = 0.5
    create_schema: bool = True  # create tables, outbox and triggers if missing
    connect_timeout_s: int = 5


def install_schema(conn: psycopg.Connection, schema: str) -> None:
    """Create the order tables, the outbox and its triggers in ``schema`` (idempotent)."""
    if not IDENTIFIER.match(schema):
        raise FatalError(f"{schema!r} is not a plain PostgreSQL schema name")
    with conn.transaction():
        # One installer at a time: CREATE ... IF NOT EXISTS races between sessions.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"journeybus:{schema}",))
        conn.execute(SCHEMA_SQL.read_text().replace("{schema}", schema))


def _lines(order: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "line_id": line["line_id"],
            "product_id": line["product_id"],
            "sku": line.get("sku"),
            "quantity": line["quantity"],
            "unit_price": float(line["unit_price"]),
            "discount": float(line.get("discount") or 0),
        }
        for line in order.get("lines") or []
    ]


def _money(value: Any) -> float | None:
    return None if value is None else float(value)


def fulfillment_record(row: dict[str, Any], captured_ms: int) -> dict[str, Any]:
    """The ``cust.fulfillment.raw.v1`` record of one outbox row (a pure function)."""
    kind, payload = row["event_type"], row["payload"]
    order = payload.get("order") or {}
    shipment, ret, ticket = payload.get("shipment"), payload.get("return"), payload.get("ticket")
    owner = ticket or order
    if not isinstance(owner, dict) or not owner.get("customer_id"):
        raise InvalidRecord("missing_id", f"outbox row {row['seq']} has no customer id")
    entity = (
        (ticket or {}).get("ticket_id") or (ret or {}).get("return_id") or order.get("order_id")
    )
    if not entity:
        raise InvalidRecord("missing_id", f"outbox row {row['seq']} names no order or ticket")
    return {
        "event_id": f"ful-{entity}-{kind}",
        "event_type": kind,
        "order_id": order.get("order_id") or (ticket or {}).get("order_id"),
        "customer_id": owner["customer_id"],
        "email": owner.get("email"),
        "sales_channel": order.get("sales_channel") or "web",
        "store_id": order.get("store_id"),
        "lines": _lines(order) if kind.startswith("order_") and ret is None else [],
        "order_total": _money(order.get("order_total")),
        "discount_total": _money(order.get("discount_total")),
        "currency": order.get("currency"),
        "coupon_code": order.get("coupon_code"),
        "shipment_id": (shipment or {}).get("shipment_id"),
        "carrier": (shipment or {}).get("carrier"),
        "return_id": (ret or {}).get("return_id"),
        "refund_amount": _money((ret or {}).get("refund_amount")),
        "ticket_id": (ticket or {}).get("ticket_id"),
        "reason": (ret or {}).get("reason")
        or (ticket or {}).get("subject")
        or (shipment or {}).get("delay_reason"),
        "occurred_at": row["occurred_at"],
        "captured_at": captured_ms,
        "source_position": f"{row['txid']}:{row['seq']}",
    }


@source("postgres-fulfillment", topic=FULFILLMENT)
class PostgresFulfillmentSource(PollingSource[FulfillmentSettings]):
    """Order events from the order-management database (see the module docstring).

    Guarantee: at least once, deterministic event ids. Key: customer id.
    """

    settings_class = FulfillmentSettings

    def setup(self) -> None:
        if not IDENTIFIER.match(self.conf.schema_name):
            raise FatalError(f"{self.conf.schema_name!r} is not a plain schema name")
        self.conn = self._connect()
        if self.conf.create_schema:
            install_schema(self.conn, self.conf.schema_name)
        row = self.conn.execute(
            f"SELECT txid::text AS txid, seq FROM {self.conf.schema_name}.journeybus_cursor "
            "WHERE connector = %s",
            (self.name,),
        ).fetchone()
        self.cursor = (row["txid"], row["seq"]) if row else START
        log.info("%s: resuming after outbox position %s:%s", self.name, *self.cursor)

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.conf.dsn.get_secret_value(),
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=self.conf.connect_timeout_s,
                application_name=f"journeybus-{self.name}",
            )
        except psycopg.OperationalError as exc:
            raise Retriable(f"{self.name}: cannot connect to PostgreSQL: {exc}") from None

    def _execute(self, sql: str, params: tuple) -> list[dict[str, Any]]:
        """Run ``sql``, reconnecting once the database is back; ``Retriable`` until then."""
        try:
            if self.conn.closed:
                self.conn = self._connect()
            cursor = self.conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError as exc:
            self.conn.close()
            raise Retriable(f"{self.name}: PostgreSQL: {exc}") from None

    def poll(self, max_records: int) -> list[SourceRecord]:
        rows = self._execute(
            # ORDER BY names the table's columns: a bare "txid" would be the text output
            # column, and '100000' sorts before '99840', so a batch crossing a power of
            # ten would move the cursor past the rows before it (lost for good).
            f"""SELECT o.seq, o.txid::text AS txid, o.event_type, o.payload, o.occurred_at
                  FROM {self.conf.schema_name}.journeybus_outbox o
                 WHERE o.txid < pg_snapshot_xmin(pg_current_snapshot())
                   AND (o.txid, o.seq) > (%s::xid8, %s)
                 ORDER BY o.txid, o.seq
                 LIMIT %s""",
            (*self.cursor, max_records),
        )
        captured = int(time.time() * 1000)
        records = []
        for row in rows:
            position = (row["txid"], row["seq"])
            try:
                records.append(SourceRecord(fulfillment_record(row, captured), position))
            except InvalidRecord as exc:
                original = orjson.dumps(row["payload"], default=str)
                records.append(SourceRecord.invalid(exc, original, position))
        return records

    def commit(self, position: tuple[str, int]) -> None:
        # Raising Retriable leaves the cursor where it was: the batch is re-sent
        # after a restart, with the same event ids.
        self._execute(
            f"""INSERT INTO {self.conf.schema_name}.journeybus_cursor (connector, txid, seq)
                VALUES (%s, %s::xid8, %s)
                ON CONFLICT (connector) DO UPDATE
                   SET txid = EXCLUDED.txid, seq = EXCLUDED.seq, updated_at = now()""",
            (self.name, *position),
        )
        self.cursor = position

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
