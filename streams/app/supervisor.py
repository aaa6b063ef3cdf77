"""``journeybus up``: the whole local stack as supervised processes.

Starts the embedded broker and its object store (unless ``KAFKA_BOOTSTRAP_SERVERS``
names a cluster), creates the topics, then runs each component as a child
process: one per stream stage (``--workers N``: N per stage, sharing partitions
through the consumer group), the DuckDB sink, the HTTP collector
(``collector_port``), the schema registry serving the catalogue (``registry_port``),
polling sources (``sources``, e.g. ``postgres-fulfillment``) and the activation
agents' Faust worker (``activation``: audiences, channel and message decisions, the
product feed). A child that exits is restarted with exponential backoff (1 s
doubling to 30 s, reset after a minute of good health) and the exit
is logged. The broker and its store are supervised too: one that dies is logged
and restarted at once on the same ports (the store first); the children
reconnect by themselves. A broker whose log is in memory comes back empty: the
topics are created again and every child restarted, so that no process reads on
from offsets of the lost log. Ctrl-C or SIGTERM stops every child (SIGTERM, then
SIGKILL after ``stop_timeout_s``), then the broker and the store; children also
die with the supervisor (PR_SET_PDEATHSIG), so nothing is left running.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from streams.core.admin import admin_client, create_topics
from streams.core.broker import EmbeddedBroker, clear_state, embedded_broker, write_state
from streams.core.catalog import default_catalog
from streams.core.processes import die_with_parent, stop_process
from streams.core.settings import Settings, get_settings

log = logging.getLogger(__name__)

BACKOFF_START_S, BACKOFF_MAX_S, HEALTHY_AFTER_S = 1.0, 30.0, 60.0
ACTIVATION_AGENTS = "streams.activation.agents"  # the bus's own Faust app


@dataclass
class Child:
    """A supervised child process."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    metrics_port: int
    process: subprocess.Popen | None = None
    restarts: int = 0
    backoff_s: float = BACKOFF_START_S
    started_at: float = 0.0
    next_start: float = 0.0

    def start(self) -> None:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.args,
                env={**self.env, "JOURNEYBUS__METRICS__PORT": str(self.metrics_port)},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self.started_at = time.monotonic()

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        if stop_process(proc, timeout_s):
            log.warning("%s did not stop within %.1f s of SIGTERM: killed", self.name, timeout_s)


