"""``journeybus demo``: run the bus on the embedded defaults with demo data.

Starts the embedded broker (unless KAFKA_BOOTSTRAP_SERVERS is set), creates
every catalogue topic, publishes the catalogue's example messages through the
codec and reads them back, then prints what arrived per topic.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import click

from streams.broker import EmbeddedBroker
from streams.catalog import Catalog, default_catalog
from streams.codec import make_codec
from streams.jsonavro import from_json
from streams.kafka import make_consumer, make_producer
from streams.settings import Settings, get_settings
from streams.topics import admin_client, create_topics


@contextlib.contextmanager
def bus(settings: Settings) -> Iterator[str]:
    """The configured cluster, or an embedded broker for the duration of the block."""
    if settings.kafka.bootstrap_servers:
        yield settings.kafka.bootstrap_servers
        return
    settings.runtime_dir.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(log_path=settings.runtime_dir / "broker.log") as broker:
        yield broker.bootstrap


def publish_examples(catalog: Catalog, bootstrap: str, settings: Settings) -> Counter:
    codec = make_codec(settings, catalog)
    producer = make_producer(settings, bootstrap)
    sent: Counter = Counter()
    for topic in catalog.topics:
        schema = catalog.value_schema(topic).raw
        for _, value in catalog.examples(topic):
            producer.produce(topic, codec.encode(topic, from_json(schema, value)))
            sent[topic] += 1
    producer.flush(30)
    return sent


def read_back(
    catalog: Catalog, bootstrap: str, settings: Settings, expected: Counter, timeout_s: float = 30.0
) -> Counter:
    codec = make_codec(settings, catalog)
    consumer = make_consumer(f"journeybus-demo-{uuid.uuid4().hex[:8]}", settings, bootstrap)
    consumer.subscribe(list(expected))
    got: Counter = Counter()
    deadline = time.monotonic() + timeout_s
    try:
        while sum(got.values()) < sum(expected.values()) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    continue
                codec.decode(msg.topic(), msg.value(), msg.partition(), msg.offset())
                got[msg.topic()] += 1
    finally:
        consumer.close()
    return got


def run_demo() -> None:
    settings = get_settings()
    catalog = default_catalog()
    with bus(settings) as bootstrap:
        click.echo(f"bus: {bootstrap}")
        created = create_topics(
            admin_client(settings.kafka.confluent_config(bootstrap)), catalog.topics.values()
        )
        click.echo(f"topics: {len(created.created)} created, {len(created.existing)} existed")
        sent = publish_examples(catalog, bootstrap, settings)
        got = read_back(catalog, bootstrap, settings, sent)
        click.echo(f"{'TOPIC':40} {'SENT':>5} {'READ':>5}")
        for topic in sorted(sent):
            click.echo(f"{topic:40} {sent[topic]:>5} {got[topic]:>5}")
        if got != sent:
            raise click.ClickException("not every published example was read back")
        click.echo(f"{sum(got.values())} example events published and decoded")
