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

    async for events in stream.take_events(500, within=0.05):
        batch = Batch()
        for event in events:
            async with app.dead_letters.guard(event):
                state = batch.read(table, key)            # a private copy
                ...
                await batch.send(topic, key, output)
                batch.write(table, key, state, event)
        await batch.commit()
"""

from __future__ import annotations

import asyncio
import copy
import weakref
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
