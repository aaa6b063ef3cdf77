"""Per-partition state of a stage, committed together with the input offset.

One SQLite file per input partition (``<state_dir>/<stage>/<topic>-<partition>.sqlite``)
holds the stage's keyed state and the next input offset to read. A batch's
state changes and its offset are written in one transaction, so after a crash
(kill -9 included) the state matches exactly the input it has seen: replayed
records are applied once.

The file is a cache of the partition's changelog topic (``streams.runtime.changelog``):
every change is also written there, acknowledged before the file commits, so a
worker that is assigned the partition without the file (another pod, an empty
volume) rebuilds it from the changelog before it processes.

Values are JSON (orjson); reads are cached in memory, writes are buffered
until ``commit``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

_MISSING = object()
# changelog keys of the named integers (watermarks, erasures applied): no state key
# starts with a NUL
META_PREFIX = "\x00meta:"


class StateRejected(ValueError):
    """A stage put a value its store cannot keep (a bug the record being processed
    exposes: the runner dead-letters that record)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"its state {key!r} cannot be stored: {reason}")


class PartitionStore:
    """Keyed state + next offset of one input partition."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL + NORMAL: a committed transaction survives a killed process (not a
        # power cut, which the broker's at-least-once replay covers anyway).
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Deleted content is overwritten, not left in free pages: a forgotten customer's
        # state leaves no bytes behind (with ``scrub_at_commit`` for the WAL).
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,
                                           due INTEGER);
            CREATE INDEX IF NOT EXISTS kv_due ON kv(due) WHERE due IS NOT NULL;
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS log (id TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS changelog (log TEXT, next INTEGER NOT NULL);
        """)
        self._cache: dict[str, Any] = {}
        self._dirty: dict[str, tuple[Any, int | None] | None] = {}
        self._dirty_meta: dict[str, int] = {}
        self._sealed: dict[str, bytes] = {}  # serialised dirty values (``seal``)
        self._scrub = False  # checkpoint and truncate the WAL after the next commit

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._dirty:
            entry = self._dirty[key]
            return default if entry is None else entry[0]
        if key in self._cache:
            value = self._cache[key]
            return default if value is _MISSING else value
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        value = orjson.loads(row[0]) if row else _MISSING
        if len(self._cache) > 200_000:  # bound memory; dirty entries stay in _dirty
            self._cache.clear()
        self._cache[key] = value
        return default if value is _MISSING else value

    def put(self, key: str, value: Any, due: int | None = None) -> None:
        """Set ``key``; ``due`` (e.g. an expiry time) makes it show up in ``due_keys``.

        A value changed in place after it was put must be put again (``seal``
        may have serialised it already)."""
        self._cache[key] = value
        self._dirty[key] = (value, due)
        self._sealed.pop(key, None)

    def delete(self, key: str) -> None:
        self._cache[key] = _MISSING
        self._dirty[key] = None
        self._sealed.pop(key, None)

    def seal(self) -> None:
        """Serialise the values put since the last ``seal``, so that what cannot be
        stored (not JSON, a due time beyond 64 bits) raises now, while the runner can
        still blame the record that put it, rather than at ``commit``, where the whole
        batch would fail again after every restart. ``commit`` writes these bytes."""
        sealed = self._sealed
        for key, entry in self._dirty.items():
            if entry is None or key in sealed:
                continue
            value, due = entry
            if due is not None and not -(2**63) <= due < 2**63:
                raise StateRejected(key, f"due time {due} does not fit 64 bits")
            try:
                sealed[key] = orjson.dumps(value)
            except TypeError as exc:  # orjson.JSONEncodeError
                raise StateRejected(key, str(exc)) from None

    def due_keys(self, upto: int, prefix: str = "", limit: int | None = None) -> list[str]:
        """Keys starting with ``prefix`` whose ``due`` is at or before ``upto``, in key
        order; with ``limit``, the first ``limit`` of them (read without listing the rest).

        Keys of different prefixes may use different clocks (event time,
        processing time); a prefix selects one kind of timer.
        """
        dirty = [(k, e) for k, e in self._dirty.items() if k.startswith(prefix)]
        sql = "SELECT key FROM kv WHERE due IS NOT NULL AND due <= ? AND key >= ? AND key < ?"
        args: tuple = (upto, prefix, prefix + "\uffff")
        if limit is not None:
            # each uncommitted change can drop one stored key: read that many more
            sql += " ORDER BY key LIMIT ?"
            args += (limit + len(dirty),)
        keys = {k for (k,) in self._db.execute(sql, args)}
        for key, entry in dirty:
            if entry is None or entry[1] is None or entry[1] > upto:
                keys.discard(key)
            else:
                keys.add(key)
        return sorted(keys)[:limit]

    def changes(self) -> list[tuple[bytes, bytes | None, int | None]]:
        """What ``commit`` will write, as changelog entries: (key, value or None for a
        deletion, due time), the named integers (``set_meta``) under ``META_PREFIX``.
        Call after ``seal``."""
        sealed = self._sealed
        entries: list[tuple[bytes, bytes | None, int | None]] = [
            (k.encode(), None, None)
            if v is None
            else (k.encode(), sealed.get(k) or orjson.dumps(v[0]), v[1])
            for k, v in self._dirty.items()
        ]
        entries += [
            (f"{META_PREFIX}{name}".encode(), str(value).encode(), None)
            for name, value in self._dirty_meta.items()
        ]
        return entries

    def has_changes(self) -> bool:
        return bool(self._dirty or self._dirty_meta)

    def changelog_position(self) -> tuple[str | None, int] | None:
        """(changelog's log id, next changelog offset) this file holds everything
        before; None if it was never written from or to a changelog."""
        row = self._db.execute("SELECT log, next FROM changelog").fetchone()
        return (row[0], int(row[1])) if row else None

    def entries(self) -> Iterator[tuple[bytes, bytes | None, int | None]]:
        """Everything the file holds, as changelog entries (to seed a new changelog)."""
        for key, value, due in self._db.execute("SELECT key, value, due FROM kv ORDER BY key"):
            yield key.encode(), bytes(value), due
        for name, value in self._db.execute(
            "SELECT name, value FROM meta WHERE name != 'next_offset' ORDER BY name"
        ):
            yield f"{META_PREFIX}{name}".encode(), str(value).encode(), None

    def restore(
        self,
        entries: list[tuple[bytes, bytes | None, int | None]],
        next_offset: int | None,
        log_id: str | None,
        changelog: tuple[str | None, int],
        *,
        clear: bool = False,
    ) -> None:
        """Apply changelog entries (``changes``' form) up to a checkpoint of the input
        (``next_offset`` in log ``log_id``) and record the changelog position, in one
        transaction; with ``clear``, what the file held is dropped first."""
        latest: dict[str, tuple[bytes, int | None] | None] = {}  # in changelog order
        named: dict[str, int | None] = {}
        for key, value, due in entries:
            name = key.decode()
            if name.startswith(META_PREFIX):
                named[name[len(META_PREFIX) :]] = None if value is None else int(value)
            else:
                latest[name] = None if value is None else (value, due)
        if next_offset is not None:
            named["next_offset"] = next_offset
        with self._transaction() as db:
            if clear:
                for table in ("kv", "meta", "log"):  # not executescript: it commits first
                    db.execute(f"DELETE FROM {table}")
            self._write(
                db,
                [(k, v[0], v[1]) for k, v in latest.items() if v is not None],
                [k for k, v in latest.items() if v is None],
                named,
                log_id,
                changelog,
            )
        self._cache.clear()

    def next_offset(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'next_offset'").fetchone()
        return int(row[0]) if row else None

    def log_id(self) -> str | None:
        """The log (``streams.core.kafka.log_ids``) the stored offset is an offset in; None
        for a store from before logs were identified."""
        row = self._db.execute("SELECT id FROM log").fetchone()
        return row[0] if row else None

    def start_log(self, log_id: str, next_offset: int) -> None:
        """Record that the state now reads log ``log_id`` from ``next_offset``, in one
        transaction with what is pending (nothing, at assignment)."""
        self.commit(next_offset, log_id=log_id)

    def meta(self, name: str, default: int = 0) -> int:
        if name in self._dirty_meta:
            return self._dirty_meta[name]
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else default

    def set_meta(self, name: str, value: int) -> None:
        """Set a named integer (e.g. a watermark), written at the next commit."""
        self._dirty_meta[name] = value

    def commit(
        self,
        next_offset: int,
        meta: dict[str, int] | None = None,
        log_id: str | None = None,
        changelog: tuple[str | None, int] | None = None,
    ) -> None:
        """Write buffered changes and the next input offset (with ``log_id``, the log it
        is an offset in) in one transaction; with ``changelog``, the position of the
        changelog that now holds them too."""
        sealed = self._sealed
        rows = [
            (k, sealed.get(k) or orjson.dumps(v[0]), v[1])
            for k, v in self._dirty.items()
            if v is not None
        ]
        deleted = [k for k, v in self._dirty.items() if v is None]
        named: dict[str, int | None] = {
            "next_offset": next_offset,
            **self._dirty_meta,
            **(meta or {}),
        }
        with self._transaction() as db:
            self._write(db, rows, deleted, named, log_id, changelog)
        db = self._db
        if self._scrub:
            # The WAL still holds earlier versions of the pages the commit cleared.
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            self._scrub = False
        self._dirty.clear()
        self._dirty_meta.clear()
        self._sealed.clear()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _write(
        db: sqlite3.Connection,
        rows: list[tuple[str, bytes, int | None]],
        deleted: list[str],
        named: dict[str, int | None],
        log_id: str | None,
        changelog: tuple[str | None, int] | None,
    ) -> None:
        """Rows, deleted keys, named integers (None: deleted), the input's log and the
        changelog position, inside the caller's transaction."""
        if deleted:
            db.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in deleted])
        if rows:
            db.executemany(
                "INSERT INTO kv(key, value, due) VALUES (?, ?, ?) ON CONFLICT(key) "
                "DO UPDATE SET value = excluded.value, due = excluded.due",
                rows,
            )
        db.executemany(
            "DELETE FROM meta WHERE name = ?", [(k,) for k, v in named.items() if v is None]
        )
        db.executemany(
            "INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) "
            "DO UPDATE SET value = excluded.value",
            [(k, v) for k, v in named.items() if v is not None],
        )
        if log_id is not None:
            db.execute("DELETE FROM log")
            db.execute("INSERT INTO log VALUES (?)", (log_id,))
        if changelog is not None:
            db.execute("DELETE FROM changelog")
            db.execute("INSERT INTO changelog VALUES (?, ?)", changelog)

    def scrub_at_commit(self) -> None:
        """After the next commit, leave none of what it deleted in the files: the WAL,
        which keeps earlier page versions, is checkpointed and truncated (freed and
        overwritten content is zeroed by ``secure_delete``). For erasures."""
        self._scrub = True

    def rollback(self) -> None:
        """Forget uncommitted changes (the batch will be processed again)."""
        self._dirty.clear()
        self._dirty_meta.clear()
        self._sealed.clear()
        self._cache.clear()
        self._scrub = False

    def close(self) -> None:
        self._db.close()
