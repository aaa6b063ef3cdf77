"""The embedded broker: starts on loopback, answers, stops, leaves no process behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.core.broker import EmbeddedBroker, resolve_bootstrap, write_state
from streams.core.errors import FatalError
from streams.core.settings import Settings
from tests import polling


def tansu_pids(cwd: Path | None = None, pattern: str = "tansu.*broker") -> set[int]:
    """Running Tansu brokers (or, with ``pattern``, other processes); with ``cwd``, only
    those started from that directory (the CLI runs there), so that brokers of other
    tests running meanwhile do not count."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    pids = {int(p) for p in out.stdout.split()}
    if cwd is None:
        return pids
    mine = set()
    for pid in pids:
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) == cwd:
                mine.add(pid)
        except OSError:
            pass  # gone meanwhile
    return mine


def store_pids(cwd: Path | None = None) -> set[int]:
    """Running SeaweedFS servers (the durable log's object store)."""
    return tansu_pids(cwd, "weed server")


def wait_until(predicate, timeout=10.0):
    return polling.wait_until(predicate, timeout)


def test_embedded_broker_answers_metadata_and_stops_without_leftovers():
    with EmbeddedBroker() as broker:
        assert broker.bootstrap.startswith("127.0.0.1:")
        meta = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=5)
        assert meta.brokers
        pid = broker.process.pid
        assert pid in tansu_pids()
    assert wait_until(lambda: pid not in tansu_pids())


def test_broker_binds_to_loopback_only():
    with EmbeddedBroker() as broker:
        out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        lines = [ln for ln in out.splitlines() if f":{broker.port} " in ln]
        assert lines, out
        assert all("127.0.0.1:" in ln for ln in lines), lines


def _start_cli(tmp_path: Path, *args: str, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "JOURNEYBUS__RUNTIME_DIR": str(tmp_path / "rt"), **(env_extra or {})}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None) if not env_extra else None
    return subprocess.Popen(
        [sys.executable, "-m", "streams.app.cli", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_broker_prints_bootstrap_and_stops_cleanly_on_signal(tmp_path, sig):
    proc = _start_cli(tmp_path, "broker")
    bootstrap = proc.stdout.readline().strip()
    assert bootstrap.startswith("127.0.0.1:")
    assert (tmp_path / "rt" / "broker.json").exists()
    # other commands find it through the runtime directory
    settings = Settings(runtime_dir=tmp_path / "rt")
    assert resolve_bootstrap(settings) == bootstrap
    started = tansu_pids(tmp_path)
    stores = store_pids(tmp_path)
    assert len(started) == 1 and len(stores) == 1  # durable by default: its object store
    proc.send_signal(sig)
    assert proc.wait(timeout=15) == 0
    assert wait_until(lambda: not (started & tansu_pids()) and not (stores & store_pids()))
    assert not (tmp_path / "rt" / "broker.json").exists()


def test_broker_dies_with_its_owner_even_on_sigkill(tmp_path):
    proc = _start_cli(tmp_path, "broker")
    assert proc.stdout.readline().strip().startswith("127.0.0.1:")
    started = tansu_pids(tmp_path) | store_pids(tmp_path)
    assert len(started) == 2
    proc.kill()
    proc.wait(timeout=10)
    assert wait_until(lambda: not (started & (tansu_pids() | store_pids()))), "orphans"


def test_configured_cluster_means_nothing_is_started(tmp_path):
    proc = _start_cli(tmp_path, "broker", env_extra={"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092"})
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "using kafka-1:9092" in out
    assert tansu_pids(tmp_path) == set()
    assert not (tmp_path / "rt" / "broker.json").exists()
    settings = Settings(runtime_dir=tmp_path / "rt")
    settings.kafka.bootstrap_servers = "kafka-1:9092"
    assert resolve_bootstrap(settings) == "kafka-1:9092"


def test_without_broker_commands_say_how_to_get_one(tmp_path):
    settings = Settings(runtime_dir=tmp_path / "nothing")
    with pytest.raises(FatalError, match="journeybus broker"):
        resolve_bootstrap(settings)
    write_state(tmp_path / "nothing", "127.0.0.1:1", pid=2**22 + 12345)  # a dead pid
    with pytest.raises(FatalError):
        resolve_bootstrap(settings)


def test_topics_create_list_describe_through_the_cli(tmp_path, catalog):
    proc = _start_cli(tmp_path, "broker")
    try:
        assert proc.stdout.readline().strip()
        env = {**os.environ, "JOURNEYBUS__RUNTIME_DIR": str(tmp_path / "rt")}
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)

        def cli(*args):
            return subprocess.run(
                [sys.executable, "-m", "streams.app.cli", *args],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        first = cli("topics", "create")
        assert f"created {len(catalog.topics)} topics, 0 already existed" in first
        second = cli("topics", "create")
        assert f"created 0 topics, {len(catalog.topics)} already existed" in second
        listing = cli("topics", "list")
        for name, spec in catalog.topics.items():
            line = next(ln for ln in listing.splitlines() if ln.startswith(name + " "))
            assert line.split()[1] == str(spec.partitions)
        described = cli("topics", "describe", "cust.touchpoints.v1")
        assert '"customer_key"' in described and '"example"' in described
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_a_durable_log_keeps_records_and_group_offsets_across_kill_9(tmp_path):
    broker = EmbeddedBroker(data_dir=tmp_path / "log", log_path=tmp_path / "broker.log")
    with broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("kept", 4, 1)])["kept"].result(timeout=30)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(2000):
            producer.produce("kept", f"record-{i}".encode())
        assert producer.flush(30) == 0
        group = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kept-group"})
        group.commit(offsets=[TopicPartition("kept", 0, 123)], asynchronous=False)
        group.close()
        old = {broker.process.pid, broker.store.process.pid}
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: set(broker.dead()) == {"broker", "object-store"})
        assert broker.restart_dead() == ["object-store", "broker"]
        assert not old & {broker.process.pid, broker.store.process.pid}
        values = read_all(broker.bootstrap, "kept", 4)
        assert sorted(values) == sorted(f"record-{i}".encode() for i in range(2000))
        group = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kept-group"})
        (committed,) = group.committed([TopicPartition("kept", 0)], timeout=10)
        group.close()
        assert committed.offset == 123
    # and across a clean stop and a new broker process on the same directory
    with EmbeddedBroker(data_dir=tmp_path / "log") as again:
        assert len(read_all(again.bootstrap, "kept", 4)) == 2000


def test_two_brokers_cannot_share_one_log(tmp_path):
    with (
        EmbeddedBroker(data_dir=tmp_path / "log"),
        pytest.raises(FatalError, match="another journeybus process"),
    ):
        EmbeddedBroker(data_dir=tmp_path / "log").start()


def read_all(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "read-all"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values: list[bytes] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 3:
        for msg in consumer.consume(1000, timeout=0.5):
            if not msg.error():
                values.append(msg.value())
                quiet_since = time.monotonic()
    consumer.close()
    return values
