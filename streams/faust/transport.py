"""Faust's aiokafka transport, with two corrections for the bus.

- **Fetch wait.** faust-streaming 0.15.3 hard-codes ``fetch_max_wait_ms=1500`` for
  the worker's consumer. The embedded broker does not answer a parked fetch when
  data arrives (BROKER-NOTES.md), so every hop of a Faust pipeline would wait up to
  1.5 s; this transport sets the wait from ``JOURNEYBUS__FAUST__FETCH_MAX_WAIT_MS``
  (100 ms by default) before the consumer starts.
- **Commits never pass a message in flight.** Faust works out the offset to commit
  from the acknowledged offsets and treats a one-offset hole at the head as a gap in
  the log (faust-streaming/faust#606, open): with the oldest message of a partition
  still being handled and later ones done, it commits past it, and a crash loses it.
  Its gap rule also counts the first message after a hole (a transaction marker) as
  acknowledged, and during a rebalance its streams acknowledge the messages they
  take without handing them to the agents (flow control suspended, or a message of
  the previous generation), and the commit made while the partitions are revoked
  goes past them: they are never handled (found by the activation agents' kill
  test: a few audience changes, decisions or feeds lost in about one run in five).
  This consumer ignores all of that: per partition it commits the offset of the
  oldest message handed to the agents and not yet acknowledged by them, or else
  one past the last one handed over (tests/integration/test_faust_agents.py
  reproduces #606 and holds it to this).

Registered as the ``journeybus://`` broker URL scheme; everything else is Faust's own
Kafka transport.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

SCHEME = "journeybus"


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The worker consumer, with the app's ``journeybus_fetch_max_wait_ms``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "journeybus_fetch_max_wait_ms", None)
        if wait_ms is not None:
            # read by AIOKafkaConsumer.start(), when it builds its fetcher
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    """Faust's consumer, committing per partition no further than the oldest message
    in flight (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # per partition: offset -> the message handed to the agents, not yet acknowledged
        self._in_flight: dict[TP, dict[int, Message]] = {}
        # per partition: the offset of the last message handed to the agents
        self._handed: dict[TP, int] = {}
        hand_over = self.callback

        async def handed_over(message: Message) -> None:
            # recorded before the agents see it: they may acknowledge it at once
            if self.app.topics.acks_enabled_for(message.topic):
                self._in_flight.setdefault(message.tp, {})[message.offset] = message
                self._handed[message.tp] = message.offset
            await hand_over(message)
            if not message.refcount and not message.acked:
                self._release(message)  # no agent subscribes to it: nothing to wait for

        self.callback = handed_over

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Message) -> bool:
        # During a rebalance (flow control suspended, or a message of the previous
        # generation) Faust's streams acknowledge the messages they take without
        # handing them to the agent; they stay in flight here, so the commits made
        # while the partitions are revoked stop before them and they are read again.
        app = self.app
        if app.flow_control.is_active() and message.generation_id == app.consumer_generation_id:
            self._release(message)
        return super().ack(message)

    def _release(self, message: Message) -> None:
        flight = self._in_flight.get(message.tp)
        # the same object: an acknowledgement of a copy read before a rebalance does
        # not release the copy read again after it
        if flight is not None and flight.get(message.offset) is message:
            del flight[message.offset]

    def _new_offset(self, tp: TP) -> int | None:
        handed = self._handed.get(tp)
        if handed is None:
            return None
        flight = self._in_flight.get(tp)
        offset = min(flight) if flight else handed + 1
        # Faust's own bookkeeping below that offset is no longer needed
        acked = self._acked[tp]
        acked[:] = [o for o in acked if o >= offset]
        self._acked_index[tp].intersection_update(acked)
        gaps = self._gap.get(tp)
        if gaps:
            gaps.chop(0, offset)
        return offset

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await super().on_partitions_revoked(revoked)
        # a partition assigned again is read again from its committed offset; what
        # was in flight is dropped from the agents' queues by Faust
        for tp in revoked:
            self._in_flight.pop(tp, None)
            self._handed.pop(tp, None)


class Transport(faust_aiokafka.Transport):
    """Faust's Kafka transport with ``Consumer`` above."""

    Consumer = Consumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
