"""Fuzzed requests against a running collector (real broker): malformed JSON, wrong
types, huge strings, deep nesting, invalid UTF-8, gzip bombs, corrupt or unsupported
compression, missing or non-string ids, future and past timestamps, oversized bodies, bad
write keys, mixed into batches of good events.

Every request is answered within the client's timeout with the status its kind
calls for and a JSON error body, never a 5xx; every bad event of an accepted batch
is listed as rejected with a reason (and dead-lettered); at the end every good
event is on the topic exactly once, and the process's memory stayed bounded.
"""

from __future__ import annotations

import gzip
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.sources.http_collector import SOURCE_TOPICS
from connectors.testing import read_topic
from streams.app.demo import free_port
from streams.runtime.deadletter import dead_letter_topic
from tests.polling import wait_until

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]

KEY = "fuzz-web"
WEB = SOURCE_TOPICS["web"]
MAX_BODY = 500 * 1024
_ids = itertools.count()


@dataclass
class Sent:
    good: set[str] = field(default_factory=set)  # messageIds the collector must deliver
    dead: int = 0  # events it listed as rejected (dead-lettered)
    requests: int = 0


@dataclass
class Target:
    url: str
    prefix: str
    bootstrap: str
    client: httpx.Client
    sent: Sent
    pid: int


@pytest.fixture(scope="module")
def target(bootstrap: str, tmp_path_factory) -> Iterator[Target]:
    """The collector as its own process (``journeybus collect``), so that its memory
    can be read from /proc."""
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = f"fuzz.{uuid.uuid4().hex[:8]}."
    topics = [prefix + t for s in SOURCE_TOPICS.values() for t in (s, dead_letter_topic(s))]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, 2, 1) for t in topics]).values():
        future.result(timeout=30)
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "JOURNEYBUS__RUNTIME_DIR": str(tmp_path_factory.mktemp("fuzz")),
        "CONNECTORS__HTTP_COLLECTOR__TOPIC_PREFIX": prefix,
        "CONNECTORS__HTTP_COLLECTOR__WRITE_KEYS": orjson.dumps({KEY: "web"}).decode(),
        "CONNECTORS__HTTP_COLLECTOR__RATE_LIMIT_EVENTS_PER_S": "0",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.app.cli", "collect", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(url + "/health"), 60), "the collector did not start"
        with httpx.Client(base_url=url, timeout=20) as client:
            yield Target(url, prefix, bootstrap, client, Sent(), proc.pid)
        assert proc.poll() is None, "the collector died"
    finally:
        proc.terminate()
        proc.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def memory_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {
        k: int(v.split()[0])
        for k, v in (line.split(":", 1) for line in status.splitlines())
        if k in ("VmRSS", "VmHWM")
    }
    return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024


def good_event() -> dict:
    n = next(_ids)
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"fz-{uuid.uuid4().hex[:12]}-{n}",
        "anonymousId": f"anon-{n % 97}",
        "timestamp": "2026-11-01T12:00:00.000Z",
        "properties": {"product_id": f"p-{n % 50}"},
    }


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = {"n": value}
    return value


# An event mutation: (name, function of a good event -> bad event).
MUTATIONS = {
    "missing_ids": lambda e: {k: v for k, v in e.items() if k not in ("messageId", "anonymousId")},
    "unknown_type": lambda e: {**e, "type": "teleport"},
    "wrong_type_properties": lambda e: {**e, "properties": ["not", "an", "object"]},
    "wrong_type_event": lambda e: {**e, "event": {"name": 1}},
    "huge_string": lambda e: {**e, "properties": {"blob": "x" * 40_000}},
    "not_an_object": lambda e: [e],
    "id_not_a_string": lambda e: {**e, "anonymousId": True, "userId": None},
    "message_id_object": lambda e: {**e, "messageId": {"id": e["messageId"]}},
}
# Mutations the collector may accept (the normalise stage judges them): they must be
# answered 200 and either accepted or rejected with a reason.
LENIENT = {
    "future_timestamp": lambda e: {**e, "timestamp": "2199-01-01T00:00:00Z"},
    "past_timestamp": lambda e: {**e, "timestamp": "1970-01-01T00:00:00Z"},
    "garbage_timestamp": lambda e: {**e, "timestamp": "yesterday-ish"},
    "deep_properties": lambda e: {**e, "properties": nested(60)},
    "arbitrary_extra": lambda e: {**e, "context": {"x": [1, 2, {"y": None}]}},
}


batch_kinds = st.lists(
    st.sampled_from(["good", "good", *MUTATIONS, *LENIENT]), min_size=1, max_size=12
)


def build_batch(kinds: list[str]) -> tuple[dict, list[str], int, int]:
    """A valid batch of good and mutated events (fresh ids each time)."""
    events, good, bad, lenient = [], [], 0, 0
    for kind in kinds:
        event = good_event()
        if kind == "good":
            good.append(event["messageId"])
            events.append(event)
        elif kind in MUTATIONS:
            events.append(MUTATIONS[kind](event))
            bad += 1
        else:
            events.append(LENIENT[kind](event))
            lenient += 1
    return {"batch": events}, good, bad, lenient


