"""The source watermark over raw partitions reported by normalise workers."""

from streams.journeys.watermarks import (
    forget_silent,
    new_reports,
    partition_id,
    record_report,
    source_watermark,
)

CLICKS = "cust.clickstream.raw.v1"
ORDERS = "cust.fulfillment.raw.v1"
ALL = {partition_id(CLICKS, 0), partition_id(CLICKS, 1), partition_id(ORDERS, 0)}


def part(topic, partition, progress, caught_up=False):
    return {"topic": topic, "partition": partition, "progress": progress, "caught_up": caught_up}


def test_minimum_over_partitions_behind_caught_up_ones_do_not_hold_it_back():
    reports = new_reports()
    record_report(
        reports,
        "w1",
        [part(CLICKS, 0, 500), part(CLICKS, 1, 90, caught_up=True), part(ORDERS, 0, 700)],
        now_ms=0,
    )
    assert source_watermark(reports, ALL) == 500


def test_all_caught_up_the_watermark_is_the_furthest_progress():
    reports = new_reports()
    record_report(
        reports,
        "w1",
        [part(CLICKS, 0, 500, True), part(CLICKS, 1, None, True), part(ORDERS, 0, 700, True)],
        now_ms=0,
    )
    assert source_watermark(reports, ALL) == 700


def test_a_partition_nobody_reported_holds_it_back():
    # the second worker owns clicks/1 but has not reported yet
    reports = new_reports()
    record_report(reports, "w1", [part(CLICKS, 0, 500), part(ORDERS, 0, 700)], now_ms=0)
    assert source_watermark(reports, ALL) is None
    record_report(reports, "w2", [part(CLICKS, 1, 300)], now_ms=10)
    assert source_watermark(reports, ALL) == 300


def test_a_partition_behind_without_progress_holds_it_back():
    reports = new_reports()
    record_report(reports, "w1", [part(CLICKS, 0, None), part(CLICKS, 1, 9), part(ORDERS, 0, 9)], 0)
    assert source_watermark(reports, ALL) is None


def test_a_partition_handed_over_counts_with_its_new_owner():
    reports = new_reports()
    record_report(
        reports,
        "w1",
        [part(CLICKS, 0, 500), part(CLICKS, 1, 600, True), part(ORDERS, 0, 700)],
        now_ms=0,
    )
    assert source_watermark(reports, ALL) == 500
    # rebalance: w2 takes clicks/1, which has new records; w1's stale report still
    # lists it as caught up: the more conservative report counts, behind, at the
    # furthest progress known (w1 had every record before 600 acknowledged)
    record_report(reports, "w2", [part(CLICKS, 1, 200)], now_ms=5)
    assert source_watermark(reports, ALL) == 500
    # w1's next report no longer lists clicks/1 and moved on
    record_report(reports, "w1", [part(CLICKS, 0, 800), part(ORDERS, 0, 900)], now_ms=6)
    assert source_watermark(reports, ALL) == 600
    record_report(reports, "w2", [part(CLICKS, 1, 650)], now_ms=7)
    assert source_watermark(reports, ALL) == 650
    # w1 gave clicks/0 away and its new owner has not reported yet
    record_report(reports, "w1", [part(ORDERS, 0, 950)], now_ms=7)
    assert source_watermark(reports, ALL) is None


def test_a_silent_worker_is_forgotten_and_its_partitions_wait_for_their_new_owner():
    reports = new_reports()
    record_report(reports, "w1", [part(CLICKS, 0, 500), part(CLICKS, 1, 500)], now_ms=0)
    record_report(reports, "w2", [part(ORDERS, 0, 400)], now_ms=20_000)
    forget_silent(reports, now_ms=31_000, timeout_ms=30_000)
    assert set(reports["origins"]) == {"w2"}
    assert source_watermark(reports, ALL) is None
    record_report(
        reports, "w2", [part(ORDERS, 0, 400), part(CLICKS, 0, 450), part(CLICKS, 1, 450)], 31_500
    )
    assert source_watermark(reports, ALL) == 400


def test_the_furthest_progress_of_a_partition_is_remembered():
    reports = new_reports()
    record_report(reports, "w1", [part(CLICKS, 0, 100)], now_ms=0)
    record_report(reports, "w1", [part(CLICKS, 0, 50)], now_ms=1)
    assert source_watermark(reports, {partition_id(CLICKS, 0)}) == 100


def test_a_restarted_worker_with_everything_already_read_releases_the_watermark():
    # the new worker read nothing (its partitions were read to their end before the
    # restart): no progress of its own, everything caught up
    reports = new_reports()
    record_report(
        reports, "old", [part(CLICKS, 0, 500), part(CLICKS, 1, 700), part(ORDERS, 0, 650)], 0
    )
    forget_silent(reports, now_ms=60_000, timeout_ms=30_000)
    record_report(
        reports,
        "new",
        [part(CLICKS, 0, None, True), part(CLICKS, 1, None, True), part(ORDERS, 0, None, True)],
        now_ms=60_000,
    )
    assert source_watermark(reports, ALL) == 700
    # ...and a partition it is still behind on, without progress of its own, counts
    # at the furthest progress acknowledged before
    record_report(
        reports,
        "new",
        [part(CLICKS, 0, None), part(CLICKS, 1, None, True), part(ORDERS, 0, None, True)],
        now_ms=60_500,
    )
    assert source_watermark(reports, ALL) == 500


def test_nothing_known_no_watermark():
    assert source_watermark(new_reports(), set()) is None
    assert source_watermark(new_reports(), ALL) is None


def test_when_everything_is_caught_up_the_lateness_is_given_back():
    reports = new_reports()

    def report(first_caught_up: bool, now_ms: int) -> None:
        parts = [("t", 0, 500, first_caught_up), ("t", 1, 900, True)]
        record_report(
            reports,
            "w1",
            [{"topic": t, "partition": p, "progress": g, "caught_up": c} for t, p, g, c in parts],
            now_ms=now_ms,
        )

    report(first_caught_up=True, now_ms=0)
    assert source_watermark(reports, {"t/0", "t/1"}, lateness_ms=60) == 960
    report(first_caught_up=False, now_ms=1)
    assert source_watermark(reports, {"t/0", "t/1"}, lateness_ms=60) == 500  # one is behind


def test_a_caught_up_from_a_worker_that_went_silent_is_not_believed():
    # w2 was killed right after saying clicks/1 is caught up: records that arrive
    # there afterwards are not read until its successor reports, so after the TTL
    # clicks/1 counts as behind at its progress
    reports = new_reports()
    w1 = [part(CLICKS, 0, 800, True), part(ORDERS, 0, 900, True)]
    record_report(reports, "w1", w1, now_ms=3_000)
    record_report(reports, "w2", [part(CLICKS, 1, 600, True)], now_ms=0)
    assert source_watermark(reports, ALL, now_ms=4_000) == 900
    assert source_watermark(reports, ALL, now_ms=6_000) == 600
    # the successor reports it caught up again: believed
    record_report(reports, "w3", [part(CLICKS, 1, 650, True)], now_ms=11_000)
    record_report(reports, "w1", w1, now_ms=11_000)
    forget_silent(reports, 11_000, timeout_ms=10_000)
    assert source_watermark(reports, ALL, now_ms=11_000) == 900
