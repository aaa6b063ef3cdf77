"""The README's downstream subscriber examples run as written against the embedded
broker and the embedded schema registry: each prints every record published."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.core.catalog import default_catalog
from streams.core.codec import CatalogSchemaSource, Codec
from streams.core.jsonavro import from_json
from streams.core.kafka import make_producer
from streams.core.settings import Settings
from tests.integration.test_schema_registry import registry  # noqa: F401 (fixture)

pytestmark = pytest.mark.broker
KCAT = shutil.which("kcat")

ROOT = Path(__file__).parents[2]
SCHEMA = "cust.clickstream.raw.v1"


@pytest.fixture
def topic(bootstrap) -> tuple[str, list[str]]:
    """A clickstream topic of its own with five events, written by the pipeline's codec."""
    catalog = default_catalog()
    codec = Codec(catalog, CatalogSchemaSource(catalog))
    name = f"subscribers.{uuid.uuid4().hex[:8]}.{SCHEMA}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(timeout=30)
    (_, example), *_ = catalog.examples(SCHEMA)
    revision = catalog.value_schema(SCHEMA)
    producer = make_producer(Settings(), bootstrap)
    ids = [f"sub-{n}" for n in range(5)]
    for event_id in ids:
        record = from_json(revision.raw, {**example, "event_id": event_id})
        producer.produce(name, codec.encode(SCHEMA, record), record["anonymous_id"].encode())
    assert producer.flush(30) == 0
    return name, ids


def test_confluent_consumer_example(bootstrap, registry, topic):  # noqa: F811
    name, ids = topic
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/subscribers/confluent_consumer.py"),
         "--bootstrap", bootstrap, "--registry", registry, "--topic", name,
         "--group", f"g-{uuid.uuid4().hex}", "--max", str(len(ids))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["event_id"] for r in printed) == ids
    assert {r["protocol"] for r in printed} == {"segment"}


def test_faust_agent_example(bootstrap, registry, topic, tmp_path):  # noqa: F811
    name, ids = topic
    env = {
        **os.environ,
        "JOURNEYBUS_BOOTSTRAP": bootstrap,
        "JOURNEYBUS_REGISTRY": registry,
        "JOURNEYBUS_TOPIC": name,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "faust", "--datadir", str(tmp_path), "-A",
         "examples.subscribers.faust_agent", "worker",
         "-l", "warn", "--without-web"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen: set[str] = set()
    output: list[str] = []

    def read() -> None:
        for line in worker.stdout:
            output.append(line)
            if "{" in line:  # Faust logs what an agent prints, after its own prefix
                seen.add(json.loads(line[line.index("{") :])["event_id"])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while seen != set(ids) and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
        assert seen == set(ids), "".join(output[-30:])
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (.ci/run installs it)")
def test_kcat_with_the_wheels_librdkafka_reads_every_record(bootstrap, topic):
    name, ids = topic
    done = subprocess.run(
        [str(ROOT / "examples/subscribers/kcat.sh"), "-b", bootstrap, "-C", "-t", name,
         "-e", "-q", "-f", "%t %p %o %S\\n"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split()
    assert len(done.stdout.splitlines()) == len(ids), done.stdout
    assert set(lines[0::4]) == {name}
