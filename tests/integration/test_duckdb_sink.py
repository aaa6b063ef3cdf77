"""The DuckDB sink against the real broker and real DuckDB files."""

import hashlib
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from connectors.sinks.duckdb.sink import SINK_OFFSETS, DuckDBSink, DuckDBSinkSettings
from streams.core.errors import FatalError
from streams.core.settings import Settings
from tests.sinkhelpers import TOUCHPOINTS, SinkThread, example, produce, touchpoints


def columns(db, table):
    return {
        name: (dtype, comment)
        for name, dtype, comment in db.execute(
            "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE table_name = ?",
            [table],
        ).fetchall()
    }


def test_tables_are_created_from_the_avro_schemas_with_docs(tmp_path):
    sink = DuckDBSink(
        Settings(),
        conf=DuckDBSinkSettings(database=tmp_path / "a.duckdb", snapshot=tmp_path / "b.duckdb"),
    )
    sink.setup()
    cols = columns(sink.db, "touchpoints")
    assert cols["event_time"][0] == "TIMESTAMP"
    assert cols["revenue"][0] == "DOUBLE" and cols["quantity"][0] == "INTEGER"
    assert cols["campaign"][0].startswith("STRUCT(")
    assert cols["attributes"][0] == "MAP(VARCHAR, VARCHAR)"
    assert "Stitched customer key" in cols["customer_key"][1]
    assert columns(sink.db, "journeys")["touchpoints"][0].endswith("[]")
    sink.close()


def test_snapshots_space_out_when_copying_takes_more_than_its_share(tmp_path):
    sink = DuckDBSink(
        Settings(),
        conf=DuckDBSinkSettings(
            database=tmp_path / "a.duckdb",
            snapshot=tmp_path / "b.duckdb",
            snapshot_interval_s=0.5,
            snapshot_max_share=0.2,
        ),
    )
    sink.setup()  # publishes the first snapshot of the real file, and times it
    try:
        assert 0 < sink._copy_s < 0.1  # an empty database copies quickly
        assert sink.snapshot_wait_s() == 0.5
        last = (tmp_path / "b.duckdb").stat().st_mtime_ns
        sink._copy_s = 0.4  # as if the file had grown: 0.4 s is 80% of 0.5 s
        assert sink.snapshot_wait_s() == pytest.approx(2.0)
        sink._last_snapshot = time.monotonic() - 1.0  # the interval passed, not the wait
        sink.publish_snapshot()
        assert (tmp_path / "b.duckdb").stat().st_mtime_ns == last
        sink._last_snapshot = time.monotonic() - 2.1
        sink.publish_snapshot()
        sink._copy.join()
        assert (tmp_path / "b.duckdb").stat().st_mtime_ns > last
    finally:
        sink.close()


def test_an_added_optional_field_becomes_a_column_without_data_loss(tmp_path, bus):
    with SinkThread(tmp_path, bus) as run:
        produce(bus, TOUCHPOINTS, touchpoints(50), key="customer_key")
        assert run.wait_rows(lambda n: n >= 50)
    db = duckdb.connect(str(tmp_path / "sink.duckdb"))
    db.execute("ALTER TABLE touchpoints DROP COLUMN sentiment")  # a database from before it
    db.close()
    sink = DuckDBSink(
        Settings(),
        conf=DuckDBSinkSettings(database=tmp_path / "sink.duckdb", snapshot=tmp_path / "r.duckdb"),
    )
    sink.setup()
    assert "sentiment" in columns(sink.db, "touchpoints")
    assert sink.db.execute("SELECT count(*), count(sentiment) FROM touchpoints").fetchone() == (
        50,
        0,
    )
    sink.close()


