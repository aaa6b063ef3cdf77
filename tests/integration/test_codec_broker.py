"""Codec bytes through the real broker, and readable by confluent-kafka's stock deserializer."""

import json

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.core.codec import Codec, RegistrySchemaSource
from streams.core.jsonavro import from_json


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    out = []
    import time

    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                assert msg.error() is None, msg.error()
                out.append(msg)
    finally:
        consumer.close()
    return out


def all_examples(catalog):
    for topic in catalog.topics:
        schema = catalog.value_schema(topic).raw
        for _, value in catalog.examples(topic):
            yield topic, from_json(schema, value)


def test_every_example_survives_a_trip_through_the_broker(bootstrap, new_topic, codec, catalog):
    topic = new_topic()
    sent = list(all_examples(catalog))
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i, (source, record) in enumerate(sent):
        producer.produce(
            topic, codec.encode(source, record), key=str(i), headers={"catalog-topic": source}
        )
    assert producer.flush(30) == 0
    got = consume(bootstrap, topic, len(sent))
    assert len(got) == len(sent)
    for msg in got:
        source, record = sent[int(msg.key())]
        assert dict(msg.headers())["catalog-topic"].decode() == source
        assert codec.decode(source, msg.value(), msg.partition(), msg.offset()) == record


def _primed_mock_registry(catalog) -> SchemaRegistryClient:
    """An in-memory registry holding the catalogue's schemas under their catalogue ids."""
    client = SchemaRegistryClient.new_client({"url": "mock://journeybus-test"})
    by_id = catalog.revision_by_id()
    for schema_id in sorted(by_id):
        rev = by_id[schema_id]
        got = client.register_schema(f"{rev.name}-value", Schema(json.dumps(rev.raw), "AVRO"))
        assert got == schema_id, "mock registry did not take the catalogue id"
    return client


def test_stock_avro_deserializer_reads_codec_bytes(bootstrap, new_topic, codec, catalog):
    topic = new_topic()
    client = _primed_mock_registry(catalog)
    sent = list(all_examples(catalog))
    producer = Producer({"bootstrap.servers": bootstrap})
    for i, (source, record) in enumerate(sent):
        producer.produce(topic, codec.encode(source, record), key=str(i))
    producer.flush(30)
    got = consume(bootstrap, topic, len(sent))
    assert len(got) == len(sent)
    deserializer = AvroDeserializer(client)
    for msg in got:
        source, record = sent[int(msg.key())]
        stock = deserializer(msg.value(), SerializationContext(source, MessageField.VALUE))
        # The stock deserializer turns timestamp-millis into datetimes; compare as millis.
        assert _millis(stock) == record, source


def _millis(value):
    import datetime as dt

    if isinstance(value, dict):
        return {k: _millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_millis(v) for v in value]
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return value


def test_registry_ids_are_used_when_a_registry_is_configured(catalog):
    client = SchemaRegistryClient.new_client({"url": "mock://journeybus-registry-mode"})
    client.register_schema("unrelated-value", Schema('"string"', "AVRO"))  # shift the ids
    codec = Codec(catalog, RegistrySchemaSource(client))
    topic = "cust.social.raw.v1"
    record = from_json(catalog.value_schema(topic).raw, catalog.examples(topic)[0][1])
    data = codec.encode(topic, record)
    registered = client.get_latest_version(f"{topic}-value")
    assert (
        int.from_bytes(data[1:5], "big")
        == registered.schema_id
        != catalog.schema_id(catalog.value_schema(topic))
    )
    assert codec.decode(topic, data) == record
