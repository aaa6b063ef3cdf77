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
- Errors are typed (``streams.core.errors``): ``Retriable`` from ``poll`` or from the
  broker backs off and retries the same batch; ``InvalidRecord`` dead-letters one
  record; anything else is fatal and ends ``run`` (the supervisor restarts it).

Configuration: ``ConnectorSettings`` subclasses, read from
``CONNECTORS__<NAME>__<KEY>`` (see ``connectors.settings``).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

from confluent_kafka import Message

from connectors.publisher import Publisher
from connectors.record import SourceRecord
from connectors.settings import ConnectorSettings
from streams.core import metrics
from streams.core.broker import resolve_bootstrap
from streams.core.codec import Codec, make_codec
from streams.core.errors import FatalError, Retriable
from streams.core.kafka import log_ids
from streams.core.settings import Settings
from streams.runtime.deadletter import DeadLetterPolicy
from streams.runtime.erasures import ErasureList
from streams.runtime.health import serve_health
from streams.runtime.stage import BatchContext, Output, run_sink

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ConnectorSettings)


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
        settings: Settings,
        bootstrap: str | None = None,
        conf: S | None = None,
    ) -> None:
        self.settings = settings
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
        acknowledged by (``streams.core.kafka.log_ids``). The rule for a source: its
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
    """A connector that writes topics to an outside system, on the stages' runner.

    Lifecycle: ``setup`` (open, create tables) → ``prepare`` each batch the
    runner consumed (decode; what cannot be decoded is dead-lettered through the
    batch context) → ``write`` it with the batch's next offsets, in one
    transaction of the outside system (or, for an at-least-once sink, before the
    offsets are committed) → ``close``. ``run`` hands the sink to the runner
    (``streams.runtime.stage.run_sink``), which owns the consumer, the resume from
    ``stored_offsets``, dead letters (produced and acknowledged before ``write``),
    the dead-letter rate, erasure requests, lag, metrics and readiness. Sinks
    state their delivery guarantee in their docstring (the DuckDB sink: exactly
    once into tables) and pass ``SinkContract``.
    """

    kind: ClassVar[str] = "sink"
    #: how long the runner gathers a batch before handing it over (and while a write
    #: is still in flight)
    linger_ms: float = 0.0
    #: the most records in one batch
    max_batch: int = 2000

    def __init__(
        self,
        settings: Settings,
        bootstrap: str | None = None,
        conf: S | None = None,
    ) -> None:
        super().__init__(settings, bootstrap, conf)
        # the runner's, once bound (``bind``); these serve a sink driven without one
        self.erasures = ErasureList()
        self.policy = DeadLetterPolicy(self.stage_name)
        self.erasures.on_request.append(self.on_erasure)

    @property
    def stage_name(self) -> str:
        """Its name on the runner: metrics, dead letters, readiness."""
        return f"{self.name}-sink"

    def bind(
        self,
        erasures: ErasureList,
        policy: DeadLetterPolicy,
        publish: Callable[[list[Output]], None],
    ) -> None:
        """Take the runner's erasure requests, dead-letter policy and producer."""
        self.erasures, self.policy, self.publish = erasures, policy, publish

    def publish(self, outputs: list[Output]) -> None:
        """Produce dead letters found while writing and wait for the broker (bound to
        the runner's producer by ``bind``)."""
        raise FatalError(f"{self.name}: not bound to a runner; cannot publish dead letters")

    def write_now(self, batch: list[Message]) -> None:
        """Prepare, publish the dead letters, write with the batch's offsets and wait: the
        runner's steps for one batch, for a sink driven without one (tests, tools)."""
        ctx = BatchContext(self.stage_name, self.policy, int(time.time() * 1000))
        prepared = self.prepare(batch, ctx)
        self.publish(ctx.outputs)
        offsets = {(m.topic(), m.partition()): m.offset() + 1 for m in batch}
        self.write(prepared, offsets, {})
        self.wait_written()

    def run(self, stop: threading.Event) -> None:
        """Consume and write until ``stop`` is set (on the runner)."""
        bootstrap = self.bootstrap or resolve_bootstrap(self.settings)
        port = self.settings.metrics.port

        def serve(ready: Callable[[], tuple[bool, str]]) -> None:
            if self.serves_health and port is not None:
                serve_health(port, ready, self.settings.metrics.host)

        run_sink(
            self,
            self.stage_name,
            stop,
            self.settings,
            bootstrap,
            self.codec,
            group_id=self.conf.group_id,
            max_batch=self.max_batch,
            linger_ms=self.linger_ms,
            serve=serve,
        )

    @property
    def codec(self) -> Codec:
        return make_codec(self.settings)

    @abstractmethod
    def topics(self) -> list[str]:
        """The topics this sink consumes."""

    @abstractmethod
    def setup(self) -> None:
        """Open the outside system, create or evolve what the records go into (called
        again harmlessly)."""

    @abstractmethod
    def stored_offsets(self) -> dict[tuple[str, int], tuple[int, str | None]]:
        """Per partition written: the next offset and the log it is an offset in
        (``streams.core.kafka.log_ids``), as stored with the rows."""

    @abstractmethod
    def store_offsets(self, offsets: dict[tuple[str, int], int], logs: dict[str, str]) -> None:
        """Store offsets alone (a log that changed is read from its beginning)."""

    @abstractmethod
    def prepare(self, batch: list[Message], ctx: BatchContext) -> Any:
        """Turn a batch into what ``write`` writes; ``ctx.dead_letter`` what cannot be."""

    @abstractmethod
    def write(
        self, prepared: Any, offsets: dict[tuple[str, int], int], logs: dict[str, str]
    ) -> None:
        """Write a prepared batch and ``offsets`` durably, in one transaction."""

    def writing(self) -> bool:
        """Whether a write is still in flight (a sink that writes in the background)."""
        return False

    def wait_written(self) -> None:
        """Wait for the write in flight; raises what it raised."""

    def idle(self) -> None:
        """Between batches, when nothing arrived (maintenance)."""

    def on_erasure(self, request: dict[str, Any]) -> None:
        """A new erasure request: keep the customer's rows out from now on."""

    @abstractmethod
    def close(self) -> None:
        """Release the outside system; called once, also after a failure."""
