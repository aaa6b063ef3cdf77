"""BrokerWatch: a dropped connection that comes back is not an outage; one that
stays down is."""

import time

from streams.core.kafka import BrokerWatch

UP = {"brokers": {"127.0.0.1:9092/1": {"nodeid": 1, "state": "UP"}}}
DOWN = {"brokers": {"127.0.0.1:9092/1": {"nodeid": 1, "state": "TRY_CONNECT"}}}
BOOTSTRAP_ONLY = {"brokers": {"127.0.0.1:9092/bootstrap": {"nodeid": -1, "state": "UP"}}}


def test_unknown_until_statistics_arrive():
    assert BrokerWatch().up is None


def test_a_moment_down_is_still_reachable():
    watch = BrokerWatch(grace_s=5.0)
    watch.observe(UP)
    watch.observe(DOWN)
    assert watch.up is True


def test_down_for_longer_than_the_grace_is_unreachable_and_recovers():
    watch = BrokerWatch(grace_s=0.05)
    watch.observe(UP)
    time.sleep(0.1)
    watch.observe(DOWN)
    assert watch.up is False
    watch.observe(UP)
    assert watch.up is True


def test_never_up_becomes_unreachable_after_the_grace():
    watch = BrokerWatch(grace_s=0.05)
    watch.observe(BOOTSTRAP_ONLY)  # the bootstrap address is not a broker
    assert watch.up is True
    time.sleep(0.1)
    watch.observe(BOOTSTRAP_ONLY)
    assert watch.up is False
