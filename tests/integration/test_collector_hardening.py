"""The collector never answers 5xx to bad input, counts every answer, keeps no write key
in a dead letter and echoes none in a configuration error (real broker)."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from connectors.sources.http_collector import HttpCollector
from tests.integration.test_collector import Collector, start_collector

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def collector(bootstrap: str, tmp_path) -> Iterator[Collector]:
    yield from start_collector(bootstrap, tmp_path, header_timeout_s=1.0)


def event(mid: str, depth: int = 0) -> str:
    """A Segment track call whose properties nest ``depth`` levels (as JSON text: a
    Python encoder stops far short of 1,000 levels)."""
    nested = '{"n":' * depth + '"deep"' + "}" * depth
    return (
        '{"type": "track", "event": "Viewed", "anonymousId": "anon-1", '
        f'"messageId": "{mid}", "properties": {{"deep": {nested}}}}}'
    )


def requests_counted(route: str, status: int) -> float:
    value = REGISTRY.get_sample_value(
        "journeybus_collector_requests_total", {"route": route, "status": str(status)}
    )
    return value or 0.0


def is_json_error(response: httpx.Response) -> bool:
    body = response.json()
    return set(body) == {"code", "message"} and bool(body["code"])


def test_any_nesting_depth_gets_a_json_answer_and_the_good_events_go_through(collector):
    for depth in range(0, 1001, 50):
        run = f"depth-{depth}-"
        body = f'{{"batch": [{event(run + "deep", depth)}, {event(run + "flat")}]}}'
        response = httpx.post(
            collector.url + "/v1/batch",
            content=body,
            auth=("seg-web", ""),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, (depth, response.text)
        answer = response.json()
        rejected = {r["index"]: r["code"] for r in answer["rejected"]}
        assert answer["accepted"] + len(rejected) == 2
        assert 1 not in rejected, (depth, answer)  # the good event of the batch
        assert rejected in ({}, {0: "too_deep"}), (depth, answer)
        if depth <= 200 or depth >= 300:  # JSON encoders stop near 254 levels
            assert (0 in rejected) == (depth >= 300), depth
    ids = {r.value["event_id"] for r in collector.records("web")}
    assert {f"depth-{d}-flat" for d in range(0, 1001, 50)} <= ids
    dead = [d.value for d in collector.dead_letters("web")]
    assert dead and all(d["error_type"] == "too_deep" and d["original"] for d in dead)


@pytest.mark.parametrize(
    "encoding,body,status,code",
    [
        ("gzip", b"\x1f\x8b\x08\x00garbage", 400, "invalid_encoding"),
        ("gzip", gzip.compress(b'{"batch": []}')[:-6], 400, "invalid_encoding"),  # cut short
        ("gzip", b'{"batch": []}', 400, "invalid_encoding"),  # plain, labelled gzip
        ("deflate", b'{"batch": []}', 400, "invalid_encoding"),
        ("br", b'{"batch": []}', 415, "unsupported_encoding"),
        ("zstd", b'{"batch": []}', 415, "unsupported_encoding"),
        ("compress", b'{"batch": []}', 415, "unsupported_encoding"),
    ],
)
def test_bad_or_unsupported_compression_is_a_json_4xx(collector, encoding, body, status, code):
    before = requests_counted("/v1/batch", status) + requests_counted("protocol", status)
    response = httpx.post(
        collector.url + "/v1/batch",
        content=body,
        auth=("seg-web", ""),
        headers={"Content-Type": "application/json", "Content-Encoding": encoding},
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert is_json_error(response)
    after = requests_counted("/v1/batch", status) + requests_counted("protocol", status)
    assert after == before + 1


def test_gzip_still_works(collector):
    body = gzip.compress(f'{{"batch": [{event("gz-1")}]}}'.encode())
    response = httpx.post(
        collector.url + "/v1/batch",
        content=body,
        auth=("seg-web", ""),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200 and response.json()["accepted"] == 1


def test_an_oversized_header_is_a_counted_json_431(collector):
    before = requests_counted("protocol", 431)
    response = httpx.post(
        collector.url + "/v1/batch",
        content=b'{"batch": []}',
        auth=("seg-web", ""),
        headers={"X-Padding": "a" * 60_000},
    )
    assert response.status_code == 431 and is_json_error(response)
    assert requests_counted("protocol", 431) == before + 1


@pytest.mark.parametrize(
    "field,value",
    [
        ("anonymousId", True),
        ("anonymousId", {"id": 1}),
        ("anonymousId", 42),
        ("userId", ["u"]),
        ("messageId", {"a": 1}),
    ],
)
def test_a_non_string_id_is_dead_lettered_as_invalid_id_never_stringified(collector, field, value):
    call = {"type": "track", "event": "Viewed", "anonymousId": "anon-ok", "messageId": "m-ok"}
    call[field] = value
    response = collector.post("/v1/batch", {"batch": [call]})
    assert response.status_code == 200
    assert [r["code"] for r in response.json()["rejected"]] == ["invalid_id"]
    assert collector.records("web") == []
    (letter,) = [d.value for d in collector.dead_letters("web")]
    assert letter["error_type"] == "invalid_id"
    assert orjson.loads(letter["original"])[field] == value  # as sent, not as text


def test_write_keys_never_reach_a_dead_letter(collector):
    segment = {"type": "teleport", "anonymousId": "a", "messageId": "wk-1", "writeKey": "seg-web"}
    response = collector.post("/v1/batch", {"batch": [segment]})
    assert response.json()["rejected"][0]["code"] == "unknown_event_type"
    snowplow = {"e": "zz", "aid": "sp-web", "eid": "sp-wk-1", "duid": "d-1"}
    response = httpx.post(
        collector.url + "/com.snowplowanalytics.snowplow/tp2",
        json={"schema": "iglu:payload_data", "data": [snowplow]},
    )
    assert response.status_code == 200 and response.json()["rejected"]
    letters = [d.value for d in collector.dead_letters("web")]
    assert len(letters) == 2
    for letter in letters:
        assert b"seg-web" not in letter["original"] and b"sp-web" not in letter["original"]
        assert b"[masked]" in letter["original"]


def test_unfinished_headers_time_out(collector):
    port = int(collector.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        conn.settimeout(10)
        started = time.monotonic()
        assert conn.recv(100) == b""  # closed by the collector
        assert time.monotonic() - started < 5  # header_timeout_s=1, not the client's 10


class BuggyCollector(HttpCollector):
    """A collector with a route that fails: what a bug looks like to a client."""

    def app(self) -> web.Application:
        app = super().app()

        async def broken(_request: web.Request) -> web.Response:
            raise RuntimeError("a bug")

        app.router.add_post("/v1/broken", broken)
        return app


def test_a_failing_route_answers_a_counted_json_500(bootstrap, tmp_path):
    for collector in start_collector(bootstrap, tmp_path, BuggyCollector):
        before = requests_counted("/v1/broken", 500)
        response = httpx.post(collector.url + "/v1/broken", json={})
        assert response.status_code == 500 and response.json()["code"] == "internal_error"
        assert requests_counted("/v1/broken", 500) == before + 1


@pytest.mark.parametrize(
    "value",
    ['{"wk_live_SECRET123": 5}', '{"wk_live_SECRET123": "nowhere"}', "wk_live_SECRET123-notjson"],
)
def test_a_bad_write_key_configuration_names_no_key(value, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "streams.app.cli", "collect", "--port", "0"],
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "JOURNEYBUS__RUNTIME_DIR": str(tmp_path),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "CONNECTORS__HTTP_COLLECTOR__WRITE_KEYS": value,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "write_keys" in done.stderr  # it says which setting is wrong
    assert "SECRET123" not in done.stderr + done.stdout
