"""Right to be forgotten, end to end: ``journeybus forget`` through every stage into DuckDB.

A population goes through the whole pipeline. Two converted customers are then
forgotten: A also opts out, B does not. Afterwards no table names A or B (key,
anonymous ids, device and user ids, email hash), the stages hold no state of
theirs, A's new events are suppressed while B's start a new history, and a
sink that rebuilds its database from the topics keeps them out too.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from connectors.generator.population import contact_email
from connectors.sinks.duckdb.sink import DuckDBSink, DuckDBSinkSettings
from streams.app.forget import forget
from streams.core import metrics
from streams.core.codec import make_codec
from streams.core.keys import hash_contact
from tests.pipeline import Pipeline, population

CUSTOMERS = 150


def tables(db: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
            "AND NOT starts_with(table_name, '_')"
        ).fetchall()
    ]


def rows_naming(database, needles: set[str]) -> dict[str, int]:
    """Rows of every table whose text (all columns, nested ones included) holds a needle."""
    with duckdb.connect(str(database), read_only=True) as db:
        found = {}
        for table in tables(db):
            test = " OR ".join("contains(r, ?)" for _ in needles)
            (count,) = db.execute(
                f'SELECT count(*) FROM (SELECT CAST(t AS VARCHAR) AS r FROM "{table}" AS t) '
                f"WHERE {test}",
                sorted(needles),
            ).fetchone()
            if count:
                found[table] = count
        return found


def files_naming(root: Path, needles: set[str]) -> dict[str, list[str]]:
    """Files under ``root`` whose bytes hold a needle (as ``grep -a`` would find it)."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a snapshot replaced while listing
            continue
        hits = sorted(n for n in needles if n.encode() in data)
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def email_hash_of(key: str) -> str:
    """The email hash of the generator's customer ``cust-<seed>-<n>``."""
    _, seed, n = key.split("-")
    return hash_contact(contact_email(int(seed), int(n)))


def needles_of(pipe: Pipeline, key: str) -> set[str]:
    """What names the customer anywhere: key, ids on their touchpoints, email hash."""
    ids = pipe.query(
        "SELECT DISTINCT unnest([anonymous_id, device_id, user_id]) FROM touchpoints "
        f"WHERE customer_key = '{key}'"
    )
    email_hash = email_hash_of(key)
    return {key, email_hash, f"email:{email_hash}"} | {v for (v,) in ids if v}


def new_event(template, event_id: str, user_id: str, anonymous_id: str):
    """A page view received now, from an existing web event's shape."""
    event = copy.deepcopy(template)
    now = int(time.time() * 1000)
    event.key = anonymous_id
    event.record.update(
        event_id=event_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        event_type="page",
        event_name=None,
        event_time=now - 1000,
        sent_at=now - 900,
        received_at=now,
    )
    return event


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    gen, events = population(customers=CUSTOMERS, seed=23)
    root = tmp_path_factory.mktemp("erasure")
    pipe = Pipeline(root)
    pipe.sink_settings.erasure_rewrite_interval_s = 1.0  # the test's two requests: seconds apart
    pipe.start()
    pipe.publish(events)
    truth = gen.truth
    converted = sorted({c.customer_id for c in truth.conversions})

    def scored() -> bool:
        try:
            (journeys,), (scores,) = pipe.query(
                "SELECT count(*) FROM journeys WHERE converted UNION ALL "
                "SELECT count(DISTINCT customer_key) FROM customer_scores"
            )
        except duckdb.Error:
            return False
        return journeys == len(truth.conversions) and scores >= len(converted) // 2

    assert pipe.wait_for(scored, timeout_s=180, stable_s=2), "the pipeline did not settle"
    # two customers with a score, a profile and the most touchpoints
    a, b = [
        k
        for (k,) in pipe.query(
            "SELECT customer_key FROM touchpoints WHERE customer_key IN "
            "(SELECT customer_key FROM customer_scores) GROUP BY ALL "
            "ORDER BY count(DISTINCT anonymous_id) DESC, count(*) DESC, customer_key LIMIT 2"
        )
    ]
    web = next(e for e in events if e.topic == "cust.clickstream.raw.v1" and not e.invalid)
    yield pipe, a, b, web
    pipe.close()


