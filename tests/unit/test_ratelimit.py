"""Per-key token buckets."""

import math

from connectors.sources.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_the_sustained_rate():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=20, clock=clock)
    assert buckets.take(b"k", 20) == 0.0
    assert buckets.take(b"k", 1) == 0.1  # empty: one token comes in 0.1 s
    clock.now += 0.5
    assert buckets.take(b"k", 5) == 0.0
    assert buckets.take(b"k", 1) > 0


def test_keys_have_their_own_buckets():
    buckets = TokenBuckets(rate=1, burst=2, clock=Clock())
    assert buckets.take(b"a", 2) == 0.0
    assert buckets.take(b"a", 1) > 0
    assert buckets.take(b"b", 2) == 0.0


def test_a_refused_request_spends_nothing():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=10, clock=clock)
    assert buckets.take(b"k", 8) == 0.0
    assert buckets.take(b"k", 5) > 0
    assert buckets.take(b"k", 2) == 0.0  # the 2 left are still there


def test_more_than_the_burst_never_fits_and_zero_rate_disables():
    assert TokenBuckets(rate=10, burst=5, clock=Clock()).take(b"k", 6) == math.inf
    assert TokenBuckets(rate=0, burst=0).take(b"k", 10**9) == 0.0
