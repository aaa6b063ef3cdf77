"""The PostgreSQL source reads its outbox in transaction-id order, numerically.

Transaction ids are text in the rows the source reads; ordering by that text put
'100000' before '99840', so the first batch read across a power of ten moved the
cursor past every row before it (144 events lost in one crash-test run, 26 in a
CI run). The rows here carry explicit transaction ids that cross 10, 100 and 1000,
so the order is checked without waiting for the database's own counter to get there.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from connectors.sources.postgres_fulfillment import (
    FulfillmentSettings,
    PostgresFulfillmentSource,
    install_schema,
)
from streams.core.settings import Settings

pytestmark = pytest.mark.postgres

TXIDS = [8, 9, 9, 10, 11, 99, 100, 100, 101, 998, 999, 1000, 1001]


@pytest.fixture
def outbox():
    conf = FulfillmentSettings(schema_name=f"order_{uuid.uuid4().hex[:10]}", batch_max_records=3)
    with psycopg.connect(conf.dsn.get_secret_value(), autocommit=True) as conn:
        install_schema(conn, conf.schema_name)
        for n, txid in enumerate(TXIDS):
            order = {"order_id": f"o{n}", "customer_id": f"c{n}", "order_total": 1}
            conn.execute(
                f"INSERT INTO {conf.schema_name}.journeybus_outbox "
                "(txid, event_type, entity_id, payload, occurred_at) "
                "VALUES (%s::text::xid8, 'order_placed', %s, %s, now())",
                (str(txid), f"o{n}", Jsonb({"order": order})),
            )
        try:
            yield conf
        finally:
            conn.execute(f"DROP SCHEMA {conf.schema_name} CASCADE")


def test_batches_follow_transaction_ids_numerically_across_powers_of_ten(outbox):
    source = PostgresFulfillmentSource(Settings(), conf=outbox)
    source.setup()
    try:
        read = []
        while batch := source.poll(outbox.batch_max_records):
            read += [int(r.position[0]) for r in batch]
            source.commit(batch[-1].position)
    finally:
        source.close()
    assert read == TXIDS, "every row once, in numeric transaction-id order"


def test_a_restart_resumes_after_the_cursor_numerically(outbox):
    first = PostgresFulfillmentSource(Settings(), conf=outbox)
    first.setup()
    try:
        batch = first.poll(5)  # up to txid 11, the next row is 99
        first.commit(batch[-1].position)
    finally:
        first.close()
    second = PostgresFulfillmentSource(Settings(), conf=outbox)
    second.setup()
    try:
        rest = second.poll(100)
    finally:
        second.close()
    assert [int(r.position[0]) for r in rest] == TXIDS[5:]
