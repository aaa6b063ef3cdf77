"""State changelogs on the real broker: a store written through its changelog is rebuilt
on another machine's empty directory; an unfinished commit is never restored; a store
older than its changelog seeds it."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.core.catalog import default_catalog
from streams.core.kafka import consumer_config, log_ids, make_producer
from streams.core.settings import Settings
from streams.runtime.changelog import CHECKPOINT_KEY, Changelogs
from streams.runtime.state import PartitionStore

STAGE, INPUT = "journeys", "cust.touchpoints.stitched.v1"


@pytest.fixture
def changelogs(bus: str) -> Changelogs:
    settings = Settings()
    logs = Changelogs(
        STAGE, [INPUT], default_catalog(), settings, bus, make_producer(settings, bus)
    )
    logs.ensure_topics()
    return logs


def commit(logs: Changelogs, store: PartitionStore, tp: tuple[str, int], offset: int) -> None:
    """What the runner does at commit: changelog acknowledged, then the store."""
    positions: dict = {}
    store.seal()
    logs.produce(tp, store.changes(), offset, "input-log", positions)
    logs.flush()
    store.commit(offset, changelog=(current_log(logs), positions[tp]))


def current_log(logs: Changelogs) -> str | None:
    return log_ids(logs.settings, logs.bootstrap, [logs.topic(INPUT)], "test").get(
        logs.topic(INPUT)
    )


def contents(store: PartitionStore) -> dict:
    return {k.decode(): (v, due) for k, v, due in store.entries()}


def test_a_store_is_rebuilt_from_its_changelog_on_an_empty_directory(changelogs, tmp_path: Path):
    tp = (INPUT, 1)
    first = PartitionStore(tmp_path / "pod-a" / "s.sqlite")
    for batch in range(5):
        for i in range(100) if batch == 0 else range(batch, 100, 7):
            first.put(f"customer-{i}", {"touches": batch, "i": i}, due=1000 + i if i % 3 else None)
        first.delete(f"customer-{batch}")
        first.set_meta("watermark", 10 * batch)
        commit(changelogs, first, tp, offset=200 * (batch + 1))

    second = PartitionStore(tmp_path / "pod-b" / "s.sqlite")
    restored = changelogs.restore(tp, second, current_log(changelogs))

    assert contents(second) == contents(first)
    assert len(contents(second)) == 95 + 1  # five customers deleted; the watermark
    assert second.get("customer-11") == {"touches": 4, "i": 11}
    assert second.get("customer-9") == {"touches": 2, "i": 9}
    assert second.get("customer-3") is None
    assert second.meta("watermark") == 40
    due = ["customer-10", "customer-5", "customer-7", "customer-8"]  # 1-4 deleted; 6, 9 not due
    assert second.due_keys(1010) == first.due_keys(1010) == due
    assert (restored.next_offset, second.log_id()) == (1000, "input-log")
    assert restored.applied > 0 and restored.rewritten == 0

    # a second restore of the same store reads only what came after its position
    again = changelogs.restore(tp, second, current_log(changelogs))
    assert again.records == 0


def test_an_unfinished_commit_is_not_restored_and_is_overwritten(changelogs, tmp_path: Path):
    tp = (INPUT, 0)
    store = PartitionStore(tmp_path / "a.sqlite")
    store.put("kept", 1)
    commit(changelogs, store, tp, offset=10)
    # a batch whose changelog was partly written when its worker died: no checkpoint
    changelogs.producer.produce(changelogs.topic(INPUT), b"2", b"kept", partition=0)
    changelogs.producer.produce(changelogs.topic(INPUT), b"9", b"orphan", partition=0)
    changelogs.producer.flush(10)

    fresh = PartitionStore(tmp_path / "b.sqlite")
    restored = changelogs.restore(tp, fresh, current_log(changelogs))
    assert (fresh.get("kept"), fresh.get("orphan"), fresh.next_offset()) == (1, None, 10)
    assert restored.rewritten == 2

    # and a later restore, after the next owner's commits, still does not see them
    fresh.put("new", 3)
    commit(changelogs, fresh, tp, offset=20)
    third = PartitionStore(tmp_path / "c.sqlite")
    changelogs.restore(tp, third, current_log(changelogs))
    assert contents(third) == contents(fresh)
    assert (third.get("kept"), third.get("orphan"), third.get("new")) == (1, None, 3)


def test_a_store_its_changelog_lacks_is_written_to_it_whole(changelogs, tmp_path: Path):
    tp = (INPUT, 1)
    old = PartitionStore(tmp_path / "old.sqlite")  # state from before changelogs
    old.put("customer-1", {"n": 1})
    old.set_meta("watermark", 5)
    old.commit(77)
    restored = changelogs.restore(tp, old, current_log(changelogs))
    assert restored.rewritten == 2 and old.get("customer-1") == {"n": 1}

    elsewhere = PartitionStore(tmp_path / "new.sqlite")
    changelogs.restore(tp, elsewhere, current_log(changelogs))
    assert contents(elsewhere) == contents(old)
    assert elsewhere.next_offset() == 77


def test_every_commit_ends_with_a_checkpoint(changelogs, tmp_path: Path):
    tp = (INPUT, 0)
    store = PartitionStore(tmp_path / "s.sqlite")
    store.put("a", 1)
    commit(changelogs, store, tp, offset=3)
    consumer = Consumer(consumer_config("test-read", changelogs.settings, changelogs.bootstrap))
    consumer.assign([TopicPartition(changelogs.topic(INPUT), 0, 0)])
    keys = [m.key() for m in consumer.consume(10, timeout=5) if m.error() is None]
    consumer.close()
    assert keys == [b"a", CHECKPOINT_KEY]
