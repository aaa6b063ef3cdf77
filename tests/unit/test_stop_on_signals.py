"""Processes stop on SIGTERM even when signals arrive in a burst (a supervisor's TERM and
an operator's) while the main thread waits on the stop event: a handler that took the
event's lock could interrupt a holder of it and wait forever (3 of 10 hung before)."""

import os
import signal
import subprocess
import sys

CHILD = """
from streams.app.worker import stop_on_signals
stop = stop_on_signals()
print("ready", flush=True)
while not stop.wait(0.01):  # as the supervisor's and the connectors' loops do
    pass
print("stopped", flush=True)
"""


def test_a_burst_of_sigterms_stops_the_process_every_time():
    outcomes = []
    for _ in range(10):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
        )
        assert child.stdout.readline().strip() == "ready"
        for _ in range(2000):
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
        try:
            child.wait(timeout=10)
            outcomes.append(child.stdout.read().strip())
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            outcomes.append("hung")
    assert outcomes == ["stopped"] * 10
