"""What a possible event time is, for every stage that checks one.

Clocks break: a device set to 1970, a field holding seconds instead of
milliseconds, a value from a corrupt producer. At ingestion (the normalise
stage) a time before 2000 or more than a day ahead of now cannot be a retail
event (``possible_time``). Stages further down, which also read history loaded
by other means (a 1997 purchase file), only refuse what date arithmetic cannot
take (``sane_time``: Python dates end at year 9999, SQLite and DuckDB at 64 bits).
"""

from __future__ import annotations

import time

DAY_MS = 86_400_000
EARLIEST_MS = 946_684_800_000  # 2000-01-01: anything older is a broken clock
MAX_FUTURE_SKEW_MS = DAY_MS  # client clocks run ahead; more than a day is impossible


def possible_time(ms: int, now_ms: int | None = None) -> bool:
    """Whether ``ms`` (epoch milliseconds) can be the time of an event seen at ``now_ms``
    (default: now)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return EARLIEST_MS <= ms <= now + MAX_FUTURE_SKEW_MS


LATEST_SANE_MS = 7_258_118_400_000  # 2200-01-01


def sane_time(ms: int) -> bool:
    """Whether ``ms`` is a time every stage and table can compute with: 1970 to 2200."""
    return 0 <= ms < LATEST_SANE_MS
