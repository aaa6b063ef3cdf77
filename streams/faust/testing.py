"""What an agent's tests need, with real parts: an embedded broker holding every
catalogue topic, records published with the runtime's codec, a worker process of the
agent, and its output read back.

    with bus_broker() as bootstrap, AgentWorker("agents.my_agent", bootstrap):
        publish(bootstrap, SCORES, [record, ...])   # from streams.core.topics
        outputs = read_topic(bootstrap, "team.my-output.v1", count=1)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker
from streams.core.catalog import default_catalog, record_key
from streams.core.codec import CatalogSchemaSource, Codec
from streams.core.jsonavro import from_json
from streams.core.kafka import make_producer
from streams.core.settings import Settings


@contextmanager
def bus_broker(partitions: int | None = None, log_path: Path | None = None) -> Iterator[str]:
    """An embedded broker in memory with every catalogue topic (the catalogue's partition
    counts unless ``partitions`` is given);
    yields its bootstrap address and stops it on exit."""
    with EmbeddedBroker(log_path=log_path) as broker:
        catalog = default_catalog()
        admin = admin_client({"bootstrap.servers": broker.bootstrap})
        create_topics(admin, catalog.topics.values(), partitions=partitions)
        yield broker.bootstrap


def catalogue_codec() -> Codec:
    """The runtime's codec with the committed catalogue's schema ids."""
    catalog = default_catalog()
    return Codec(catalog, CatalogSchemaSource(catalog))


def example_records(topic: str) -> list[dict[str, Any]]:
    """The catalogue's examples of ``topic``, as the runtime's codec takes them."""
    catalog = default_catalog()
    raw = catalog.value_schema(topic).raw
    return [from_json(raw, example) for _, example in catalog.examples(topic)]


def publish(bootstrap: str, topic: str, records: Iterable[dict[str, Any]]) -> int:
    """Encode ``records`` for the catalogue ``topic`` as the stages do and produce
    them, keyed by the topic's key; returns how many were acknowledged."""
    codec = catalogue_codec()
    spec = codec.catalog.topic(topic)
    producer = make_producer(Settings(), bootstrap)
    sent = 0
    for record in records:
        key = record_key(spec, record)
        producer.produce(topic, codec.encode(topic, record), key.encode() if key else None)
        sent += 1
    if producer.flush(30) != 0:
        raise TimeoutError(f"{topic}: records not acknowledged within 30 s")
    return sent


def consumer_from_start(bootstrap: str, topic: str, timeout_s: float) -> Consumer:
    """A consumer assigned every partition of ``topic`` from its start, once the topic
    exists (an agent's output topic may not yet: waits up to ``timeout_s``). Assigned,
    not subscribed: no group join to wait for (about half the session timeout on the
    embedded broker). The caller closes it."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"journeybus-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    deadline = time.monotonic() + timeout_s
    partitions: dict = {}
    while not partitions and time.monotonic() < deadline:
        metadata = consumer.list_topics(timeout=10).topics.get(topic)
        partitions = metadata.partitions if metadata is not None and not metadata.error else {}
        time.sleep(0 if partitions else 0.2)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return consumer


def read_topic(
    bootstrap: str,
    topic: str,
    count: int,
    timeout_s: float = 60.0,
    settle_s: float = 0.0,
    until: Callable[[list[tuple[str | None, Any]]], bool] | None = None,
) -> list[tuple[str | None, Any]]:
    """``(key, value)`` of the records of ``topic`` from its start, once ``count`` are
    there and ``until(found)`` (if given) holds, and ``settle_s`` more seconds passed to
    see any beyond; else what arrived by ``timeout_s``. Delivery is at least once, so a
    test that kills an agent should pass ``until``: redelivered duplicates count towards
    ``count``. Values of catalogue topics are decoded with the runtime's codec, others
    as JSON."""
    codec = catalogue_codec()
    known = topic in codec.catalog.topics
    deadline = time.monotonic() + timeout_s
    consumer = consumer_from_start(bootstrap, topic, timeout_s)
    found: list[tuple[str | None, Any]] = []
    settled: float | None = None
    try:
        while time.monotonic() < deadline and (settled is None or time.monotonic() < settled):
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error():
                    continue
                value = msg.value()
                decoded = codec.decode(topic, value) if known else json.loads(value)
                key = msg.key().decode() if msg.key() is not None else None
                found.append((key, decoded))
            if settled is None and len(found) >= count and (until is None or until(found)):
                settled = time.monotonic() + settle_s
    finally:
        consumer.close()
    return found


class AgentWorker:
    """A Faust worker of the agent module ``module`` (importable from ``cwd``), run as
    ``python -m faust -A module worker`` with the bus at ``bootstrap``; a context
    manager that stops it (``kill`` ends it with SIGKILL, as a crash)."""

    def __init__(
        self,
        module: str,
        bootstrap: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.module = module
        self.bootstrap = bootstrap
        self.cwd = cwd or Path.cwd()
        self.env = env or {}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> AgentWorker:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(self.cwd), os.environ.get("PYTHONPATH")])
            ),
            **self.env,
        }
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                self.module,
                "worker",
                "-l",
                "warn",
                "--without-web",
            ],
            cwd=self.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to commit or flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def dump_stacks(self, wait_s: float = 2.0) -> str:
        """What the worker writes to its log on SIGUSR1 (every thread's and task's
        stack, ``streams.faust.stackdump``); empty without a log or a running worker."""
        if self.log_path is None or self.process is None or self.process.poll() is not None:
            return ""
        start = self.log_path.stat().st_size
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(wait_s)
        with open(self.log_path, "rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> AgentWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
