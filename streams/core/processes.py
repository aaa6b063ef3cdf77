"""Child processes that never outlive their owner, and stopping them politely."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """``preexec_fn`` for a child: the kernel sends it ``sig`` if its parent dies,
    even by SIGKILL, so no orphan survives a killed supervisor or test run."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def stop_process(proc: subprocess.Popen | None, timeout_s: float) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``; nothing if it already exited.
    Returns whether it had to be killed."""
    if proc is None or proc.poll() is not None:
        return False
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)
        return True