def test_the_sinks_bookkeeping_is_out_of_show_tables_and_old_offsets_move(tmp_path):
    """Offsets live in the ``journeybus_internal`` schema; a database from before, with them in
    ``main._sink_offsets`` (no ``log_id`` in the oldest), keeps them on upgrade."""
    # named as the default database is: DuckDB calls the database "journeybus"
    conf = DuckDBSinkSettings(
        database=tmp_path / "journeybus.duckdb", snapshot=tmp_path / "journeybus-read.duckdb"
    )
    with duckdb.connect(str(conf.database)) as db:
        db.execute(
            "CREATE TABLE _sink_offsets (topic VARCHAR, partition INTEGER, next_offset BIGINT, "
            "committed_at TIMESTAMP, PRIMARY KEY (topic, partition))"
        )
        db.execute("INSERT INTO _sink_offsets VALUES (?, 3, 1234, now())", [TOUCHPOINTS])
    sink = DuckDBSink(Settings(), conf=conf)
    sink.setup()
    sink.close()
    with duckdb.connect(str(conf.database), read_only=True) as db:
        shown = [name for (name,) in db.execute("SHOW TABLES").fetchall()]
        moved = db.execute(
            "SELECT topic, partition, next_offset, log_id FROM journeybus_internal.sink_offsets"
        ).fetchall()
    assert "touchpoints" in shown and not [n for n in shown if n.startswith("_")], shown
    assert moved == [(TOUCHPOINTS, 3, 1234, None)]


def test_an_incompatible_column_change_refuses_to_start(tmp_path):
    conf = DuckDBSinkSettings(database=tmp_path / "a.duckdb", snapshot=tmp_path / "b.duckdb")
    DuckDBSink(Settings(), conf=conf).setup()
    db = duckdb.connect(str(conf.database))
    db.execute("ALTER TABLE touchpoints ALTER revenue TYPE VARCHAR")
    db.close()
    with pytest.raises(FatalError, match="column revenue is VARCHAR"):
        DuckDBSink(Settings(), conf=conf).setup()


@pytest.mark.parametrize(
    "direct,pseudonymous", [("hash", "keep"), ("drop", "hash"), ("keep", "drop")]
)
def test_pii_policy_hashes_drops_or_keeps_tagged_columns(tmp_path, bus, direct, pseudonymous):
    dead = example("cust.clickstream.raw.v1.dlq")
    tp = touchpoints(1)[0]
    with SinkThread(
        tmp_path, bus, pii_direct=direct, pii_pseudonymous=pseudonymous, pii_salt="pepper"
    ) as run:
        produce(bus, "cust.clickstream.raw.v1.dlq", [dead])
        produce(bus, TOUCHPOINTS, [tp])
        assert run.wait_rows(lambda n: n >= 2)
    db = duckdb.connect(str(tmp_path / "sink.duckdb"), read_only=True)
    (original,) = db.execute("SELECT original FROM dead_letters").fetchone()
    anon, tid = db.execute("SELECT anonymous_id, touchpoint_id FROM touchpoints").fetchone()
    expected_original = {
        "keep": dead["original"],
        "drop": None,
        "hash": hashlib.sha256(b"pepper" + dead["original"]).digest(),
    }[direct]
    expected_anon = {
        "keep": tp["anonymous_id"],
        "drop": None,
        "hash": hashlib.sha256(b"pepper" + tp["anonymous_id"].encode()).hexdigest(),
    }[pseudonymous]
    assert original == expected_original
    assert anon == expected_anon
    assert tid == tp["touchpoint_id"]  # keys are never hashed or dropped


def test_duplicates_are_one_row_and_the_latest_profile_version_wins(tmp_path, bus):
    profile = example("cust.profiles.v1", 1)  # the one with channel responsiveness
    versions = [
        {**profile, "version": v, "updated_at": profile["updated_at"] + v} for v in (3, 2, 5, 4)
    ]
    tps = touchpoints(20)
    with SinkThread(tmp_path, bus) as run:
        produce(bus, TOUCHPOINTS, tps + tps[:10], key="customer_key")
        produce(bus, "cust.profiles.v1", versions[:2], key="customer_key")
        assert run.wait_consumed("cust.profiles.v1", 2)
        produce(bus, "cust.profiles.v1", versions[2:], key="customer_key")
        assert run.wait_consumed("cust.profiles.v1", 4)
        assert run.wait_consumed(TOUCHPOINTS, 30)
    db = duckdb.connect(str(tmp_path / "sink.duckdb"), read_only=True)
    assert db.execute(
        "SELECT count(*), count(DISTINCT touchpoint_id) FROM touchpoints"
    ).fetchone() == (20, 20)
    assert db.execute("SELECT version FROM customer_profiles").fetchall() == [(5,)]
    assert {
        r[0] for r in db.execute("SELECT profile_version FROM channel_responsiveness").fetchall()
    } == {5}


