"""Every connector passes the shared contract (connectors/testing.py) against real parts."""

from __future__ import annotations

import pytest

from connectors import registry
from connectors.sinks.duckdb.sink import DuckDBSink
from connectors.sources.http_collector import HttpCollector
from connectors.sources.messaging import MessagingFileSource
from connectors.sources.postgres_fulfillment import PostgresFulfillmentSource
from connectors.sources.social import SocialFileSource
from connectors.testing import SinkContract, SourceContract

pytestmark = pytest.mark.broker


class TestHttpCollector(SourceContract):
    connector = HttpCollector


class TestSocialFile(SourceContract):
    connector = SocialFileSource


class TestMessagingFile(SourceContract):
    connector = MessagingFileSource


@pytest.mark.postgres
class TestPostgresFulfillment(SourceContract):
    connector = PostgresFulfillmentSource


class TestDuckDBSink(SinkContract):
    connector = DuckDBSink


def test_every_registered_connector_has_a_contract_test():
    tested = {
        cls.connector
        for cls in globals().values()
        if isinstance(cls, type)
        and issubclass(cls, SourceContract | SinkContract)
        and hasattr(cls, "connector")
    }
    assert set(registry.available().values()) <= tested
