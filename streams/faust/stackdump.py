"""``kill -USR1 <worker pid>`` writes every thread's and every asyncio task's stack to
the worker's log: what a stalled agent is waiting for, without stopping it."""

from __future__ import annotations

import asyncio
import gc
import io
import signal
import sys
import threading
import traceback

import faust


def dump_stacks(out: io.TextIOBase | None = None) -> str:
    """The stacks of every thread and of every pending task of the running loop."""
    buf = io.StringIO()
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        buf.write(f"--- thread {names.get(ident, ident)}\n")
        buf.write("".join(traceback.format_stack(frame)))
    for task in asyncio.all_tasks():
        buf.write(f"--- task {task.get_name()}\n")
        for line in awaiting(task.get_coro()):
            buf.write(f"  {line}\n")
    text = buf.getvalue()
    stream = out or sys.stderr
    stream.write(text)
    stream.flush()
    return text


FRAMES = ("cr_frame", "ag_frame", "gi_frame")  # coroutine, async generator, generator
AWAITS = ("cr_await", "ag_await", "gi_yieldfrom")


def _suspended(obj: object) -> bool:
    return any(hasattr(obj, a) for a in FRAMES)


def awaiting(coro: object) -> list[str]:
    """Where a coroutine is suspended, through every coroutine, async generator and
    generator it awaits (``Task.print_stack`` shows only the outermost frame)."""
    lines = []
    while coro is not None:
        frame = next((f for f in (getattr(coro, a, None) for a in FRAMES) if f), None)
        if frame is not None:
            lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = next((c for c in (getattr(coro, a, None) for a in AWAITS) if c), None)
        if coro is None or _suspended(coro):
            continue
        # an asend object (``async for``) or an ``__await__`` wrapper refers to the
        # generator or coroutine it runs; anything else is a future or another awaitable
        inner = next((g for g in gc.get_referents(coro) if _suspended(g)), None)
        if inner is None:
            lines.append(repr(coro)[:300])
            break
        coro = inner
    return lines


def install(app: faust.App) -> None:
    """Dump the stacks on SIGUSR1 (called when the worker's loop runs)."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_stacks)
