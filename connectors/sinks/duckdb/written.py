"""Which keys a sink table may already hold: new rows skip the delete that replaces old ones.

The sink replaces a record's rows by deleting its key, then inserting, in the
batch's transaction. Without an index (DuckDB's PRIMARY KEY made loads several
times slower) that DELETE scans the whole key column, so a batch cost more as
the table grew: 13 ms per table and batch at 400k rows, whatever the batch's
size. Most keys of a batch are new. A Bloom filter (rbloom) of every key
written says so without a scan, and is never wrong about it: a key it has not
seen is in no row. Only a batch with a key it may have seen (a replay, a
restated credit, a profile's next version, 1% of new keys by chance) pays the
delete.

Built from the tables at start and fed after every write, inside the batch's
transaction (a rolled-back write leaves keys in it: a false positive only costs
a delete). Erased rows' keys stay in it too. When more keys were added than it
was sized for, it is rebuilt from the table, twice as large.
"""

from __future__ import annotations

import pyarrow as pa
from rbloom import Bloom

from connectors.sinks.duckdb.ddl import quote_ident

FALSE_POSITIVE_RATE = 0.01
MIN_CAPACITY = 1_000_000  # keys; 1.2 MB per table at 1%


def key_values(keys: pa.Table) -> list:
    """One hashable value per row of ``keys`` (one column: its values; several: tuples)."""
    columns = [c.to_pylist() for c in keys.columns]
    return columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))


class WrittenKeys:
    """Per table, a Bloom filter of the keys its rows have had (see module docstring)."""

    def __init__(self, min_capacity: int = MIN_CAPACITY) -> None:
        self.min_capacity = min_capacity
        self._filters: dict[str, Bloom] = {}
        self._capacity: dict[str, int] = {}
        self._added: dict[str, int] = {}

    def load(self, db, table: str, key: list[str]) -> None:
        """(Re)build ``table``'s filter from every key in it, sized for twice its rows."""
        select = f"SELECT {', '.join(quote_ident(k) for k in key)} FROM {quote_ident(table)}"
        rows = db.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchall()[0][0]
        capacity = max(self.min_capacity, 2 * rows)
        bloom = Bloom(capacity, FALSE_POSITIVE_RATE)
        reader = db.sql(select).to_arrow_reader(100_000)
        for batch in reader:
            bloom.update(key_values(pa.Table.from_batches([batch])))
        self._filters[table], self._capacity[table], self._added[table] = bloom, capacity, rows

    def may_hold_any(self, table: str, keys: list) -> bool:
        """False only if no row of ``table`` has any of ``keys`` (``key_values``)."""
        bloom = self._filters.get(table)
        if bloom is None:
            return True  # not loaded: assume the worst
        return any(k in bloom for k in keys)

    def add(self, db, table: str, key: list[str], keys: list) -> None:
        """Remember ``keys`` (``key_values``) as written to ``table``; rebuild from ``db``
        (which must already hold them) once the filter holds more keys than it was
        sized for."""
        bloom = self._filters.get(table)
        if bloom is None:
            return
        bloom.update(keys)
        self._added[table] += len(keys)
        if self._added[table] > self._capacity[table]:
            self.load(db, table, key)
