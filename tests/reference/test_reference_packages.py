"""journeybus's attribution against ChannelAttribution and marketing-attribution-models
themselves (installed by the ``reference`` extra)."""

import contextlib
import io

import pandas as pd
import pytest

from streams.attribution.paths_file import PathRow, markov_result
from tests.reference.compare import (
    ca,
    channelattribution_heuristics,
    channelattribution_markov,
    mam_models,
)


@pytest.mark.parametrize("seed", range(3))
def test_rule_models_equal_channelattribution_to_rounding(seed):
    for model, diff in channelattribution_heuristics(seed).items():
        assert diff < 1e-9, model


@pytest.mark.parametrize("seed", range(3))
def test_rule_models_and_shapley_equal_marketing_attribution_models_to_rounding(seed):
    for model, diff in mam_models(seed).items():
        assert diff < 1e-9, model


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_markov_is_channelattribution_without_its_simulation_error(seed, order):
    # 2e5 simulated walks: removal effects within about 0.01, value credits within
    # about 0.4% of the total value (ten times the walks: a third of that).
    found = channelattribution_markov(seed, order)
    assert found["removal_effect"] < 0.03
    assert found["value"] < 0.012 * found["total_value"]


def test_the_issues_order_two_case_matches_channelattribution():
    data = pd.DataFrame(
        {"path": ["A > A", "B > A > A"], "conv": [1, 0], "value": [10.0, 0.0], "null": [0, 1]}
    )
    with contextlib.redirect_stdout(io.StringIO()):
        ref = ca.markov_model(
            data,
            "path",
            "conv",
            var_value="value",
            var_null="null",
            order=2,
            out_more=True,
            verbose=False,
            flg_pro=False,
            max_step=1000,
        )
    theirs = ref["removal_effects"].set_index("channel_name")["removal_effects_conversion"]
    ours = markov_result(
        [PathRow(["A", "A"], 1, 10.0, 0), PathRow(["B", "A", "A"], 0, 0.0, 1)], order=2
    )
    assert ours.removal_effects["B"] == pytest.approx(0.5, abs=1e-12)
    assert theirs["B"] == pytest.approx(ours.removal_effects["B"], abs=0.01)
    assert ours.credits()["B"][0] == pytest.approx(1 / 3, abs=1e-12)
