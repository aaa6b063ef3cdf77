"""The models analysts ask for (W-shaped, unique-channel linear, Shapley exact and
simplified), Markov value removal effects, and the CLI's validation."""

import itertools
import math
import random
from collections import defaultdict

import pytest
from click.testing import CliRunner

from streams.app.cli import main
from streams.attribution.credits import journey_credits
from streams.attribution.markov import MarkovModel
from streams.attribution.models import ALL_MODELS, rule_weights
from streams.attribution.shapley import ShapleyModel, shapley_values, simplified_values
from streams.attribution.stage import GlobalPaths
from tests.unit.test_attribution import ca_walk, value_iteration


# -- rules ---------------------------------------------------------------------------
def test_w_shaped_gives_thirty_percent_to_first_middle_and_last():
    assert rule_weights("w_shaped", list("ABCDE")) == pytest.approx([0.3, 0.05, 0.3, 0.05, 0.3])
    assert rule_weights("w_shaped", list("ABCD")) == pytest.approx([0.3, 0.1, 0.3, 0.3])
    assert rule_weights("w_shaped", list("ABC")) == pytest.approx([1 / 3] * 3)
    assert rule_weights("w_shaped", list("AB")) == pytest.approx([0.5, 0.5])


def test_linear_over_unique_channels_splits_each_channel_over_its_touches():
    assert rule_weights("linear_unique", ["A", "B", "A", "A"]) == pytest.approx(
        [1 / 6, 1 / 2, 1 / 6, 1 / 6]
    )


def test_last_non_direct_knows_direct_in_any_case():
    assert rule_weights("last_non_direct", ["Email", "direct", " DIRECT"]) == [1, 0, 0]


@pytest.mark.parametrize("half_life", [0.0, -5.0, math.inf, math.nan])
def test_time_decay_refuses_a_half_life_that_is_not_positive(half_life):
    with pytest.raises(ValueError, match="half-life"):
        rule_weights("time_decay", ["A", "B"], [2.0, 1.0], half_life)


# -- Markov value ------------------------------------------------------------------------
def test_markov_value_removal_effects_weigh_each_conversion_by_its_value():
    # start -> A or B (1/2 each), both convert; A's conversion is worth 100, B's 10.
    # V = 55; without A: 5 (value effect 10/11); without B: 50 (1/11).
    model = MarkovModel(1)
    model.add(["A"], conversions=1, value=100)
    model.add(["B"], conversions=1, value=10)
    result = model.solve()
    assert result.removal_effects == pytest.approx({"A": 0.5, "B": 0.5})
    assert result.value_removal_effects == pytest.approx({"A": 10 / 11, "B": 1 / 11})
    credits = result.credits()
    assert credits["A"] == pytest.approx((1.0, 100.0)) and credits["B"] == pytest.approx(
        (1.0, 10.0)
    )