# 2 MB to 64 MB of JSON in 2 to 64 KB of gzip (made once: compressing is the slow part)
BOMBS = [gzip.compress(b'{"batch": ["' + b" " * (mb << 20) + b'"]}', 9) for mb in (2, 16, 64)]


def request_kinds():
    """(kind, body bytes, headers) of a request that must be refused as a whole."""
    return st.one_of(
        st.tuples(st.just("random_bytes"), st.binary(max_size=400), st.just({})),
        st.tuples(
            st.just("wrong_shape"),
            json_values.filter(lambda v: not isinstance(v, dict) or "batch" not in v).map(
                orjson.dumps
            ),
            st.just({}),
        ),
        st.tuples(
            st.just("invalid_utf8"),
            st.binary(min_size=1, max_size=30).map(
                lambda b: b'{"batch": [{"type": "track", "event": "' + b"\xff\xfe" + b + b'"}]}'
            ),
            st.just({}),
        ),
        st.tuples(
            st.just("deep_nesting"),
            st.integers(2000, 200_000).map(lambda n: b"[" * n + b"]" * n),
            st.just({}),
        ),
        st.tuples(
            st.just("oversized"),
            st.integers(MAX_BODY + 1, MAX_BODY + 300_000).map(
                lambda n: b'{"batch": [], "pad": "' + b"x" * n + b'"}'
            ),
            st.just({}),
        ),
        st.tuples(
            st.just("gzip_bomb"), st.sampled_from(BOMBS), st.just({"Content-Encoding": "gzip"})
        ),
        st.tuples(
            st.just("corrupt_compression"),
            st.binary(max_size=200).map(lambda b: b"\x1f\x8b\x08\x00" + b),
            st.sampled_from([{"Content-Encoding": "gzip"}, {"Content-Encoding": "deflate"}]),
        ),
        st.tuples(
            st.just("unsupported_encoding"),
            st.just(b'{"batch": []}'),
            st.sampled_from(["br", "zstd", "compress", "x-custom"]).map(
                lambda enc: {"Content-Encoding": enc}
            ),
        ),
        st.tuples(
            st.just("bad_key"),
            st.text(max_size=30).map(lambda k: orjson.dumps({"writeKey": k, "batch": []})),
            st.just({"X-No-Auth": "1"}),
        ),
    )


EXPECTED = {
    "random_bytes": {400},
    "wrong_shape": {400},
    "invalid_utf8": {400},
    "deep_nesting": {400},
    "oversized": {413},
    "gzip_bomb": {413, 400},
    "corrupt_compression": {400},
    "unsupported_encoding": {415},
    "bad_key": {401},
}


def post(target: Target, body: bytes, headers: dict, auth: bool = True) -> httpx.Response:
    target.sent.requests += 1
    return target.client.post(
        "/v1/batch",
        content=body,
        headers={"Content-Type": "application/json", **headers},
        auth=(KEY, "") if auth else None,
    )


@given(request=request_kinds())
def test_malformed_requests_get_their_status_and_a_json_error(target, request):
    kind, body, headers = request
    response = post(target, body, headers, auth=kind != "bad_key")
    assert response.status_code in EXPECTED[kind], (kind, response.status_code, response.text)
    error = response.json()
    assert set(error) == {"code", "message"} and error["code"], error


@given(kinds=batch_kinds)
def test_bad_events_are_rejected_with_a_reason_and_good_ones_accepted(target, kinds):
    body, good, bad, lenient = build_batch(kinds)
    response = post(target, orjson.dumps(body), {})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert all(r["code"] and r["message"] for r in answer["rejected"])
    assert bad <= len(answer["rejected"]) <= bad + lenient
    assert answer["accepted"] + answer["duplicates"] + len(answer["rejected"]) == len(body["batch"])
    target.sent.good.update(good)
    target.sent.dead += len(answer["rejected"])


def test_every_good_event_is_delivered_once_and_memory_stayed_bounded(target):
    """Runs after the properties above (file order): what they sent arrived."""
    assert target.sent.good, "the properties sent good events"
    records = read_topic(target.bootstrap, target.prefix + WEB, WEB)
    ids = [r.value["event_id"] for r in records]
    assert len(ids) == len(set(ids))  # nothing twice
    assert target.sent.good <= set(ids)  # every good event (lenient ones may be there too)
    dead = read_topic(
        target.bootstrap, target.prefix + dead_letter_topic(WEB), dead_letter_topic(WEB)
    )
    assert len(dead) == target.sent.dead and all(d.value["error_type"] for d in dead)
    now_mb, peak_mb = memory_mb(target.pid)
    print(
        f"\nfuzz: {target.sent.requests} requests, {len(target.sent.good)} good events "
        f"delivered, {target.sent.dead} dead-lettered; collector RSS {now_mb:.0f} MB "
        f"(peak {peak_mb:.0f} MB)"
    )
    # bounded: gzip bombs and 500 KB bodies come and go; what stays is the dedupe memory
    assert now_mb < 600 and peak_mb < 1024
