"""Idempotent producers only where the broker is known not to be the embedded one: an
idempotent producer is what loses acknowledged records on Tansu, and a machine too
busy to answer the check in time once made the PostgreSQL source idempotent."""

import pytest

from streams.core.broker import EmbeddedBroker
from streams.core.kafka import is_embedded_broker, producer_config
from streams.core.settings import Settings

pytestmark = pytest.mark.broker


def test_the_embedded_broker_gets_no_idempotent_producer():
    with EmbeddedBroker() as broker:
        assert is_embedded_broker({"bootstrap.servers": broker.bootstrap})
        assert producer_config(Settings(), broker.bootstrap)["enable.idempotence"] is False


def test_a_loopback_broker_that_does_not_answer_counts_as_embedded():
    # nothing listens on port 1: whether it is Tansu cannot be known in time
    assert is_embedded_broker({"bootstrap.servers": "127.0.0.1:1"})
    assert producer_config(Settings(), "127.0.0.1:1")["enable.idempotence"] is False


def test_a_remote_cluster_gets_idempotent_producers():
    assert not is_embedded_broker({"bootstrap.servers": "kafka-1.example.internal:9092"})
    conf = producer_config(Settings(), "kafka-1.example.internal:9092")
    assert conf["enable.idempotence"] is True
