"""Partition store: state and offset commit together, survive reopening, timers by prefix."""

from streams.state import PartitionStore


def test_uncommitted_changes_are_lost_on_reopen_committed_ones_kept(tmp_path):
    path = tmp_path / "p.sqlite"
    store = PartitionStore(path)
    store.put("a", {"n": 1})
    store.commit(next_offset=10)
    store.put("b", {"n": 2})  # never committed: as if the process died here
    store.close()
    again = PartitionStore(path)
    assert again.get("a") == {"n": 1}
    assert again.get("b") is None
    assert again.next_offset() == 10


def test_rollback_forgets_the_batch(tmp_path):
    store = PartitionStore(tmp_path / "p.sqlite")
    store.put("a", 1)
    store.commit(1)
    store.put("a", 2)
    store.rollback()
    assert store.get("a") == 1


def test_delete_and_meta_are_part_of_the_commit(tmp_path):
    path = tmp_path / "p.sqlite"
    store = PartitionStore(path)
    store.put("a", 1)
    store.commit(1)
    store.delete("a")
    store.set_meta("watermark", 99)
    assert store.get("a") is None and store.meta("watermark") == 99
    store.commit(2)
    store.close()
    again = PartitionStore(path)
    assert again.get("a") is None and again.meta("watermark") == 99


def test_due_keys_select_by_prefix_and_see_pending_writes(tmp_path):
    store = PartitionStore(tmp_path / "p.sqlite")
    store.put("c:x", {}, due=100)
    store.put("h:x", 1, due=5)
    store.commit(1)
    store.put("c:y", {}, due=50)
    store.put("c:x", {}, due=None)  # pending: no longer due
    assert store.due_keys(200, "c:") == ["c:y"]
    assert store.due_keys(200, "h:") == ["h:x"]
    assert store.due_keys(4, "h:") == []


def test_due_keys_with_a_limit_are_the_first_in_key_order_pending_writes_included(tmp_path):
    store = PartitionStore(tmp_path / "p.sqlite")
    for i in range(50):
        store.put(f"c:{i:03d}", {}, due=10)
    store.commit(1)
    store.put("c:000", {}, due=None)  # pending: no longer due
    store.put("c:001", {}, due=None)
    store.put("c:0005", {}, due=1)  # pending: newly due, sorts among the first
    expected = store.due_keys(100, "c:")[:5]
    assert expected == ["c:0005", "c:002", "c:003", "c:004", "c:005"]
    assert store.due_keys(100, "c:", limit=5) == expected
    store.commit(2)
    assert store.due_keys(100, "c:", limit=5) == expected
    assert store.due_keys(100, "c:", limit=100) == store.due_keys(100, "c:")