def test_restart_resumes_from_stored_offsets_not_the_group(tmp_path, bus):
    with SinkThread(tmp_path, bus, group_id="first") as run:
        produce(bus, TOUCHPOINTS, touchpoints(300), key="customer_key")
        assert run.wait_rows(lambda n: n >= 300)
    produce(bus, TOUCHPOINTS, touchpoints(200, start=300), key="customer_key")
    with SinkThread(tmp_path, bus, group_id="a-new-group") as run:
        assert run.wait_rows(lambda n: n >= 200)
        written = run.sink.rows_written
    assert written == 200  # a new group alone would have re-read all 500
    db = duckdb.connect(str(tmp_path / "sink.duckdb"), read_only=True)
    assert db.execute("SELECT count(*) FROM touchpoints").fetchone() == (500,)
    assert db.execute(
        f"SELECT sum(next_offset) FROM {SINK_OFFSETS} WHERE topic = ?", [TOUCHPOINTS]
    ).fetchone() == (500,)


def test_records_sent_again_after_a_restart_replace_their_rows(tmp_path, bus):
    first = touchpoints(300)
    with SinkThread(tmp_path, bus, group_id="first") as run:
        produce(bus, TOUCHPOINTS, first, key="customer_key")
        assert run.wait_rows(lambda n: n >= 300)
    # an upstream stage replays 100 records it had sent (same ids), then sends 50 new
    resent = [{**tp, "channel": "Replayed"} for tp in first[:100]]
    produce(bus, TOUCHPOINTS, resent + touchpoints(50, start=300), key="customer_key")
    with SinkThread(tmp_path, bus, group_id="first") as run:
        assert run.wait_rows(lambda n: n >= 150)
        # the restarted sink learnt the 300 keys from the table, not from memory
        assert run.sink.written.may_hold_any("touchpoints", ["tp-00000007"])
    db = duckdb.connect(str(tmp_path / "sink.duckdb"), read_only=True)
    assert db.execute(
        "SELECT count(*), count(DISTINCT touchpoint_id), count(*) FILTER (channel = 'Replayed') "
        "FROM touchpoints"
    ).fetchone() == (350, 350, 100)


def test_a_key_filter_rebuilt_mid_batch_still_knows_that_batchs_keys(tmp_path, bus):
    from connectors.sinks.duckdb.written import WrittenKeys

    tps = touchpoints(30)
    sink = SinkThread(tmp_path, bus)
    sink.sink.written = WrittenKeys(min_capacity=10)  # full at the first batch: rebuilt
    with sink as run:
        produce(bus, TOUCHPOINTS, tps + tps[:5], key="customer_key")  # a replay inside
        assert run.wait_consumed(TOUCHPOINTS, 35)
        produce(bus, TOUCHPOINTS, [{**tp, "channel": "Replayed"} for tp in tps], key="customer_key")
        assert run.wait_consumed(TOUCHPOINTS, 65)
    db = duckdb.connect(str(tmp_path / "sink.duckdb"), read_only=True)
    assert db.execute(
        "SELECT count(*), count(DISTINCT touchpoint_id), count(*) FILTER (channel = 'Replayed') "
        "FROM touchpoints"
    ).fetchone() == (30, 30, 30)


READER = textwrap.dedent("""
    import sys, time, duckdb
    views = ["channel_performance", "conversion_paths", "path_transitions",
             "new_customer_cohorts", "channel_suppression", "pipeline_health", "touchpoints"]
    reads = errors = 0
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        try:
            with duckdb.connect(sys.argv[1], read_only=True) as db:
                for view in views:
                    db.execute(f"SELECT count(*) FROM {view}").fetchall()
                    reads += 1
        except Exception as exc:
            errors += 1
            print("error:", exc, file=sys.stderr)
    print(reads, errors)
""")


def test_another_process_reads_every_view_while_the_sink_writes(tmp_path, bus):
    with SinkThread(tmp_path, bus) as run:
        produce(bus, TOUCHPOINTS, touchpoints(100), key="customer_key")
        assert run.wait_rows(lambda n: n >= 100)
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(tmp_path / "read.duckdb"), "6"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in range(10):
            produce(bus, TOUCHPOINTS, touchpoints(2000, prefix=f"b{batch}"), key="customer_key")
        out, err = reader.communicate(timeout=60)
        assert run.wait_rows(lambda n: n >= 20_100)
    reads, errors = map(int, out.split())
    assert errors == 0, err
    assert reads > 50
