"""Batches whose outputs are delivered before their table changes are stored.

Faust's at-least-once guarantee alone does not make a stateful agent lossless: a
table change and the output it decided travel in different producer batches, so a
crash can leave the change in the changelog and the output nowhere; after restart,
the replayed event finds the state already advanced and the output is never sent.
``Batch`` closes that gap: the agent stages its table writes while it sends its
outputs, ``commit`` waits until the broker acknowledged every output and only then
writes the tables. A changelog entry therefore implies its outputs are durable; a
crash before it replays the events and sends them again (the same ids: duplicates
that the sink tables collapse), a crash after it replays events whose state says
"done" and sends nothing new. Used with ``stream.take_events`` (Faust acknowledges
the batch's offsets after the loop body, so after ``commit``).

    async def handle(batch: Batch, event) -> None:
        state = batch.read(table, key)            # a private copy
        ...
        await batch.send(topic, key, output)
        batch.write(table, key, state, event)

    @app.agent(topic)
    async def agent(stream):
        await handle_in_batches(app, stream, handle)
"""

from __future__ import annotations

import asyncio
import copy
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.streams import _current_event


class Batch:
    """The staged table writes and the pending outputs of one batch of events."""

    def __init__(self) -> None:
        self._sends: list[Any] = []
        self._writes: dict[tuple[str, Any], tuple[faust.types.TableT, Any, faust.types.EventT]] = {}

    def peek(self, table: faust.types.TableT, key: Any, default: Any = None) -> Any:
        """The value as this batch left it (staged, else the table's), not copied:
        for reading only."""
        staged = self._writes.get((table.name, key))
        if staged is not None:
            return staged[1]
        return table.get(key, default)

    def read(self, table: faust.types.TableT, key: Any, default: Any = None) -> Any:
        """A private copy of the value as this batch left it: mutate it, then ``write``
        it (an exception in between leaves the staged value untouched)."""
        return copy.deepcopy(self.peek(table, key, default))

    def write(
        self, table: faust.types.TableT, key: Any, value: Any, event: faust.types.EventT
    ) -> None:
        """Stage ``table[key] = value``, changelogged in ``event``'s partition at commit."""
        self._writes[(table.name, key)] = (table, value, event)

    async def send(self, topic: faust.types.TopicT, key: str, value: Any) -> None:
        """Send an output now (buffered by the producer); ``commit`` awaits it."""
        self._sends.append(await topic.send(key=key, value=value))

    async def commit(self) -> int:
        """Wait until every output is acknowledged, then write the staged values;
        returns how many outputs were sent."""
        await asyncio.gather(*self._sends)
        for (_, key), (table, value, event) in self._writes.items():
            # a table changelogs a write in the partition of the current event
            token = _current_event.set(weakref.ref(event))
            try:
                table[key] = value
            finally:
                _current_event.reset(token)
        sent = len(self._sends)
        self._sends.clear()
        self._writes.clear()
        return sent


Handler = Callable[[Batch, faust.types.EventT], Awaitable[None]]


async def handle_in_batches(
    app: Any,
    stream: faust.Stream,
    handle: Handler,
    *,
    size: int = 500,
    within_s: float = 0.05,
    wanted: Callable[[faust.types.EventT], bool] | None = None,
    before: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run ``handle(batch, event)`` on each event of ``stream`` (the ``wanted`` ones),
    in batches of up to ``size`` events or ``within_s`` seconds, each committed as
    above; ``before()`` runs before a batch with wanted events. An event on which
    ``handle`` raises is dead-lettered (``app.dead_letters.guard``: ``app`` is a
    ``BusApp``) and the batch goes on: a handler stages its writes after whatever may
    fail, so that a failing event changes no state."""
    async for events in stream.take_events(size, within=within_s):
        chosen = [e for e in events if wanted is None or wanted(e)]
        if not chosen:
            continue
        if before is not None:
            await before()
        batch = Batch()
        for event in chosen:
            async with app.dead_letters.guard(event):
                await handle(batch, event)
        await batch.commit()
