"""The demo's activation step: once the agents have settled, a campaign asks for one
message to every member of each audience that has a curated message set, and waits
until every request is decided (``cust.message-requests.v1`` →
``cust.message-decisions.v1``), as a marketer's send tool would.

Request ids are the seed, audience and customer: a demo run again with the same seed
asks nothing new (the agents remember what they decided).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click
import pyarrow as pa

from connectors.sinks.duckdb.query import connect_read_only
from streams.activation.definitions import load_audiences, load_messages
from streams.core.catalog import record_key
from streams.core.codec import make_codec
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from streams.core.topics import MESSAGE_REQUESTS

ACTIVATION_COUNTS = (
    "SELECT (SELECT count(*) FROM audience_changes), (SELECT count(*) FROM channel_decisions), "
    "(SELECT count(*) FROM recommendations)"
)


def _read(settings: Settings, sql: str, tables: dict[str, pa.Table] | None = None) -> Any:
    try:
        with connect_read_only(settings) as db:
            for name, table in (tables or {}).items():
                db.register(name, table)
            return db.execute(sql).fetchall()
    except Exception:  # the snapshot is being replaced or not there yet
        return None


def wait_until_quiet(read: Callable[[], Any], quiet_s: float, timeout_s: float) -> Any:
    """Poll ``read`` until its result has not changed for ``quiet_s``; the last result."""
    deadline = time.monotonic() + timeout_s
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


def campaign_requests(settings: Settings, seed: int, now_ms: int) -> list[dict[str, Any]]:
    """One request per member of each audience with a message set."""
    conf = settings.activation
    audiences = load_audiences(conf.audiences_file, conf.inferred_floor)
    messages = load_messages(audiences, conf.messages_file, conf.max_variants)
    members = (
        _read(settings, "SELECT audience, customer_key FROM audience_members ORDER BY ALL") or []
    )
    return [
        {
            "request_id": f"demo-{seed}-{audience}-{customer}",
            "customer_key": customer,
            "audience": audience,
            "channel": None,
            "campaign_id": f"demo-{seed}",
            "requested_at": now_ms,
        }
        for audience, customer in members
        if audience in messages
    ]


def run_campaign(settings: Settings, bootstrap: str, seed: int, timeout_s: float = 90.0) -> str:
    """Ask for a message to every audience member and wait for the decisions; a line
    saying what was decided."""
    wait_until_quiet(lambda: _read(settings, ACTIVATION_COUNTS), 4.0, timeout_s)
    requests = campaign_requests(settings, seed, int(time.time() * 1000))
    if not requests:
        return "activation: no audience member to send a message to"
    codec = make_codec(settings)
    spec = codec.catalog.topic(MESSAGE_REQUESTS)
    producer = make_producer(settings, bootstrap)
    for request in requests:
        key = record_key(spec, request)
        producer.produce(MESSAGE_REQUESTS, codec.encode(MESSAGE_REQUESTS, request), key.encode())
        producer.poll(0)
    if producer.flush(30):
        raise click.ClickException("the campaign's message requests were not acknowledged")
    ids = pa.table({"id": [r["request_id"] for r in requests]})
    sql = (
        "SELECT count(DISTINCT decision_id), count(DISTINCT decision_id) FILTER "
        "(WHERE outcome = 'send') FROM message_decisions WHERE decision_id IN "
        "(SELECT id FROM requests)"
    )
    deadline = time.monotonic() + timeout_s
    decided = sent = 0
    while time.monotonic() < deadline and decided < len(requests):
        time.sleep(1.0)
        decided, sent = (_read(settings, sql, {"requests": ids}) or [(0, 0)])[0]
    if decided < len(requests):
        raise click.ClickException(
            f"the activation agents decided {decided} of {len(requests)} message requests in "
            f"time; see {settings.runtime_dir / 'logs' / 'activation.log'}"
        )
    return (
        f"activation: a campaign asked for {len(requests)} messages to audience members; "
        f"{decided} decided ({sent} to send, {decided - sent} held by a channel decision "
        "or the guardrail)"
    )
