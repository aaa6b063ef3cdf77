"""A whole pipeline in one test process: its own embedded broker, stages and sink in threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from connectors.generator.population import PopulationGenerator, RawEvent
from connectors.generator.publish import publish_events
from connectors.sinks.duckdb.sink import DuckDBSink, DuckDBSinkSettings
from streams.app.worker import STAGES, build_runners
from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog
from streams.core.codec import make_codec
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from tests.polling import wait_until


@dataclass
class Pipeline:
    """Broker + every stage + the DuckDB sink, running until ``stop``."""

    root: Path
    workers: int = 1  # runners per stage, sharing its partitions through the consumer group
    broker: EmbeddedBroker = field(default_factory=EmbeddedBroker)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = Settings(runtime_dir=self.root / "runtime")
        self.sink_settings = DuckDBSinkSettings(
            database=self.root / "sink.duckdb", snapshot=self.root / "read.duckdb", batch_max_ms=100
        )

    def start(self) -> Pipeline:
        self.broker.start()
        create_topics(
            admin_client({"bootstrap.servers": self.bootstrap}), default_catalog().topics.values()
        )
        self.runners = [
            runner
            for _ in range(self.workers)
            for runner in build_runners(list(STAGES), self.settings, self.bootstrap)
        ]
        sink = DuckDBSink(self.settings, self.bootstrap, self.sink_settings)
        for target in [r.run for r in self.runners] + [sink.run]:
            thread = threading.Thread(target=self._guard, args=(target,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _guard(self, target: Callable[[threading.Event], None]) -> None:
        try:
            target(self.stop)
        except BaseException as exc:
            logging.getLogger(__name__).exception("pipeline component failed")
            self.errors.append(exc)
            self.stop.set()

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def start_collector(self) -> str:
        """Run the HTTP collector (default local write keys) too; its URL."""
        from connectors.sources.http_collector import CollectorSettings, HttpCollector

        collector = HttpCollector(self.settings, self.bootstrap, CollectorSettings(port=0))
        thread = threading.Thread(target=self._guard, args=(collector.run,), daemon=True)
        thread.start()
        self.threads.append(thread)
        assert collector.started.wait(30), "the collector did not start"
        return f"http://127.0.0.1:{collector.port}"

    def publish_via_collector(self, events: list[RawEvent], url: str) -> int:
        from connectors.generator.via_collector import publish_via_collector

        return publish_via_collector(
            events, url, make_codec(self.settings), make_producer(self.settings, self.bootstrap)
        )

    def publish(self, events: list[RawEvent]) -> int:
        return publish_events(
            events, make_codec(self.settings), make_producer(self.settings, self.bootstrap)
        )

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.sink_settings.snapshot), read_only=True) as db:
            return db.execute(sql).fetchall()

    def wait_for(
        self, predicate: Callable[[], bool], timeout_s: float = 90.0, stable_s: float = 0.0
    ) -> bool:
        """True once ``predicate`` holds (for ``stable_s``); False after ``timeout_s``.
        A failed pipeline component fails the wait."""

        def check() -> bool:
            assert not self.errors, self.errors
            return predicate()

        return wait_until(check, timeout_s, stable_s=stable_s, interval_s=0.5)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.broker.stop()


def population(customers: int = 300, seed: int = 11) -> tuple[PopulationGenerator, list[RawEvent]]:
    gen = PopulationGenerator(customers, seed=seed)
    return gen, gen.generate()
