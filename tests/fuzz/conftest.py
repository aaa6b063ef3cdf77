"""Hypothesis profiles: ``make test`` runs a few hundred examples per property;
``make fuzz`` (HYPOTHESIS_PROFILE=fuzz) over 100,000 per target."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("JOURNEYBUS_FUZZ_EXAMPLES", "100000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(items):
    """The long run is long: lift the suite's per-test timeout for the fuzz properties."""
    if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz":
        for item in items:
            if "tests/fuzz/" in str(item.fspath):
                item.add_marker(pytest.mark.timeout(4 * 3600))
