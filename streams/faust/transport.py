"""Faust's aiokafka transport with the worker consumer's fetch wait configurable.

faust-streaming 0.15.3 hard-codes ``fetch_max_wait_ms=1500`` for the worker's
consumer. The embedded broker does not answer a parked fetch when data arrives
(BROKER-NOTES.md), so every hop of a Faust pipeline would wait up to 1.5 s; this
transport sets the wait from ``JOURNEYBUS__FAUST__FETCH_MAX_WAIT_MS`` (100 ms by
default) before the consumer starts. Registered as the ``journeybus://`` broker
URL scheme; everything else is Faust's own Kafka transport.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

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
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Faust's Kafka transport with ``Consumer`` above."""

    Consumer = Consumer


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
