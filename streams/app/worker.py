"""``journeybus worker``: the stream stages of this process."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from streams.attribution.stage import AttributionStage
from streams.core.broker import resolve_bootstrap
from streams.core.codec import make_codec
from streams.core.settings import Settings, get_settings
from streams.journeys.stage import JourneysStage
from streams.normalise.stage import NormaliseStage
from streams.profiles.stage import ProfilesStage
from streams.runtime.health import serve_health
from streams.runtime.stage import Stage, StageRunner, run_stages, runners_ready
from streams.scoring.stage import ScoringStage

log = logging.getLogger(__name__)
STOP_GRACE_S = 5.0  # the supervisor also SIGKILLs a child after 5 s

STAGES = {
    "normalise": NormaliseStage,
    "journeys": JourneysStage,
    "attribution": AttributionStage,
    "scoring": ScoringStage,
    "profiles": ProfilesStage,
}


def build_runners(names: list[str], settings: Settings, bootstrap: str) -> list[StageRunner]:
    """The named stages, each with its erasure requests and side inputs read (the stages
    in parallel: each read waits for its topic to go quiet)."""
    codec = make_codec(settings)
    stages: list[Stage] = [STAGES[name](settings) for name in names]

    def attach(stage: Stage) -> None:
        stage.attach_erasures(codec, settings, bootstrap)  # first: side inputs filter by it
        stage.attach_side_inputs(codec, settings, bootstrap)

    with ThreadPoolExecutor(max_workers=max(1, len(stages))) as pool:
        list(pool.map(attach, stages))
    return [StageRunner(stage, settings, bootstrap, codec) for stage in stages]


class StopRequest(threading.Event):
    """An event set on SIGINT or SIGTERM whose ``is_set`` is true from the moment the
    signal's handler ran in the main thread, before the relay thread sets the event:
    a loop that wakes from a timed ``wait`` because the signal interrupted it checks
    ``is_set`` next and sees the request (a supervisor that was paused, then resumed
    with a TERM pending, otherwise restarted a dead broker before it stopped)."""

    def __init__(self) -> None:
        super().__init__()
        self.signalled = False  # a plain assignment: safe in a signal handler, no lock

    def is_set(self) -> bool:
        return self.signalled or super().is_set()


def stop_on_signals(grace_s: float | None = STOP_GRACE_S) -> StopRequest:
    """An event set on SIGINT or SIGTERM, for the main thread's loop to stop on.

    With ``grace_s``, a process that has not finished stopping that long after the
    signal exits anyway: its state commits with its offsets, so an abrupt end is
    as safe as a kill -9, and a process whose broker is gone (it died with the
    same supervisor) would otherwise wait on it for tens of seconds.

    A Python signal handler runs in the main thread between two bytecodes, also
    while that thread holds the event's non-reentrant lock (inside ``Event.set``,
    or ``Event.wait`` of a supervisor or connector loop): a handler that called
    ``set`` itself waited for that lock forever, and a burst of TERMs (the
    supervisor's and an operator's) hung 3 in 10 processes. So the handler only
    writes a byte to a pipe, and a thread sets the event.
    """
    stop = StopRequest()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def handler(*_: object) -> None:
        stop.signalled = True
        with contextlib.suppress(BlockingIOError):  # a full pipe: enough bytes are there
            os.write(write_fd, b"\0")

    def relay() -> None:
        os.read(read_fd, 1)
        stop.set()
        if grace_s is not None:  # a daemon thread: gone with a process that exits in time
            time.sleep(grace_s)
            log.warning("still stopping after %.0f s: exiting now", grace_s)
            logging.shutdown()
            os._exit(0)

    threading.Thread(target=relay, name="stop-on-signal", daemon=True).start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


def run_worker(names: list[str] | None = None) -> None:
    """Run the named stages (default: all) until SIGINT/SIGTERM."""
    settings = get_settings()
    bootstrap = resolve_bootstrap(settings)
    stop = stop_on_signals()
    runners = build_runners(names or list(STAGES), settings, bootstrap)
    if settings.metrics.port is not None:
        serve_health(settings.metrics.port, lambda: runners_ready(runners), settings.metrics.host)
    log.info("worker running stages %s on %s", [r.stage.name for r in runners], bootstrap)
    run_stages(runners, stop)