def test_repeated_states_not_channels_are_collapsed_at_order_two():
    # The case: A>A converts (10), B>A>A does not. ChannelAttribution: B's
    # removal effect 0.5 and a third of the conversion.
    model = MarkovModel(2)
    model.add(["A", "A"], conversions=1, value=10)
    model.add(["B", "A", "A"], nulls=1)
    result = model.solve()
    assert result.removal_effects == pytest.approx({"A": 1.0, "B": 0.5}, abs=1e-12)
    conversions, value = result.credits()["B"]
    assert conversions == pytest.approx(1 / 3, abs=1e-12)
    assert value == pytest.approx(10 / 3, abs=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_markov_value_matches_independent_value_iteration(order):
    rng = random.Random(40 + order)
    rows = []
    for _ in range(150):
        path = [rng.choice("ABCD") for _ in range(rng.randint(1, 5))]
        converted = rng.random() < 0.3 + 0.2 * ("B" in path)
        rows.append((path, converted, round(rng.uniform(5, 200), 2) if converted else 0.0))
    model = MarkovModel(order)
    chain, values_by_last = defaultdict(lambda: defaultdict(float)), defaultdict(list)
    for path, converted, value in rows:
        model.add(path, conversions=int(converted), nulls=int(not converted), value=value)
        walk = ca_walk(path, order)
        states = ["S", *walk, "CONV" if converted else "NULL"]
        for a, b in itertools.pairwise(states):
            chain[a][b] += 1
        if converted:
            values_by_last[walk[-1]].append(value)
    chain = {a: {b: n / sum(c.values()) for b, n in c.items()} for a, c in chain.items()}
    mean = defaultdict(float, {s: sum(v) / len(v) for s, v in values_by_last.items()})
    result = model.solve()
    base = value_iteration(chain, values=mean)
    for channel, effect in result.value_removal_effects.items():
        expected = 1 - value_iteration(chain, channel, values=mean) / base
        assert effect == pytest.approx(expected, abs=1e-9)


# -- Shapley -------------------------------------------------------------------------
def by_permutations(players, worth):
    """The Shapley value as the average marginal contribution over every order."""
    out = dict.fromkeys(players, 0.0)
    orders = list(itertools.permutations(players))
    for order in orders:
        before = frozenset()
        for p in order:
            out[p] += worth(before | {p}) - worth(before)
            before = before | {p}
    return {p: v / len(orders) for p, v in out.items()}


def test_exact_shapley_equals_the_average_over_every_order():
    rng = random.Random(3)
    players = list("ABCDE")
    rates = {
        frozenset(c): rng.random()
        for n in range(1, 6)
        for c in itertools.combinations(players, n)
        if rng.random() < 0.6
    }
    expected = by_permutations(players, lambda s: rates.get(frozenset(s), 0.0))
    assert shapley_values(players, rates) == pytest.approx(expected, abs=1e-12)


def test_simplified_shapley_is_the_exact_value_of_the_additive_game():
    rng = random.Random(4)
    players = list("ABCD")
    rates = {
        frozenset(c): rng.random() for n in range(1, 5) for c in itertools.combinations(players, n)
    }

    def additive(s):
        return sum(r for t, r in rates.items() if t <= s)

    expected = by_permutations(players, additive)
    assert simplified_values(players, rates) == pytest.approx(expected, abs=1e-12)


def test_shapley_credits_split_each_sets_conversions_and_value():
    model = ShapleyModel()
    model.add(["A"], conversions=1, nulls=1, value=10)  # rate 1/2
    model.add(["B"], nulls=2)  # rate 0
    model.add(["A", "B", "A"], conversions=3, nulls=1, value=60)  # rate 3/4
    result = model.solve()
    # {A,B}: phi_A = (1/2 + (3/4 - 0)) / 2 = 5/8, phi_B = (0 + 3/4 - 1/2) / 2 = 1/8
    assert result.weights(["B", "A"]) == pytest.approx({"A": 5 / 6, "B": 1 / 6})
    credits = result.credits()
    assert credits["A"] == pytest.approx((1 + 3 * 5 / 6, 10 + 60 * 5 / 6))
    assert credits["B"] == pytest.approx((3 / 6, 60 / 6))


# -- per-conversion credits with learned models ------------------------------------------
def journey_of(i: int, channels: list[str], converted: bool, value: float | None) -> dict:
    """A journey record (touches an hour apart, the last an hour before the end)."""
    return {
        "journey_id": f"j{i}",
        "conversion_id": f"c{i}",
        "conversion_touchpoint_id": f"end{i}",
        "customer_key": "k",
        "converted": converted,
        "conversion_value": value,
        "currency": "GBP",
        "conversion_time": 1 if converted else None,
        "touchpoints": [
            {"touchpoint_id": f"t{i}-{n}", "channel": c, "hours_to_end": len(channels) - n}
            for n, c in enumerate(channels)
        ],
    }


def test_every_model_credits_each_conversion_exactly_once_and_its_value():
    rng = random.Random(8)
    paths = GlobalPaths(order=2)
    journeys = []
    for i in range(300):
        channels = [
            rng.choice(["Email", "Direct", "Paid Search", "SMS"]) for _ in range(rng.randint(0, 6))
        ]
        converted = rng.random() < 0.4
        j = journey_of(i, channels, converted, rng.uniform(1, 500) if converted else None)
        paths.apply(j)
        journeys.append(j)
    learned = paths.learn()
    for j in journeys:
        if not j["converted"]:
            continue
        rows = journey_credits(j, learned, now_ms=0)
        by_model = defaultdict(list)
        for row in rows:
            by_model[row["model"]].append(row)
        assert set(by_model) == set(ALL_MODELS)
        for credits in by_model.values():
            assert abs(sum(r["credit"] for r in credits) - 1.0) < 1e-12
            value = j["conversion_value"]
            assert abs(sum(r["value_credit"] for r in credits) - value) < 1e-12 * value


# -- the CLI ---------------------------------------------------------------------------
HEADER = "path,total_conversions,total_conversion_value,total_null"


def cli(tmp_path, body: str, *args: str, header: str = HEADER):
    paths = tmp_path / "paths.csv"
    paths.write_text(header + "\n" + body)
    return CliRunner().invoke(main, ["attribution", "compute", "--paths", str(paths), *args])


@pytest.mark.parametrize("half_life", ["0", "-3", "nan", "inf"])
def test_the_cli_refuses_a_half_life_that_is_not_positive(tmp_path, half_life):
    out = cli(tmp_path, "A>B,1,10,0\n", "--half-life-hours", half_life)
    assert out.exit_code == 2 and "positive number of hours" in out.output


@pytest.mark.parametrize("models", [["--model", "time_decay"], []])
def test_time_decay_without_hours_is_an_error_not_a_header(tmp_path, models):
    out = cli(tmp_path, "A>B,1,10,0\n", *models)
    assert out.exit_code == 2 and "'hours' column" in out.output


def test_the_cli_takes_the_tables_model_names_only(tmp_path):
    assert cli(tmp_path, "A>B,1,10,0\n", "--model", "first").exit_code == 2
    out = cli(tmp_path, "A>B,1,10,0\n", "--model", "first_touch", "--model", "w_shaped")
    assert out.exit_code == 0, out.output
    assert {line.split(",")[0] for line in out.output.splitlines()[1:]} == {
        "first_touch",
        "w_shaped",
    }


@pytest.mark.parametrize(
    "row,column",
    [
        ("A,1,-5,0", "total_conversion_value"),
        ("A,nan,5,0", "total_conversions"),
        ("A,1,5,-1", "total_null"),
    ],
)
def test_negative_or_nan_numbers_are_a_one_line_error_naming_the_line(tmp_path, row, column):
    out = cli(tmp_path, "B,1,1,0\n" + row + "\n", "--model", "linear")
    assert out.exit_code == 1
    assert out.output.strip().startswith("error: line 3:") and column in out.output


def test_a_conversion_without_touches_is_direct_in_every_model(tmp_path):
    out = cli(
        tmp_path,
        ",2,40,0,\nEmail,1,10,1,3\n",
        header=HEADER + ",hours",
    )
    assert out.exit_code == 0, out.output
    credits = defaultdict(dict)
    for line in out.output.splitlines()[1:]:
        model, channel, conversions, _value = line.split(",")
        credits[model][channel] = float(conversions)
    assert set(credits) == set(ALL_MODELS)
    for model, by_channel in credits.items():
        assert by_channel["Direct"] == pytest.approx(2.0, abs=1e-9), model
        assert sum(by_channel.values()) == pytest.approx(3.0, abs=1e-9), model


def test_markov_per_conversion_credits_only_touch_converting_paths(tmp_path):
    # A converts only after B's null paths taught the chain A -> ... ; the totals credit
    # B through the chain, the per-conversion sums do not.
    body = "B>A,0,0,3\nA,2,20,0\n"
    total = cli(tmp_path, body, "--model", "markov")
    per = cli(tmp_path, body, "--model", "markov", "--markov-credit", "per-conversion")
    assert total.exit_code == per.exit_code == 0
    assert "markov,B," in total.output and "markov,B," not in per.output


def test_the_streaming_credits_and_the_cli_agree(tmp_path):
    """Summed per channel, the stage's credits of every model equal what
    ``attribution compute`` prints for the same journeys as a paths file (Markov
    with ``--markov-credit per-conversion``)."""
    rng = random.Random(12)
    paths = GlobalPaths(order=2)
    streamed = defaultdict(float)
    converting = []
    by_path = defaultdict(lambda: [0, 0.0, 0])
    for i in range(400):
        channels = [
            rng.choice(["Email", "Direct", "SMS", "Referral"]) for _ in range(rng.randint(0, 4))
        ]
        converted = rng.random() < 0.3 + 0.3 * ("Email" in channels)
        value = round(rng.uniform(10, 90), 2) if converted else None
        j = journey_of(i, channels, converted, value)
        paths.apply(j)
        entry = by_path[" > ".join(channels)]
        entry[0] += converted
        entry[1] += value or 0.0
        entry[2] += not converted
        if converted:
            converting.append(j)
    learned = paths.learn()
    for j in converting:
        for row in journey_credits(j, learned, now_ms=0):
            streamed[(row["model"], row["channel"], "c")] += row["credit"]
            streamed[(row["model"], row["channel"], "v")] += row["value_credit"]
    for model in ("markov", "shapley", "shapley_simplified"):
        body = "".join(f"{p},{c},{v},{n}\n" for p, (c, v, n) in by_path.items())
        flags = ["--model", model, "--order", "2", "--markov-credit", "per-conversion"]
        out = cli(tmp_path, body, *flags)
        assert out.exit_code == 0, out.output
        for line in out.output.splitlines()[1:]:
            _, channel, conversions, value = line.split(",")
            assert float(conversions) == pytest.approx(streamed[(model, channel, "c")], abs=1e-5)
            assert float(value) == pytest.approx(streamed[(model, channel, "v")], abs=1e-5)
