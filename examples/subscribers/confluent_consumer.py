"""A downstream subscriber with nothing but confluent-kafka: the stock Schema Registry
client and AvroDeserializer decode journeybus topics (Confluent wire format).

    python examples/subscribers/confluent_consumer.py --topic cust.touchpoints.v1

prints each record as a JSON line. Against ``journeybus up``: the broker's address is
printed by ``journeybus up`` and kept in ``.journeybus/broker.json``; the registry
is http://127.0.0.1:8081. Delivery: at least once — offsets are committed after the
records are handled, so a restart may show the last few again (every record has an
``event_id`` or ``*_id`` to deduplicate on).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--registry", default="http://127.0.0.1:8081")
    parser.add_argument("--topic", default="cust.touchpoints.v1")
    parser.add_argument("--group", default="example-subscriber")
    parser.add_argument("--max", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--idle-s", type=float, default=0, help="stop when idle this long")
    args = parser.parse_args()

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    seen, last = 0, time.monotonic()
    try:
        while not args.max or seen < args.max:
            messages = consumer.consume(500, timeout=0.5)
            if not messages:
                if args.idle_s and time.monotonic() - last > args.idle_s:
                    break
                continue
            last = time.monotonic()
            for msg in messages:
                if msg.error():
                    print(f"error: {msg.error()}", file=sys.stderr)
                    continue
                context = SerializationContext(msg.topic(), MessageField.VALUE)
                record = deserialize(msg.value(), context)
                print(json.dumps(record, default=_json), flush=True)
                seen += 1
            consumer.commit(asynchronous=False)  # after handling: at least once
    finally:
        consumer.close()


def _json(value):
    """Avro logical types as the stock deserializer gives them (datetimes) in JSON."""
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)


if __name__ == "__main__":
    main()
