"""The connector lifecycle: what every source and sink implements.

A **source** brings events from an outside system onto a raw topic; a **sink**
takes topics to an outside system. Both follow one lifecycle, after Kafka
Connect's: ``setup`` → ``poll`` (source) / ``write`` (sink) → ``commit`` /
``flush`` → ``close``. The runtime, not the connector, owns the Kafka client,
the Avro encoding, the dead-letter topic and retries:

- ``PollingSource.run`` polls a batch, validates and publishes it, waits for the
  broker's acknowledgement, and only then calls ``commit(position)``. A crash
  between the two re-sends the batch: delivery is **at least once**, and every
  raw record carries a deterministic ``event_id`` so a re-sent copy is harmless.
- A record the source marks invalid (``SourceRecord.invalid``), or that does not
  fit the topic's schema, goes to ``<topic>.dlq`` with the reason and the
  original input; the others are published. Nothing is dropped silently.
- Errors are typed (``streams.errors``): ``Retriable`` from ``poll`` or from the
  broker backs off and retries the same batch; ``InvalidRecord`` dead-letters one
  record; anything else is fatal and ends ``run`` (the supervisor restarts it).

Configuration: ``ConnectorSettings`` subclasses, read from
``CONNECTORS__<NAME>__<KEY>`` (see ``connectors.settings``).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from connectors.settings import ConnectorSettings
from streams import metrics
from streams.broker import resolve_bootstrap
from streams.errors import InvalidRecord, Retriable
from streams.kafka import log_ids
from streams.settings import Settings, get_settings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ConnectorSettings)


@dataclass
class SourceRecord:
    """One event read by a source.

    ``value`` is the record of the destination topic's schema, in plain JSON
    form (timestamps as ISO 8601 or epoch ms, unions untagged); the runtime
    validates and encodes it. ``position`` is where the source stands after this
    record; it is committed only after the broker acknowledged the record and
    every one before it. ``original`` is the input as received, kept in the dead
    letter if the record turns out invalid.
    """

    value: dict[str, Any] | None
    position: Any = None
    original: bytes | None = None
    topic: str | None = None  # default: the source's topic
    error: InvalidRecord | None = None
    typed: bool = False  # ``value`` is already in Avro form (timestamps as epoch ms ints)

    @classmethod
    def invalid(
        cls,
        error: InvalidRecord,
        original: bytes,
        position: Any = None,
        topic: str | None = None,
    ) -> SourceRecord:
        """An input the source could not turn into a record: it is dead-lettered."""
        return cls(None, position, original, topic, error)


class Connector(ABC, Generic[S]):
    """Base of sources and sinks: a name, settings, and a stop-aware ``run``.

    Subclasses set ``settings_class`` (read from the environment when no
    ``conf`` is given). ``name`` and ``kind`` are set by the ``@source`` /
    ``@sink`` decorators of ``connectors.registry``.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    settings_class: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    #: serves /metrics, /health and /ready itself (else ``journeybus connector run`` does)
    serves_health: ClassVar[bool] = False

    def __init__(
        self,
        settings: Settings | None = None,
        bootstrap: str | None = None,
        conf: S | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.bootstrap = bootstrap
        self.conf: S = conf if conf is not None else self.settings_class()  # type: ignore[assignment]

    @abstractmethod
    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; then flush, commit and close."""

    def ready(self) -> tuple[bool, str]:
        """For ``/ready``: whether the connector is doing its job, and why not."""
        return True, "ok"


class Source(Connector[S]):
    """A connector that publishes to a raw topic (``topic``, set by ``@source``)."""

    kind: ClassVar[str] = "source"
    topic: ClassVar[str] = ""


class PollingSource(Source[S]):
    """A source that pulls from its system in batches (a database, a file, an API).

    Implement ``setup``, ``poll``, ``commit`` and ``close``; ``run`` does the
    rest (see the module docstring for the guarantees).
    """

    def setup(self) -> None:
        """Connect to the outside system; called once before the first poll."""

    @abstractmethod
    def poll(self, max_records: int) -> Iterable[SourceRecord]:
        """Up to ``max_records`` records after the last committed position, in order.

        Return nothing when there is nothing new. Raise ``Retriable`` when the
        outside system is unavailable for now.
        """

    @abstractmethod
    def commit(self, position: Any) -> None:
        """Durably remember ``position``: every record up to it is on the broker."""

    def close(self) -> None:
        """Release connections; called once, also after a failure."""

    def run(self, stop: threading.Event) -> None:
        from connectors.publisher import Publisher

        publisher = self._publisher = Publisher(self.name, self.conf, self.settings, self.bootstrap)
        try:
            while not self._setup(stop):
                pass
            self._check_log()
            while not stop.is_set():
                publisher.producer.poll(0)  # its statistics say whether the broker is up
                try:
                    records = list(self.poll(self.conf.batch_max_records))
                except Retriable as exc:
                    self._status = (False, str(exc))
                    metrics.CONNECTOR_POLLS.labels(self.name, "retriable").inc()
                    log.warning("%s: %s; retrying in %.1fs", self.name, exc, self.conf.retry_s)
                    stop.wait(self.conf.retry_s)
                    continue
                self._status = (True, "polling")
                metrics.CONNECTOR_POLLS.labels(self.name, "records" if records else "empty").inc()
                if not records:
                    stop.wait(self.conf.poll_interval_s)
                    continue
                if not publisher.publish_until_acked(records, self.topic, stop):
                    break  # stopped before the broker acknowledged: not committed
                self._commit(records[-1].position, stop)
        finally:
            try:
                self.close()
            finally:
                publisher.close()

    _status: tuple[bool, str] = (False, "starting")
    _publisher: Any = None

    def _check_log(self) -> None:
        """Say so when the bus's log is not the one this source's position was last
        acknowledged by (``streams.kafka.log_ids``). The rule for a source: its
        position is in its own system and it keeps it; the events before it were
        acknowledged by the old log, and are not on this one."""
        topic = self.conf.topic_prefix + self.topic
        path = self.settings.runtime_dir / "sources" / f"{self.name}.log"
        bootstrap = self.bootstrap or resolve_bootstrap(self.settings)
        current = log_ids(self.settings, bootstrap, [topic], self.name)
        known = path.read_text().strip() if path.exists() else None
        if current.get(topic) is None or known == current[topic]:
            return
        if known is not None:
            metrics.LOG_CHANGES.labels(self.name, topic).inc()
            log.error(
                "%s: %s is another log than this source's position was acknowledged by "
                "(%s, now %s); the source keeps its position: what it sent before is not "
                "on this log",
                self.name,
                topic,
                known,
                current[topic],
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(current[topic])

    def ready(self) -> tuple[bool, str]:
        """Ready once set up, until a poll finds the outside system unavailable or the
        broker is unreachable."""
        if self._publisher is not None and self._publisher.broker.up is False:
            return False, "broker unreachable"
        return self._status

    def _setup(self, stop: threading.Event) -> bool:
        """``setup``; on ``Retriable`` wait and say False (True also when stopped)."""
        try:
            self.setup()
            self._status = (True, "polling")
            return True
        except Retriable as exc:
            log.warning("%s: setup: %s; retrying in %.1fs", self.name, exc, self.conf.retry_s)
            return stop.wait(self.conf.retry_s)

    def _commit(self, position: Any, stop: threading.Event) -> None:
        while True:
            try:
                self.commit(position)
                return
            except Retriable as exc:
                log.warning("%s: commit: %s; retrying in %.1fs", self.name, exc, self.conf.retry_s)
                if stop.wait(self.conf.retry_s):
                    return  # not committed: re-sent after the restart, same event ids


class Sink(Connector[S]):
    """A connector that writes topics to an outside system.

    Lifecycle: ``setup`` (open, create tables) → ``write`` batches of consumed
    messages, each made durable together with its offsets (or, for an
    at-least-once sink, before the offsets are committed) → ``close``. ``run``
    consumes until stopped. Records that cannot be decoded or written go to the
    topic's ``.dlq``. Sinks state their delivery guarantee in their docstring
    (the DuckDB sink: exactly once into tables) and pass ``SinkContract``.
    """

    kind: ClassVar[str] = "sink"

    @abstractmethod
    def topics(self) -> list[str]:
        """The topics this sink consumes."""

    @abstractmethod
    def setup(self) -> None:
        """Open the outside system, create or evolve what the records go into."""

    @abstractmethod
    def write(self, batch: list[Any]) -> int:
        """Write a batch of consumed messages durably; how many rows were written."""

    @abstractmethod
    def close(self) -> None:
        """Release the outside system; called once, also after a failure."""
