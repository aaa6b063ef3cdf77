"""Partition store: state and offset commit together, survive reopening, timers by prefix."""

import pytest

from streams.runtime.state import PartitionStore, StateRejected


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


def store_bytes(path) -> bytes:
    """The store's file and its WAL, as bytes."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


@pytest.mark.parametrize("scrub", [True, False])
def test_an_erasure_commit_leaves_no_bytes_of_what_it_deleted(tmp_path, scrub):
    path = tmp_path / "p.sqlite"
    store = PartitionStore(path)
    for i in range(200):  # the forgotten customer among others, over several pages
        store.put(f"c:cust-{i}", {"email_hash": f"hash-of-customer-{i:04d}", "pad": "x" * 300})
    store.commit(1)
    assert b"hash-of-customer-0077" in store_bytes(path)
    store.delete("c:cust-77")
    if scrub:
        store.scrub_at_commit()
    store.commit(2)
    # without the scrub the WAL keeps the page as it was before the delete
    assert (b"hash-of-customer-0077" in store_bytes(path)) is not scrub
    assert store.get("c:cust-78")["email_hash"] == "hash-of-customer-0078"


def test_values_a_store_cannot_keep_are_refused_at_seal_not_at_commit(tmp_path):
    store = PartitionStore(tmp_path / "p.sqlite")
    store.put("ok", {"a": 1})
    store.put("bad", {1: "an int key"})
    with pytest.raises(StateRejected, match="'bad'"):
        store.seal()
    store.put("bad", {"fixed": True})  # a new put replaces what was refused
    store.put("late", 1, due=2**64)
    with pytest.raises(StateRejected, match="64 bits"):
        store.seal()
    store.delete("late")
    store.seal()
    store.commit(1)
    assert store.get("bad") == {"fixed": True}
