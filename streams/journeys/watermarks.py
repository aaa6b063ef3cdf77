"""The source watermark: how far, in event time, every raw source partition has been
processed by the normalise stage (pure functions over a JSON-able state).

Each normalise worker reports, for every raw partition it owns, the event time
its acknowledged outputs reached (``progress``) and whether the partition is
caught up. A report replaces that worker's previous one, so a partition it gave
up in a rebalance disappears from it. The watermark is the minimum over every
raw partition:

- a caught-up partition does not hold it back (an idle source would otherwise
  stop every conversion);
- a partition nobody reports (its owner has not reported yet, or died and its
  successor has not) holds it back: there is no watermark;
- a partition two live workers report (during a hand-over) counts with the
  more conservative report.

A worker not heard from for ``timeout_ms`` is forgotten (it stopped or was
replaced); its partitions then hold the watermark back until their new owner
reports them. Before that, a "caught up" older than ``caught_up_ttl_ms`` is
not believed: it said nothing was left to read when it was sent, and a worker
that has stopped reporting (killed, its partitions about to move) does not
read what arrived since; its partitions count as behind at their progress.

The furthest progress ever reported for a partition is remembered: it stays
true when the partition changes hands (every record before it had its outputs
acknowledged), and a worker that took a partition over after it had been read
to its end has no progress of its own to report there.
"""

from __future__ import annotations

from typing import Any

# state: {"origins": {origin: {"heard": ms, "parts": {"topic/partition": [progress | None,
#          caught_up]}}}, "progress": {"topic/partition": furthest progress reported}}
Reports = dict[str, dict[str, Any]]


def new_reports() -> Reports:
    return {"origins": {}, "progress": {}}


def partition_id(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def record_report(reports: Reports, origin: str, partitions: list[dict], now_ms: int) -> None:
    """Store a worker's report (its whole assignment), replacing its previous one."""
    parts = {
        partition_id(p["topic"], p["partition"]): [p["progress"], bool(p["caught_up"])]
        for p in partitions
    }
    reports["origins"][origin] = {"heard": now_ms, "parts": parts}
    furthest = reports["progress"]
    for pid, (progress, _) in parts.items():
        if progress is not None and progress > furthest.get(pid, progress - 1):
            furthest[pid] = progress


def forget_silent(reports: Reports, now_ms: int, timeout_ms: int) -> None:
    """Drop the workers not heard from for ``timeout_ms``."""
    origins = reports["origins"]
    for origin in [o for o, r in origins.items() if now_ms - r["heard"] > timeout_ms]:
        del origins[origin]


def source_watermark(
    reports: Reports,
    all_partitions: set[str],
    lateness_ms: int = 0,
    now_ms: int | None = None,
    caught_up_ttl_ms: int = 5_000,
) -> int | None:
    """Event time before which every raw source partition has been processed.

    ``all_partitions`` are the raw partitions that exist (from topic metadata);
    partitions seen in reports count too. None while any of them is unreported,
    or reported behind with no progress yet. When every partition is caught up,
    everything that exists has been processed: the watermark is then the furthest
    event time reached (progress plus the ``lateness_ms`` the reports hold back),
    so the newest conversions of a quiet moment close without waiting for more
    data; the journeys stage's processing-time grace still covers a client that
    holds events back.
    """
    furthest = reports["progress"]
    by_partition: dict[str, list[list]] = {pid: [] for pid in all_partitions}
    for report in reports["origins"].values():
        stale = now_ms is not None and now_ms - report["heard"] > caught_up_ttl_ms
        for pid, (progress, caught_up) in report["parts"].items():
            caught_up = caught_up and not stale
            known = furthest.get(pid)
            if progress is None or (known is not None and known > progress):
                progress = known
            by_partition.setdefault(pid, []).append([progress, caught_up])
    if not by_partition:
        return None
    pending: list[int] = []
    reached: list[int] = []
    for entries in by_partition.values():
        if not entries:
            return None  # nobody owns it (yet): it may hold anything
        behind = [progress for progress, caught_up in entries if not caught_up]
        if behind:
            if any(progress is None for progress in behind):
                return None
            pending.append(min(behind))
        reached += [progress for progress, _ in entries if progress is not None]
    if pending:
        return min(pending)
    if not reached:
        return None
    return max(reached) + lateness_ms  # everything caught up: all that exists is processed
