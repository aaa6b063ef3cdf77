"""Dead-letter records and the rate limit that halts a misconfigured stage."""

import pytest

from streams.core.errors import InvalidRecord
from streams.runtime.deadletter import (
    DeadLetterPolicy,
    DeadLetterRateExceeded,
    dead_letter_record,
    dead_letter_topic,
)


def test_policy_tolerates_half_invalid_and_halts_above():
    policy = DeadLetterPolicy("t", window=100, max_ratio=0.5)
    for i in range(1000):
        policy.record(i % 2 == 0)  # exactly 50% invalid: allowed
    with pytest.raises(DeadLetterRateExceeded, match="invalid"):
        for _ in range(100):
            policy.record(False)


def test_policy_needs_a_full_window_before_judging():
    policy = DeadLetterPolicy("t", window=100, max_ratio=0.5)
    for _ in range(99):
        policy.record(False)  # 99 bad in a row, but not yet a window


def letter(original: bytes, partition: int, offset: int, event_id: str | None = None) -> dict:
    return dead_letter_record(
        stage="s",
        source_topic="t",
        error=InvalidRecord("missing_id", "x"),
        original=original,
        original_format="avro",
        partition=partition,
        offset=offset,
        event_id=event_id,
    )


def test_ids_follow_the_event_id_else_the_position():
    a = letter(b"1", 0, 5, event_id="e1")
    b = letter(b"2", 3, 9, event_id="e1")
    c = letter(b"1", 0, 5)
    d = letter(b"1", 0, 6)
    assert a["dead_letter_id"] == b["dead_letter_id"]
    assert len({a["dead_letter_id"], c["dead_letter_id"], d["dead_letter_id"]}) == 3
    assert a["error_type"] == "missing_id" and a["original"] == b"1"


def test_dead_letter_topic_of_a_dead_letter_topic_is_itself():
    assert dead_letter_topic("cust.x.v1") == "cust.x.v1.dlq"
    assert dead_letter_topic("cust.x.v1.dlq") == "cust.x.v1.dlq"


def test_many_outcomes_at_once_count_as_one_at_a_time():
    one, many = DeadLetterPolicy("a", window=10), DeadLetterPolicy("b", window=10)
    for processed, failed in [(25, 0), (3, 2), (0, 3), (7, 0)]:
        for ok in [True] * processed + [False] * failed:
            one.record(ok)
        many.record_many(processed, failed)
        assert list(many._outcomes) == list(one._outcomes)
        assert many._failures == one._failures
    with pytest.raises(DeadLetterRateExceeded):
        many.record_many(0, 10)
