"""The connector registry: decorators, settings prefixes, lookups."""

from __future__ import annotations

import threading

import pytest

from connectors import registry
from connectors.base import PollingSource, Source
from connectors.settings import ConnectorSettings
from streams.core.errors import FatalError


@pytest.fixture(autouse=True)
def _restore_registry():
    """These tests register throw-away connectors; the rest of the session must not see them."""
    saved = dict(registry.available())
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


class _Settings(ConnectorSettings):
    url: str = "http://localhost"


def test_a_source_reads_its_settings_from_its_own_prefix(monkeypatch):
    @registry.source("unit-example", topic="cust.social.raw.v1")
    class Example(PollingSource[_Settings]):
        settings_class = _Settings

        def poll(self, max_records):
            return []

        def commit(self, position):
            pass

    monkeypatch.setenv("CONNECTORS__UNIT_EXAMPLE__URL", "http://crm.internal")
    monkeypatch.setenv("CONNECTORS__UNIT_EXAMPLE__BATCH_MAX_RECORDS", "17")
    conf = Example.settings_class()
    assert (conf.url, conf.batch_max_records) == ("http://crm.internal", 17)
    assert registry.get("unit-example") is Example
    assert (Example.name, Example.kind, Example.topic) == (
        "unit-example",
        "source",
        "cust.social.raw.v1",
    )
    assert _Settings().url == "http://localhost", "the shared base class is left alone"


def test_two_connectors_cannot_share_a_name():
    class A(Source):
        def run(self, stop: threading.Event) -> None: ...

    class B(Source):
        def run(self, stop: threading.Event) -> None: ...

    registry.source("unit-dup", topic="cust.social.raw.v1")(A)
    with pytest.raises(FatalError, match="two connectors"):
        registry.source("unit-dup", topic="cust.social.raw.v1")(B)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(FatalError, match="postgres-fulfillment"):
        registry.get("no-such-connector")


def test_only_sources_take_the_source_decorator():
    with pytest.raises(TypeError):
        registry.source("unit-bad", topic="t")(object)


def test_the_builtin_connectors_are_declared_as_entry_points():
    from importlib.metadata import entry_points

    declared = {e.name for e in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert set(registry.available()) == declared
