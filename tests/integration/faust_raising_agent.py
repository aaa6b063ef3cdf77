"""A Faust agent for the toolkit's tests: it fails on touchpoints whose id ends in
``-raise`` and publishes the id of every other one on its own topic."""

from __future__ import annotations

import faust

from streams.faust.app import bus_app
from streams.faust.models import Touchpoint

app = bus_app("test-raising-agent")


class Seen(faust.Record, include_metadata=False):
    touchpoint_id: str


seen = app.output_topic("test.raising-agent.seen.v1", value_type=Seen, partitions=2)


@app.agent(app.bus.touchpoints)
async def raising(stream: faust.Stream[Touchpoint]) -> None:
    async for event in stream.events():
        async with app.dead_letters.guard(event):
            if event.value.touchpoint_id.endswith("-raise"):
                raise ValueError(f"cannot handle {event.value.touchpoint_id}")
            await seen.send(key=event.key, value=Seen(event.value.touchpoint_id))
