"""A downstream subscriber as a Faust agent (faust-streaming): a codec that decodes
journeybus topics through the Schema Registry, and an agent that counts events.

    JOURNEYBUS_BOOTSTRAP=127.0.0.1:9092 python -m faust --datadir /tmp/subscriber \
        -A examples.subscribers.faust_agent worker -l warn

Settings from the environment: ``JOURNEYBUS_BOOTSTRAP``, ``JOURNEYBUS_REGISTRY``
(http://127.0.0.1:8081), ``JOURNEYBUS_TOPIC`` (cust.touchpoints.v1). Delivery: at least
once (Faust commits offsets after the agent handled the events). Against the embedded
broker the producer must not be idempotent (aiokafka's fails on it: BROKER-NOTES.md);
this agent only consumes.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import faust
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from faust.serializers import codecs

BOOTSTRAP = os.environ.get("JOURNEYBUS_BOOTSTRAP", "127.0.0.1:9092")
REGISTRY = os.environ.get("JOURNEYBUS_REGISTRY", "http://127.0.0.1:8081")
TOPIC = os.environ.get("JOURNEYBUS_TOPIC", "cust.touchpoints.v1")


class JourneybusAvro(codecs.Codec):
    """Confluent-framed Avro from journeybus topics → dicts (decode only: this agent
    reads; to write, use the project's codec or an AvroSerializer)."""

    def __init__(self, registry_url: str = REGISTRY, **kwargs) -> None:
        super().__init__(registry_url=registry_url, **kwargs)
        self._deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))

    def _loads(self, data: bytes) -> dict:
        return self._deserialize(data, SerializationContext(TOPIC, MessageField.VALUE))

    def _dumps(self, obj) -> bytes:
        raise NotImplementedError("this example codec only decodes")


codecs.register("journeybus_avro", JourneybusAvro())

app = faust.App(
    "journeybus-example-subscriber",
    broker=f"kafka://{BOOTSTRAP}",
    store="memory://",
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    topic_allow_declare=False,  # the catalogue creates the topics
    topic_disable_leader=True,
)
events = app.topic(TOPIC, key_serializer="raw", value_serializer="journeybus_avro")
counts: Counter[str] = Counter()


@app.agent(events)
async def count_events(stream):
    async for record in stream:
        kind = record.get("event_type") or record.get("type") or "record"
        counts[kind] += 1
        print(json.dumps({"event_id": record.get("event_id"), "counts": counts}), flush=True)
