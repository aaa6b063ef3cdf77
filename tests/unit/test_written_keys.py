"""The sink's filter of keys written, on a real DuckDB table."""

import duckdb
import pyarrow as pa

from connectors.sinks.duckdb.written import WrittenKeys, key_values


def table(*columns: list) -> pa.Table:
    return pa.table({f"c{i}": c for i, c in enumerate(columns)})


def keys_of(*columns: list) -> list:
    """The filter's key values of rows with these columns (as the sink passes them)."""
    return key_values(table(*columns))


def test_a_key_in_the_table_is_always_reported_and_most_new_ones_are_not():
    db = duckdb.connect()
    db.execute("CREATE TABLE t AS SELECT 'k-' || i AS id FROM range(50000) r(i)")
    keys = WrittenKeys(min_capacity=10_000)
    keys.load(db, "t", ["id"])
    held = [f"k-{i}" for i in range(50000)]
    assert all(keys.may_hold_any("t", keys_of([k])) for k in held[::97])
    assert keys.may_hold_any("t", keys_of([f"new-{i}" for i in range(10)] + ["k-49999"]))
    fresh = [keys.may_hold_any("t", keys_of([f"new-{i}"])) for i in range(20000)]
    assert sum(fresh) < 20000 * 0.03  # about 1% false positives, never a false negative


def test_keys_added_are_held_and_a_full_filter_is_rebuilt_larger():
    db = duckdb.connect()
    db.execute("CREATE TABLE t (a VARCHAR, b INTEGER)")
    keys = WrittenKeys(min_capacity=100)
    keys.load(db, "t", ["a", "b"])
    assert not keys.may_hold_any("t", keys_of(["x"], [1]))
    for start in range(0, 1000, 100):
        rows = table([f"x{i}" for i in range(start, start + 100)], list(range(start, start + 100)))
        db.execute("INSERT INTO t SELECT * FROM rows").fetchall()
        keys.add(db, "t", ["a", "b"], key_values(rows))
    assert keys._capacity["t"] >= 1000  # rebuilt from the table, twice its rows
    assert all(keys.may_hold_any("t", keys_of([f"x{i}"], [i])) for i in range(1000))


def test_a_table_never_loaded_is_assumed_to_hold_everything():
    assert WrittenKeys().may_hold_any("unknown", keys_of(["a"]))
