"""Waiting for a condition in tests, by polling."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], bool],
    timeout_s: float,
    *,
    stable_s: float = 0.0,
    interval_s: float = 0.1,
    alive: Callable[[], bool] = lambda: True,
) -> bool:
    """True once ``predicate`` holds (continuously for ``stable_s``); False when
    ``timeout_s`` passed or ``alive()`` turned false first."""
    deadline = time.monotonic() + timeout_s
    held_since = None
    while time.monotonic() < deadline and alive():
        if predicate():
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since >= stable_s:
                return True
        else:
            held_since = None
        time.sleep(interval_s)
    return stable_s == 0 and predicate()
