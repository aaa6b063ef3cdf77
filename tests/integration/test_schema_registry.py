"""The embedded schema registry: a stock confluent-kafka SchemaRegistryClient and
AvroDeserializer decode every catalogue topic as the pipeline writes it, and
``journeybus schemas register`` keeps the catalogue's ids or fails saying why."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.app.registry import serve_registry
from streams.core.catalog import default_catalog
from streams.core.codec import CatalogSchemaSource, Codec
from streams.core.jsonavro import from_json

pytestmark = pytest.mark.broker

CLI = [sys.executable, "-m", "streams.app.cli"]


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    stop, bound = threading.Event(), []
    ready = threading.Event()

    def run() -> None:
        asyncio.run(
            serve_registry(
                default_catalog(), "127.0.0.1", 0, stop, lambda p: (bound.append(p), ready.set())
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{bound[0]}"
    stop.set()
    thread.join(10)


def test_a_stock_deserializer_decodes_every_topic(registry, bootstrap):
    catalog = default_catalog()
    codec = Codec(catalog, CatalogSchemaSource(catalog))
    prefix = f"registry.{uuid.uuid4().hex[:8]}."
    sent: dict[str, list[dict]] = {}
    for name in catalog.topics:
        examples = catalog.examples(name)
        revision = catalog.value_schema(name)
        sent[name] = [from_json(revision.raw, value) for _, value in examples][:2]
    sent = {n: v for n, v in sent.items() if v}
    # every topic with examples: the 15 schemas, dead letters among them
    assert {catalog.topics[n].schema for n in sent} == set(catalog.schemas)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(prefix + n, 1, 1) for n in sent]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for name, records in sent.items():
        for record in records:
            producer.produce(prefix + name, codec.encode(name, record))
    assert producer.flush(30) == 0

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        for name, records in sent.items():
            consumer.assign([TopicPartition(prefix + name, 0, 0)])
            got = []
            while len(got) < len(records):
                msg = consumer.poll(10)
                assert msg is not None, f"{name}: only {len(got)} of {len(records)} read"
                context = SerializationContext(prefix + name, MessageField.VALUE)
                got.append(deserializer(msg.value(), context))
            # the stock reader decodes with the writer's schema: what was written
            assert [_plain(g) for g in got] == [_plain(r) for r in records], name
    finally:
        consumer.close()


def _plain(record):
    """Both readers' records compared as JSON: the stock reader gives logical types
    (timestamp-millis as datetimes), the pipeline's codec their Avro numbers."""

    def number(value):
        if isinstance(value, dt.datetime):
            return round(value.timestamp() * 1000)
        if isinstance(value, dt.date):
            return (value - dt.date(1970, 1, 1)).days
        return str(value)

    return json.loads(json.dumps(record, default=number, sort_keys=True))


def test_subjects_versions_and_lookup_answer_as_confluent(registry):
    catalog = default_catalog()
    subjects = httpx.get(f"{registry}/subjects").json()
    assert set(subjects) == {spec.subject for spec in catalog.topics.values()}
    subject = "cust.clickstream.raw.v1-value"
    revisions = catalog.schemas["cust.clickstream.raw.v1"]
    assert httpx.get(f"{registry}/subjects/{subject}/versions").json() == [1, 2, 3]
    latest = httpx.get(f"{registry}/subjects/{subject}/versions/latest").json()
    assert latest["id"] == catalog.schema_id(revisions[-1]) and latest["version"] == 3
    client = SchemaRegistryClient({"url": registry})
    found = client.lookup_schema(subject, _schema(revisions[0].raw))
    assert (found.schema_id, found.version) == (catalog.schema_id(revisions[0]), 1)
    assert client.get_compatibility(subject) == "BACKWARD"
    # registering a schema the subject has is its id; anything else is read-only
    assert client.register_schema(subject, _schema(revisions[1].raw)) == catalog.schema_id(
        revisions[1]
    )
    changed = {**revisions[-1].raw, "doc": "changed"}
    changed["fields"] = [*changed["fields"], {"name": "x", "type": "int"}]
    refused = httpx.post(
        f"{registry}/subjects/{subject}/versions", json={"schema": json.dumps(changed)}
    )
    assert refused.status_code == 422 and refused.json()["error_code"] == 42205
    missing = httpx.get(f"{registry}/schemas/ids/99999")
    assert missing.status_code == 404 and missing.json()["error_code"] == 40403


def _schema(raw: dict):
    from confluent_kafka.schema_registry import Schema

    return Schema(json.dumps(raw), "AVRO")


def test_schemas_register_keeps_catalogue_ids_and_refuses_mock(registry):
    done = subprocess.run(
        [*CLI, "schemas", "register", "--url", registry], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(present)") == sum(
        len(default_catalog().schemas[s.schema]) for s in default_catalog().topics.values()
    )
    mock = subprocess.run(
        [*CLI, "schemas", "register", "--url", "mock://x"], capture_output=True, text=True
    )
    assert mock.returncode == 2 and "mock://" in mock.stderr
    assert "Traceback" not in mock.stderr
