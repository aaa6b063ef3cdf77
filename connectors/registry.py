"""Which connectors exist: the ``@source`` / ``@sink`` decorators and entry points.

journeybus's own connectors are the modules under ``connectors/sources`` and
``connectors/sinks``; other packages add theirs through the
``journeybus.connectors`` entry-point group, pointing at the module (or class)
that applies the decorator::

    [project.entry-points."journeybus.connectors"]
    shopify-orders = "acme_connectors.shopify"
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from connectors.base import Connector, Sink, Source
from connectors.settings import ConnectorSettings, connector_config
from streams.core.errors import FatalError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "journeybus.connectors"
BUILTIN_PACKAGES = ("connectors.sources", "connectors.sinks")

_REGISTRY: dict[str, type[Connector]] = {}
C = TypeVar("C", bound=type[Connector])


def _register(name: str, kind: str, cls: C) -> C:
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise FatalError(f"two connectors are named {name!r}: {existing} and {cls}")
    cls.name = name
    cls.kind = kind
    settings = cls.settings_class
    # Settings that did not choose their own prefix read CONNECTORS__<NAME>__*.
    if not settings.model_config.get("env_prefix"):
        cls.settings_class = type(
            settings.__name__, (settings,), {"model_config": connector_config(name)}
        )
    _REGISTRY[name] = cls
    return cls


def source(name: str, *, topic: str) -> Callable[[C], C]:
    """Register a ``Source`` subclass under ``name``, publishing to ``topic``."""

    def decorate(cls: C) -> C:
        if not issubclass(cls, Source):
            raise TypeError(f"@source({name!r}) needs a Source subclass, got {cls}")
        cls.topic = topic
        return _register(name, "source", cls)

    return decorate


def sink(name: str) -> Callable[[C], C]:
    """Register a ``Sink`` subclass under ``name``."""

    def decorate(cls: C) -> C:
        if not issubclass(cls, Sink):
            raise TypeError(f"@sink({name!r}) needs a Sink subclass, got {cls}")
        return _register(name, "sink", cls)

    return decorate


def _import_builtins() -> None:
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            importlib.import_module(module.name)


def _load_entry_points() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:
            # One broken plug-in must not take the others down; it is named in the log.
            log.error(
                "connector entry point %s (%s) failed to load: %s", entry.name, entry.value, exc
            )


def available() -> dict[str, type[Connector]]:
    """Every registered connector by name (built-ins and entry points), sorted."""
    _import_builtins()
    _load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> type[Connector]:
    """The connector class named ``name``; ``FatalError`` naming the known ones if none."""
    known = available()
    if name not in known:
        raise FatalError(f"no connector named {name!r}; known: {', '.join(known) or 'none'}")
    return known[name]


def settings_of(name: str) -> type[ConnectorSettings]:
    return get(name).settings_class
