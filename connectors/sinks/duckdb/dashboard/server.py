"""``journeybus dashboard --port P``: serves the dashboard page over the sink's read snapshot.

Read-only: each request opens the published snapshot (never the sink's own
file, which the sink holds), so the page reads while the pipeline writes.
Routes: ``/`` (the page, ``?period=7d|30d|90d|all``), ``/api/panels`` (the same
data as JSON) and ``/health``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import threading
from pathlib import Path

import orjson
from aiohttp import web

from connectors.sinks.duckdb.dashboard.data import PERIODS, Dashboard, load
from connectors.sinks.duckdb.dashboard.page import render
from connectors.web import serving, until

log = logging.getLogger(__name__)
DEFAULT_PERIOD = "30d"


class DashboardServer:
    """The dashboard's HTTP server; ``run(stop)`` serves until ``stop`` is set."""

    def __init__(
        self,
        database: Path,
        host: str = "127.0.0.1",
        port: int = 8050,
        refresh_s: int = 10,
        allow_external_access: bool = False,
    ) -> None:
        self.database = database
        self.allow_external_access = allow_external_access
        self.host = host
        self.requested_port = port
        self.refresh_s = refresh_s
        self.port: int | None = None
        self.started = threading.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/api/panels", self._panels)
        app.router.add_get("/health", self._health)
        return app

    async def _board(self, request: web.Request) -> Dashboard:
        period = request.query.get("period", DEFAULT_PERIOD)
        if period not in PERIODS:
            raise web.HTTPBadRequest(text=f"period must be one of {', '.join(PERIODS)}")
        # DuckDB work off the event loop: a large database must not stall other requests
        return await asyncio.to_thread(load, self.database, period, self.allow_external_access)

    async def _page(self, request: web.Request) -> web.Response:
        board = await self._board(request)
        updated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return web.Response(
            text=render(board, updated, self.refresh_s),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    async def _panels(self, request: web.Request) -> web.Response:
        board = await self._board(request)
        body = orjson.dumps(dataclasses.asdict(board), default=str)
        return web.Response(body=body, content_type="application/json")

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "database": str(self.database)})

    def run(self, stop: threading.Event) -> None:
        asyncio.run(self.serve(stop))

    async def serve(self, stop: threading.Event) -> None:
        async with serving(self.app(), self.host, self.requested_port) as port:
            self.port = port
            log.info("dashboard on http://%s:%d (reading %s)", self.host, port, self.database)
            self.started.set()
            await until(stop)
