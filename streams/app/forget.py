"""``journeybus forget``: resolve a customer's identity group and publish the request."""

from __future__ import annotations

import time
from typing import Any

from streams.core.codec import Codec
from streams.core.errors import FatalError
from streams.core.kafka import make_producer
from streams.core.keys import nodes_for_key
from streams.core.settings import Settings
from streams.core.topics import ERASURE, IDENTITY
from streams.identity.graph import IdentityGraph
from streams.normalise.stage import identity_nodes
from streams.runtime.erasures import new_request
from streams.runtime.sideinput import SideInput


def identity_group(
    settings: Settings, bootstrap: str, codec: Codec, customer_key: str
) -> list[tuple[str, str]]:
    """Every identifier linked to ``customer_key`` by the identity evidence published so
    far, as (kind, value); the identifiers the key can stand for if none is known."""

    graph = IdentityGraph()
    side = SideInput(IDENTITY, lambda r: graph.link(identity_nodes(r)), codec, settings, bootstrap)
    try:
        side.catch_up()
    finally:
        side.close()
    candidates = nodes_for_key(customer_key)
    known = [n for n in candidates if n in graph]
    nodes = sorted({m for n in known for m in graph.group(n)}) if known else candidates
    return [(n.partition(":")[0], n.partition(":")[2]) for n in nodes]


def publish_request(
    settings: Settings, bootstrap: str, codec: Codec, request: dict[str, Any]
) -> None:
    """Publish an erasure request and wait for the broker's acknowledgement."""
    producer = make_producer(settings, bootstrap, **{"client.id": "journeybus-forget"})
    errors: list[str] = []
    producer.produce(
        ERASURE,
        codec.encode(ERASURE, request),
        request["customer_key"].encode(),
        on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
    )
    if producer.flush(30) or errors:
        raise FatalError(f"erasure request not acknowledged by the broker: {errors[:1]}")


def forget(
    settings: Settings,
    bootstrap: str,
    codec: Codec,
    customer_key: str,
    opt_out: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Resolve ``customer_key``'s identity group and publish its erasure request."""
    identifiers = identity_group(settings, bootstrap, codec, customer_key)
    request = new_request(
        customer_key, identifiers, int(time.time() * 1000), opt_out=opt_out, reason=reason
    )
    publish_request(settings, bootstrap, codec, request)
    return request
