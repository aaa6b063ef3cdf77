"""Serving an aiohttp application until a stop event (the collector, the dashboard)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` on ``host``:``port`` (0: any free port) inside the block; yields the
    bound port. On exit, requests in flight finish before the server closes."""
    runner = web.AppRunner(app, access_log=None)
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
