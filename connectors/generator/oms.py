"""Sample orders in the order-management database, as a shop's back office writes them.

Used by ``journeybus oms sample`` (demo data for the ``postgres-fulfillment``
source) and by its tests. Each order is its own transaction (order + lines),
then payment, shipment, delivery or delay, some returns and refunds, and support
tickets follow in later transactions, in that order. ``expected_events`` says
which fulfilment events the writes must produce.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import psycopg

from connectors.sources.postgres_fulfillment import install_schema


@dataclass
class SampleOrders:
    """What ``write_sample_orders`` wrote: the event ids it implies, by customer."""

    events: dict[str, str] = field(default_factory=dict)  # event id -> customer id

    def expect(self, entity: str, kind: str, customer: str) -> None:
        self.events[f"ful-{entity}-{kind}"] = customer


def write_sample_orders(
    dsn: str,
    schema: str,
    orders: int,
    seed: int = 7,
    customers: int = 50,
    first: int = 0,
    prefix: str = "ord",
) -> SampleOrders:
    """Write ``orders`` orders (ids ``<prefix>-<first>``...) and their follow-ups."""
    rng = random.Random(seed + first)
    out = SampleOrders()
    with psycopg.connect(dsn, autocommit=True) as conn:
        install_schema(conn, schema)
        for n in range(first, first + orders):
            order_id = f"{prefix}-{n:06d}"
            customer = f"cust-{rng.randrange(customers):05d}"
            channel = rng.choice(("web", "web", "app", "store"))
            lines = [
                (
                    str(i + 1),
                    f"p-{rng.randrange(60):04d}",
                    rng.randint(1, 3),
                    rng.choice((19.5, 49.0, 89.99)),
                )
                for i in range(rng.randint(1, 3))
            ]
            total = round(sum(q * p for _, _, q, p in lines), 2)
            with conn.transaction():
                conn.execute(
                    f"INSERT INTO {schema}.orders (order_id, customer_id, email, sales_channel, "
                    "store_id, order_total) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        order_id,
                        customer,
                        f"{customer}@example.com",
                        channel,
                        "store-leeds-2" if channel == "store" else None,
                        total,
                    ),
                )
                conn.cursor().executemany(
                    f"INSERT INTO {schema}.order_lines (order_id, line_id, product_id, quantity, "
                    "unit_price) VALUES (%s, %s, %s, %s, %s)",
                    [(order_id, *line) for line in lines],
                )
            out.expect(order_id, "order_placed", customer)
            conn.execute(
                f"UPDATE {schema}.orders SET status = 'paid', paid_at = now() WHERE order_id = %s",
                (order_id,),
            )
            out.expect(order_id, "order_paid", customer)
            if channel == "store":
                continue
            conn.execute(
                f"INSERT INTO {schema}.shipments (shipment_id, order_id, carrier) "
                "VALUES (%s, %s, %s)",
                (f"shp-{order_id}", order_id, rng.choice(("dpd", "royal-mail"))),
            )
            out.expect(order_id, "order_shipped", customer)
            outcome = "delayed" if rng.random() < 0.15 else "delivered"
            conn.execute(
                f"UPDATE {schema}.shipments SET status = %s, updated_at = now(), "
                "delay_reason = %s WHERE shipment_id = %s",
                (outcome, "weather" if outcome == "delayed" else None, f"shp-{order_id}"),
            )
            out.expect(order_id, f"order_{outcome}", customer)
            if outcome == "delivered" and rng.random() < 0.2:
                return_id = f"ret-{order_id}"
                conn.execute(
                    f"INSERT INTO {schema}.returns (return_id, order_id, reason) "
                    "VALUES (%s, %s, 'too small')",
                    (return_id, order_id),
                )
                out.expect(return_id, "order_returned", customer)
                conn.execute(
                    f"UPDATE {schema}.returns SET status = 'refunded', refund_amount = %s, "
                    "refunded_at = now() WHERE return_id = %s",
                    (total, return_id),
                )
                out.expect(return_id, "order_refunded", customer)
            if outcome == "delayed":
                ticket_id = f"tkt-{order_id}"
                conn.execute(
                    f"INSERT INTO {schema}.support_tickets (ticket_id, customer_id, email, "
                    "order_id, subject) VALUES (%s, %s, %s, %s, 'Where is my order?')",
                    (ticket_id, customer, f"{customer}@example.com", order_id),
                )
                out.expect(ticket_id, "ticket_opened", customer)
                if rng.random() < 0.5:
                    conn.execute(
                        f"UPDATE {schema}.support_tickets SET status = 'closed', "
                        "closed_at = now() WHERE ticket_id = %s",
                        (ticket_id,),
                    )
                    out.expect(ticket_id, "ticket_closed", customer)
    return out