def test_forget_leaves_no_row_naming_the_customers(run):
    pipe, a, b, web = run
    needles = {a: needles_of(pipe, a), b: needles_of(pipe, b)}
    for key in (a, b):
        before = rows_naming(pipe.sink_settings.snapshot, needles[key])
        for table in ("touchpoints", "journeys", "attribution_credits", "customer_scores"):
            assert before.get(table), f"{key} has no {table} rows to forget: {before}"
        assert before.get("customer_profiles"), before
    # the bytes of the state stores and databases name them, before
    held = files_naming(pipe.root, needles[a] | needles[b])
    assert any(path.endswith(".sqlite") or ".sqlite-" in path for path in held), held
    assert any(".duckdb" in path for path in held), held

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": pipe.bootstrap}
    out = subprocess.run(
        [sys.executable, "-m", "streams.app.cli", "forget", a, "--opt-out", "--reason", "DSR-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "published erasure request" in out.stdout and "suppressed" in out.stdout
    settings = pipe.settings
    request_b = forget(settings, pipe.bootstrap, make_codec(settings), b, reason="DSR-2")
    assert {i["kind"] for i in request_b["identifiers"]} >= {"user_id", "anonymous_id"}

    def erased() -> bool:
        try:
            (logged,) = pipe.query("SELECT count(*) FROM erasures")[0]
        except duckdb.Error:
            return False
        return logged == 2 and not any(
            rows_naming(pipe.sink_settings.snapshot, needles[k]) for k in (a, b)
        )

    assert pipe.wait_for(erased, timeout_s=60, stable_s=3), {
        k: rows_naming(pipe.sink_settings.snapshot, needles[k]) for k in (a, b)
    }
    log = pipe.query("SELECT reason, opt_out, rows_deleted, rows_by_table FROM erasures ORDER BY 1")
    assert [(r[0], r[1]) for r in log] == [("DSR-1", True), ("DSR-2", False)]
    assert all(r[2] > 0 and "touchpoints" in r[3] and "journeys" in r[3] for r in log)

    # -- the stages hold nothing of theirs any more
    runners = {r.stage.name: r for r in pipe.runners}

    def stage_state_gone() -> bool:
        keys = needles[a] | needles[b]
        stored = [
            k
            for name in ("journeys", "profiles", "scoring")
            for store in runners[name].stores.values()
            for (k,) in store._db.execute("SELECT key FROM kv").fetchall()
            if k.split(":", 1)[-1] in keys
        ]
        graph = runners["normalise"].stage.graph
        linked = [n for n in keys for kind in ("user_id", "anonymous_id") if f"{kind}:{n}" in graph]
        history = runners["scoring"].stage.history.purchases
        return not stored and not linked and not any(k in history for k in keys)

    assert pipe.wait_for(stage_state_gone, timeout_s=30)

    # -- and no file under the runtime directory or beside the tables holds their bytes:
    # not a free page or WAL of a state store, not a deleted row in a DuckDB block
    left: dict[str, list[str]] = {}

    def no_bytes_left() -> bool:
        left.clear()
        left.update(files_naming(pipe.root, needles[a] | needles[b]))
        return not left

    assert pipe.wait_for(no_bytes_left, timeout_s=60, stable_s=2), left

    # -- later events: A opted out (suppressed), B starts again, C is a control
    suppressed = metrics.EVENTS_SUPPRESSED.labels("normalise", "erased")._value.get()
    anon_a = sorted(n for n in needles[a] if n.startswith("anon-"))[0]
    later = [
        new_event(web, "erasure-test-a", a, anon_a),
        new_event(web, "erasure-test-b", b, "anon-b-returns"),
        new_event(web, "erasure-test-c", "cust-new-c", "anon-c"),
    ]
    pipe.publish(later)

    def arrived() -> bool:
        got = {
            r[0]
            for r in pipe.query(
                "SELECT source_event_id FROM touchpoints "
                "WHERE source_event_id LIKE 'erasure-test-%'"
            )
        }
        return {"erasure-test-b", "erasure-test-c"} <= got

    assert pipe.wait_for(arrived, timeout_s=60, stable_s=2)
    assert not rows_naming(pipe.sink_settings.snapshot, needles[a])
    assert metrics.EVENTS_SUPPRESSED.labels("normalise", "erased")._value.get() > suppressed
    rows_b = pipe.query(f"SELECT source_event_id FROM touchpoints WHERE customer_key = '{b}'")
    assert rows_b == [("erasure-test-b",)]  # a new history: nothing from before


def test_a_sink_rebuilt_from_the_topics_keeps_forgotten_customers_out(run, tmp_path):
    pipe, a, b, _ = run
    needles_a = {
        a,
        f"email:{email_hash_of(a)}",
    }
    conf = DuckDBSinkSettings(
        database=tmp_path / "rebuilt.duckdb",
        snapshot=tmp_path / "rebuilt-read.duckdb",
        group_id="journeybus-rebuild-test",
        batch_max_ms=100,
    )
    sink = DuckDBSink(pipe.settings, pipe.bootstrap, conf)
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    counts = (
        "SELECT (SELECT count(*) FROM touchpoints), (SELECT count(*) FROM journeys), "
        "(SELECT count(*) FROM attribution_credits), (SELECT count(*) FROM customer_scores), "
        "(SELECT count(*) FROM customer_profiles), (SELECT count(*) FROM erasures)"
    )

    rebuilt: list[tuple] = []

    def caught_up() -> bool:
        try:
            with duckdb.connect(str(conf.snapshot), read_only=True) as db:
                rebuilt[:] = [db.execute(counts).fetchone()]
        except duckdb.Error:
            return False
        return rebuilt == pipe.query(counts)

    try:
        assert pipe.wait_for(caught_up, timeout_s=120, stable_s=3), (rebuilt, pipe.query(counts))
    finally:
        stop.set()
        thread.join(30)
    assert not rows_naming(conf.snapshot, needles_a)
    with duckdb.connect(str(conf.snapshot), read_only=True) as db:
        rows_b = db.execute(
            f"SELECT source_event_id FROM touchpoints WHERE customer_key = '{b}'"
        ).fetchall()
        journeys_b = db.execute(f"SELECT count(*) FROM journeys WHERE customer_key = '{b}'")
        assert journeys_b.fetchone() == (0,)
    assert rows_b == [("erasure-test-b",)]
