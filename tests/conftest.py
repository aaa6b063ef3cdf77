"""Shared fixtures: one real Kafka-protocol broker per test session, unique topics per test.

The broker is the embedded Tansu broker, unless ``KAFKA_BOOTSTRAP_SERVERS``
names a cluster, or ``JOURNEYBUS_TEST_KAFKA=testcontainers`` asks for Apache
Kafka in a container (needs a Docker engine).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.core.broker import EmbeddedBroker
from streams.core.catalog import Catalog, default_catalog
from streams.core.codec import CatalogSchemaSource, Codec


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if os.environ.get("JOURNEYBUS_TEST_KAFKA") == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


@pytest.fixture
def new_topic(admin: AdminClient, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a topic with a name unique to this test; returns its name."""

    def create(label: str = "t", partitions: int = 1) -> str:
        safe = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
        name = f"test.{safe}.{label}.{uuid.uuid4().hex[:8]}"
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
        futures[name].result(timeout=30)
        return name

    return create


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture(scope="session")
def codec(catalog: Catalog) -> Codec:
    return Codec(catalog, CatalogSchemaSource(catalog))


@pytest.fixture
def bus() -> Iterator[str]:
    """A broker of its own with every catalogue topic, for components that read the
    catalogue's topic names (the sink, the stages)."""
    from streams.core.admin import admin_client, create_topics

    with EmbeddedBroker() as broker:
        create_topics(
            admin_client({"bootstrap.servers": broker.bootstrap}),
            default_catalog().topics.values(),
            partitions=2,
        )
        yield broker.bootstrap
