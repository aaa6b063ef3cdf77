"""Serving an aiohttp application until a stop event (the collector, the dashboard).

aiohttp answers errors it meets before any handler runs (a header over the size
limit, a malformed request line, a body encoding it cannot decode) with a
text/plain page. Here those answers are JSON ``{"code", "message"}`` like every
other error, and reported to ``on_error`` (for the request metric).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, ContentEncodingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

ErrorReport = Callable[[int], None]


def json_error(status: int, code: str, message: str) -> web.Response:
    """The body every journeybus HTTP error has: ``{"code", "message"}``."""
    return web.json_response({"code": code, "message": message}, status=status)


def protocol_error(exc: BaseException | None, status: int) -> tuple[int, str, str]:
    """(status, code, message) of an error aiohttp met before any handler ran."""
    if isinstance(exc, LineTooLong):
        return 431, "header_too_large", "a request line or header is over 8 KB"
    if isinstance(exc, ContentEncodingError):
        # aiohttp's only way to tell "no decoder here" (it asks for a package to be
        # installed) from "not valid data of its encoding" is the message
        if "install" not in str(exc):
            return 400, "invalid_encoding", "the body is not valid data of its encoding"
        return 415, "unsupported_encoding", "the body's Content-Encoding cannot be decoded"
    if isinstance(exc, BadHttpMessage) or status == 400:
        return 400, "bad_request", "the request is not valid HTTP/1.1"
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    return status, phrase.lower().replace(" ", "_"), phrase


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering protocol errors in JSON."""

    on_error: ErrorReport | None = None

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # logs it, and raises when a response was already sent on the connection
        super().handle_error(request, status, exc, message)
        status, code, text = protocol_error(exc, status)
        response = web.Response(
            status=status,
            body=orjson.dumps({"code": code, "message": text}),
            content_type="application/json",
        )
        response.force_close()
        if self.on_error is not None:
            self.on_error(status)
        return response


class _JsonErrorServer(web.Server):
    on_error: ErrorReport | None = None

    def __call__(self) -> RequestHandler:
        handler = _JsonErrorHandler(self, loop=self._loop, **self._kwargs)
        handler.on_error = self.on_error
        return handler


class _Runner(web.AppRunner):
    on_error: ErrorReport | None = None

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The server aiohttp built, answering protocol errors in JSON: its connection
        # handler class is not a parameter (tests/integration/test_collector.py covers it).
        server.__class__ = _JsonErrorServer
        server.on_error = self.on_error  # type: ignore[attr-defined]
        return server


@asynccontextmanager
async def serving(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_error: ErrorReport | None = None,
    idle_timeout_s: float = 75.0,
    auto_decompress: bool = True,
) -> AsyncIterator[int]:
    """Serve ``app`` on ``host``:``port`` (0: any free port) inside the block; yields the
    bound port. On exit, requests in flight finish before the server closes.

    A connection is closed when it has not completed a request's headers within
    ``idle_timeout_s`` of opening or of its previous response (slow or idle clients
    do not hold connections open). ``auto_decompress=False``: handlers read bodies as
    sent (and decode them themselves)."""
    runner = _Runner(
        app,
        access_log=None,
        keepalive_timeout=idle_timeout_s,
        auto_decompress=auto_decompress,
    )
    runner.on_error = on_error
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def until(stop: threading.Event, interval_s: float = 0.1) -> None:
    """Return once ``stop`` (set from another thread) is set."""
    while not stop.is_set():
        await asyncio.sleep(interval_s)