@dataclass
class Supervisor:
    """Runs and restarts the stack's processes (see module docstring)."""

    settings: Settings = field(default_factory=get_settings)
    workers: int = 1
    stages: tuple[str, ...] = ("normalise", "journeys", "attribution", "scoring", "profiles")
    collector_port: int | None = None  # None: no HTTP collector
    registry_port: int | None = None  # None: no schema registry
    sources: tuple[str, ...] = ()  # polling source connectors to run (connector run NAME)
    activation: bool = True  # the activation agents (audiences, decisions, feed)
    base_metrics_port: int = 9400
    stop_timeout_s: float = 5.0
    children: list[Child] = field(default_factory=list)
    broker: EmbeddedBroker | None = None
    bootstrap: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        """Start broker, topics and children; returns the bootstrap address."""
        runtime = self.settings.runtime_dir
        runtime.mkdir(parents=True, exist_ok=True)
        if self.settings.kafka.bootstrap_servers:
            self.bootstrap = self.settings.kafka.bootstrap_servers
        else:
            self.broker = embedded_broker(self.settings)
            self.bootstrap = self.broker.start()
            self._record_broker()
        self._create_topics()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "JOURNEYBUS__RUNTIME_DIR": str(runtime.resolve()),
        }
        logs = runtime / "logs"
        logs.mkdir(exist_ok=True)
        exe = [sys.executable, "-m", "streams.app.cli"]
        specs: list[tuple[str, list[str]]] = []
        for stage in self.stages:
            for i in range(self.workers):
                specs.append((f"{stage}-{i}", [*exe, "worker", "--stage", stage]))
        specs.append(("sink", [*exe, "sink"]))
        if self.collector_port is not None:
            specs.append(("collector", [*exe, "collect", "--port", str(self.collector_port)]))
        for name in self.sources:
            specs.append((name, [*exe, "connector", "run", name]))
        if self.registry_port is not None:
            specs.append(
                ("registry", [*exe, "registry", "serve", "--port", str(self.registry_port)])
            )
        # last: it serves no metrics, and the others keep their metrics ports
        if self.activation:
            specs.append(("activation", [*exe, "agent", "run", ACTIVATION_AGENTS, "--bus"]))
        for offset, (name, args) in enumerate(specs):
            child = Child(name, args, env, logs / f"{name}.log", self.base_metrics_port + offset)
            child.start()
            self.children.append(child)
            log.info(
                "started %s (pid %s, metrics :%d, log %s)",
                name,
                child.process.pid,
                child.metrics_port,
                child.log_path,
            )
        return self.bootstrap

    def _record_broker(self) -> None:
        assert self.broker is not None and self.broker.process is not None
        write_state(self.settings.runtime_dir, self.bootstrap, self.broker.process.pid)

    def _create_topics(self) -> None:
        created = create_topics(
            admin_client(self.settings.kafka.confluent_config(self.bootstrap)),
            default_catalog().topics.values(),
            replication_factor=1 if self.broker else 3,
        )
        log.info(
            "bus %s: %d topics created, %d existed",
            self.bootstrap,
            len(created.created),
            len(created.existing),
        )

    def supervise_broker(self) -> None:
        """Restart the broker or its store if either died (on the same ports). A log in
        memory comes back empty: topics again, and every child restarted."""
        if self.broker is None or self.stopping.is_set() or not self.broker.dead():
            return
        dead = self.broker.dead()
        log.warning("embedded %s exited; restarting (see %s)", " and ".join(dead), "broker.log")
        try:
            self.broker.restart_dead()
        except Exception:  # try again at the next round; the children wait meanwhile
            log.exception("restarting the embedded broker failed")
            return
        self._record_broker()
        log.info("embedded broker back on %s", self.bootstrap)
        if "broker" in dead and not self.broker.durable and not self.stopping.is_set():
            log.warning("the broker's log was in memory and is gone: restarting every child")
            self._create_topics()
            for child in self.children:
                child.stop(self.stop_timeout_s)
                child.start()

    def supervise_once(self) -> None:
        """Restart the broker, its store and children that exited (children with
        backoff), unless a stop was asked for."""
        self.supervise_broker()
        if self.stopping.is_set():
            return
        now = time.monotonic()
        for child in self.children:
            proc = child.process
            if proc is not None and proc.poll() is None:
                if now - child.started_at > HEALTHY_AFTER_S:
                    child.backoff_s = BACKOFF_START_S
                continue
            if proc is not None:  # just exited
                log.warning(
                    "%s exited with code %s; restarting in %.0f s (see %s)",
                    child.name,
                    proc.returncode,
                    child.backoff_s,
                    child.log_path,
                )
                child.process = None
                child.next_start = now + child.backoff_s
                child.backoff_s = min(BACKOFF_MAX_S, child.backoff_s * 2)
            elif now >= child.next_start:
                child.restarts += 1
                child.start()
                log.info(
                    "restarted %s (pid %s, restart #%d)",
                    child.name,
                    child.process.pid,
                    child.restarts,
                )

    def run(self) -> None:
        """Supervise until ``stopping`` is set (by a signal when ``up`` runs it)."""
        while not self.stopping.wait(0.5):
            self.supervise_once()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop every child (SIGTERM, all at once; SIGKILL after ``timeout_s``, default
        ``stop_timeout_s``), then the broker and its store: a few seconds, whatever
        state they are in (a child waiting on a dead broker is killed, which its
        commits are made to survive)."""
        self.stopping.set()
        timeout_s = self.stop_timeout_s if timeout_s is None else timeout_s
        for child in self.children:  # all at once: they shut down in parallel
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            child.stop(max(0.1, deadline - time.monotonic()))
        if self.broker is not None:
            clear_state(self.settings.runtime_dir)
            self.broker.stop()
            self.broker = None
        log.info("stack stopped")
