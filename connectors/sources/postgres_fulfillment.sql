-- The order-management schema the postgres-fulfillment source captures, and its outbox.
--
-- Every business change is written to {schema}.journeybus_outbox by triggers, in
-- the same transaction as the change. The triggers are DEFERRABLE INITIALLY
-- DEFERRED constraint triggers: they run at commit, so an order's payload holds
-- the lines inserted after the order row in the same transaction. Each outbox row
-- carries its transaction id (xid8); the source reads only rows of transactions
-- older than every transaction still running (pg_snapshot_xmin), in (txid, seq)
-- order, so a row can never appear behind the cursor later.

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE IF NOT EXISTS {schema}.orders (
    order_id        text PRIMARY KEY,
    customer_id     text NOT NULL,
    email           text,
    sales_channel   text NOT NULL DEFAULT 'web'
                    CHECK (sales_channel IN ('web', 'app', 'store', 'phone', 'marketplace')),
    store_id        text,
    status          text NOT NULL DEFAULT 'placed'
                    CHECK (status IN ('placed', 'paid', 'cancelled')),
    currency        text NOT NULL DEFAULT 'GBP',
    order_total     numeric(12, 2) NOT NULL,
    discount_total  numeric(12, 2) NOT NULL DEFAULT 0,
    coupon_code     text,
    placed_at       timestamptz NOT NULL DEFAULT now(),
    paid_at         timestamptz
);

CREATE TABLE IF NOT EXISTS {schema}.order_lines (
    order_id    text NOT NULL REFERENCES {schema}.orders,
    line_id     text NOT NULL,
    product_id  text NOT NULL,
    sku         text,
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(12, 2) NOT NULL,
    discount    numeric(12, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, line_id)
);

CREATE TABLE IF NOT EXISTS {schema}.shipments (
    shipment_id   text PRIMARY KEY,
    order_id      text NOT NULL REFERENCES {schema}.orders,
    carrier       text,
    status        text NOT NULL DEFAULT 'shipped'
                  CHECK (status IN ('shipped', 'delayed', 'delivered')),
    delay_reason  text,
    shipped_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {schema}.returns (
    return_id      text PRIMARY KEY,
    order_id       text NOT NULL REFERENCES {schema}.orders,
    reason         text,
    status         text NOT NULL DEFAULT 'returned' CHECK (status IN ('returned', 'refunded')),
    refund_amount  numeric(12, 2),
    returned_at    timestamptz NOT NULL DEFAULT now(),
    refunded_at    timestamptz
);

CREATE TABLE IF NOT EXISTS {schema}.support_tickets (
    ticket_id    text PRIMARY KEY,
    customer_id  text NOT NULL,
    email        text,
    order_id     text REFERENCES {schema}.orders,
    subject      text,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_at    timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz
);

CREATE TABLE IF NOT EXISTS {schema}.journeybus_outbox (
    seq          bigserial PRIMARY KEY,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_type   text NOT NULL,
    entity_id    text NOT NULL,
    payload      jsonb NOT NULL,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS journeybus_outbox_position
    ON {schema}.journeybus_outbox (txid, seq);

CREATE TABLE IF NOT EXISTS {schema}.journeybus_cursor (
    connector   text PRIMARY KEY,
    txid        xid8 NOT NULL,
    seq         bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- An order as events carry it: the header and its lines.
CREATE OR REPLACE FUNCTION {schema}.journeybus_order_json(p_order_id text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT to_jsonb(o) || jsonb_build_object('lines', coalesce(
        (SELECT jsonb_agg(to_jsonb(l) ORDER BY l.line_id)
           FROM {schema}.order_lines l WHERE l.order_id = o.order_id), '[]'::jsonb))
      FROM {schema}.orders o WHERE o.order_id = p_order_id
$$;

CREATE OR REPLACE FUNCTION {schema}.journeybus_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    entity text;
    at timestamptz;
    body jsonb;
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        IF TG_OP = 'INSERT' THEN
            kind := 'order_placed'; at := NEW.placed_at;
        ELSIF NEW.status = 'paid' AND OLD.status IS DISTINCT FROM 'paid' THEN
            kind := 'order_paid'; at := coalesce(NEW.paid_at, now());
        END IF;
        entity := NEW.order_id;
        body := jsonb_build_object('order', {schema}.journeybus_order_json(NEW.order_id));
    ELSIF TG_TABLE_NAME = 'shipments' THEN
        IF TG_OP = 'INSERT' THEN
            kind := 'order_shipped'; at := NEW.shipped_at;
        ELSIF NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('delayed', 'delivered') THEN
            kind := 'order_' || NEW.status; at := NEW.updated_at;
        END IF;
        entity := NEW.order_id;
        body := jsonb_build_object('order', {schema}.journeybus_order_json(NEW.order_id),
                                   'shipment', to_jsonb(NEW));
    ELSIF TG_TABLE_NAME = 'returns' THEN
        IF TG_OP = 'INSERT' THEN
            kind := 'order_returned'; at := NEW.returned_at;
        ELSIF NEW.status = 'refunded' AND OLD.status IS DISTINCT FROM 'refunded' THEN
            kind := 'order_refunded'; at := coalesce(NEW.refunded_at, now());
        END IF;
        entity := NEW.return_id;
        body := jsonb_build_object('order', {schema}.journeybus_order_json(NEW.order_id),
                                   'return', to_jsonb(NEW));
    ELSIF TG_TABLE_NAME = 'support_tickets' THEN
        IF TG_OP = 'INSERT' THEN
            kind := 'ticket_opened'; at := NEW.opened_at;
        ELSIF NEW.status = 'closed' AND OLD.status IS DISTINCT FROM 'closed' THEN
            kind := 'ticket_closed'; at := coalesce(NEW.closed_at, now());
        END IF;
        entity := NEW.ticket_id;
        body := jsonb_build_object('ticket', to_jsonb(NEW));
    END IF;
    IF kind IS NOT NULL THEN
        INSERT INTO {schema}.journeybus_outbox (event_type, entity_id, payload, occurred_at)
        VALUES (kind, entity, body, at);
    END IF;
    RETURN NULL;
END
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['orders', 'shipments', 'returns', 'support_tickets'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger
                        WHERE tgname = 'journeybus_capture'
                          AND tgrelid = format('{schema}.%I', t)::regclass) THEN
            EXECUTE format('CREATE CONSTRAINT TRIGGER journeybus_capture
                AFTER INSERT OR UPDATE ON {schema}.%I
                DEFERRABLE INITIALLY DEFERRED
                FOR EACH ROW EXECUTE FUNCTION {schema}.journeybus_capture()', t);
        END IF;
    END LOOP;
END
$$;
