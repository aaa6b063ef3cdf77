"""A Faust agent for the toolkit's tests: two actors on the touchpoints; a touchpoint
whose id ends in ``-slow`` takes ``SLOW_HEAD_S`` seconds (default 600), every other one
is published at once on the agent's own topic. One slow message at the head of a
partition while the later ones are done is what faust-streaming's commit got wrong
(faust-streaming/faust#606)."""

from __future__ import annotations

import asyncio
import os

import faust

from streams.faust.app import bus_app
from streams.faust.models import Touchpoint

app = bus_app("test-slow-head-agent")
SLOW_S = float(os.environ.get("SLOW_HEAD_S", "600"))


class Seen(faust.Record, include_metadata=False):
    touchpoint_id: str


seen = app.output_topic("test.slow-head-agent.seen.v1", value_type=Seen, partitions=2)


@app.agent(app.bus.touchpoints, concurrency=2)
async def slow_head(stream: faust.Stream[Touchpoint]) -> None:
    async for event in stream.events():
        if event.value.touchpoint_id.endswith("-slow"):
            await asyncio.sleep(SLOW_S)
        await seen.send(key=event.key, value=Seen(event.value.touchpoint_id))
