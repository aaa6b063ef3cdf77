"""Erasure (right to be forgotten): which customers were forgotten, and since when.

``cust.erasure.v1`` holds every request, in one partition kept forever. Every
stage and the sink read it whole into an ``ErasureList`` before they process
anything, and keep reading it. A request names the customer key and the
identifiers linked to it when it was made. What a consumer does with it:

- *hide* data received before the request: a replay of old input (a restart,
  a rebuilt state or table) never brings a forgotten customer back;
- with ``opt_out``, hide the customer's later data too (suppression);
- drop the state it holds for the customer (a stage) or delete its rows (the
  sink), once per request.

Keys are compared in their customer-key form (``streams.identity.graph.key_of``):
``u-1``, ``anon-7``, ``email:<hash>``; the raw identifier values are matched too,
since tables keep anonymous ids and user ids in their own columns.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streams.core.errors import InvalidRecord
from streams.core.keys import KEY_PREFIX, key_of, node
from streams.core.timecheck import sane_time


@dataclass(frozen=True)
class Erased:
    """How a key was forgotten: since when (ms) and whether later data is suppressed."""

    requested_at: int
    opt_out: bool

    def hides(self, received_ms: int | None) -> bool:
        """True for data received before the request, and for anything after an opt-out."""
        return self.opt_out or received_ms is None or received_ms < self.requested_at


def check_request(request: dict[str, Any]) -> None:
    """Raise ``InvalidRecord`` for a request no consumer can act on: without a request
    id or customer key, or made at a time no table can hold (``sane_time``)."""
    if not request["request_id"] or not request["customer_key"]:
        raise InvalidRecord("missing_id", "an erasure request needs its id and customer key")
    if not sane_time(_millis(request["requested_at"])):
        raise InvalidRecord("impossible_timestamp", f"requested at {request['requested_at']}")


def request_keys(request: dict[str, Any]) -> set[str]:
    """Every string by which the request's customer can appear in a record or row: the
    customer key, and each identifier both as a key (``email:<hash>``) and as is."""
    keys = {request["customer_key"]}
    for ident in request["identifiers"]:
        if ident["kind"] in KEY_PREFIX and ident["value"]:
            keys.add(key_of(node(ident["kind"], ident["value"])))
            keys.add(ident["value"])
    return keys


def request_nodes(request: dict[str, Any]) -> list[str]:
    """The identity-graph nodes a request names."""
    return [
        node(i["kind"], i["value"])
        for i in request["identifiers"]
        if i["kind"] in KEY_PREFIX and i["value"]
    ]


def new_request(
    customer_key: str,
    identifiers: Iterable[tuple[str, str]],
    requested_at: int,
    opt_out: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """A ``cust.erasure.v1`` record; identifiers are (kind, value) pairs."""
    return {
        "request_id": f"erase-{uuid.uuid4().hex}",
        "customer_key": customer_key,
        "identifiers": [{"kind": k, "value": v} for k, v in sorted(set(identifiers))],
        "opt_out": opt_out,
        "reason": reason,
        "requested_at": requested_at,
    }


class ErasureList:
    """Every erasure request read so far, in topic order, and the keys they forgot.

    ``add`` is what a side input applies; ``on_request`` callbacks run for each
    new request (a stage drops what it holds in memory). Requests are numbered
    in the order read: a store that remembers how many it has applied applies
    each one once (``since``).
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self.keys: dict[str, Erased] = {}
        self.on_request: list[Callable[[dict[str, Any]], None]] = []

    def __len__(self) -> int:
        return len(self.requests)

    def add(self, request: dict[str, Any]) -> bool:
        """Take a request; False if it was read before (a producer's retry wrote it twice).
        Raises ``InvalidRecord`` for a request no consumer can act on (every consumer
        skips it alike; the sink dead-letters it)."""
        check_request(request)
        if request["request_id"] in self._ids:
            return False
        self._ids.add(request["request_id"])
        self.requests.append(request)
        requested_at = _millis(request["requested_at"])
        for key in request_keys(request):
            old = self.keys.get(key)
            self.keys[key] = Erased(
                max(requested_at, old.requested_at) if old else requested_at,
                request["opt_out"] or (old.opt_out if old else False),
            )
        for callback in self.on_request:
            callback(request)
        return True

    def since(self, applied: int) -> list[dict[str, Any]]:
        """The requests after the first ``applied``."""
        return self.requests[applied:]

    def hides(self, key: str | None, received_ms: int | None) -> bool:
        """True when data of ``key`` received at ``received_ms`` must be forgotten."""
        if not self.keys or key is None:
            return False
        erased = self.keys.get(key)
        return erased is not None and erased.hides(received_ms)

    def hides_any(self, keys: Iterable[str | None], received_ms: int | None) -> bool:
        if not self.keys:
            return False
        return any(self.hides(key, received_ms) for key in keys)


def _millis(value: Any) -> int:
    """``requested_at`` as decoded (a datetime) or as written (ms)."""
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)
