"""Attribution models with hand-computed examples; Markov against independent solvers."""

import itertools
import random
from collections import Counter, defaultdict

import pytest

from streams.attribution.credits import Learned, journey_credits, markov_weights
from streams.attribution.markov import MarkovModel, collapse, path_states
from streams.attribution.models import ALL_MODELS, RULE_MODELS, rule_weights
from streams.attribution.paths_file import compute_csv, read_paths, rule_credits

PATH = ["Paid Search", "Email", "Direct", "Organic Social"]


@pytest.mark.parametrize(
    "model,expected",
    [
        ("first_touch", [1, 0, 0, 0]),
        ("last_touch", [0, 0, 0, 1]),
        ("last_non_direct", [0, 0, 0, 1]),
        ("linear", [0.25, 0.25, 0.25, 0.25]),
        ("position_based", [0.4, 0.1, 0.1, 0.4]),
    ],
)
def test_rule_models_on_a_four_touch_path(model, expected):
    assert rule_weights(model, PATH) == pytest.approx(expected)


def test_last_non_direct_skips_trailing_direct_and_falls_back_when_all_direct():
    assert rule_weights("last_non_direct", ["Email", "Direct", "Direct"]) == [1, 0, 0]
    assert rule_weights("last_non_direct", ["Direct", "Direct"]) == [0, 1]


def test_position_based_for_one_and_two_touches():
    assert rule_weights("position_based", ["A"]) == [1.0]
    assert rule_weights("position_based", ["A", "B"]) == [0.5, 0.5]
    assert rule_weights("position_based", ["A", "B", "C"]) == pytest.approx([0.4, 0.2, 0.4])


def test_time_decay_halves_per_half_life():
    # 168 h before the conversion weighs half of a touch at the conversion
    w = rule_weights("time_decay", ["A", "B"], [168.0, 0.0])
    assert w == pytest.approx([1 / 3, 2 / 3])
    w = rule_weights("time_decay", ["A", "B", "C"], [48.0, 24.0, 0.0], half_life_hours=24.0)
    assert w == pytest.approx([1 / 7, 2 / 7, 4 / 7])


def test_repeated_channels_each_get_their_touch_share():
    credits = rule_credits(read_rows("A > A > B,1,30,0\n"), "linear")
    assert credits["A"] == pytest.approx((2 / 3, 20.0))
    assert credits["B"] == pytest.approx((1 / 3, 10.0))


@pytest.mark.parametrize("model", RULE_MODELS)
def test_every_rule_model_sums_to_one(model):
    rng = random.Random(5)
    for n in range(1, 8):
        path = [rng.choice("ABCD") for _ in range(n)] + ["Direct"] * rng.randint(0, 2)
        hours = sorted((rng.uniform(0, 500) for _ in path), reverse=True)
        assert sum(rule_weights(model, path, hours)) == pytest.approx(1.0, abs=1e-12)


def read_rows(
    body: str, header: str = "path,total_conversions,total_conversion_value,total_null\n"
):
    import io

    return read_paths(io.StringIO(header + body))


# -- Markov ---------------------------------------------------------------------------
def test_collapse_and_states():
    assert collapse(["A", "A", "B", "A", "A"]) == ("A", "B", "A")
    # ChannelAttribution's states: windows of k channels, repeated windows collapsed
    assert path_states(("A", "B", "C"), 2) == [("A", "B"), ("B", "C")]
    assert path_states(("A", "A", "A", "B"), 2) == [("A", "A"), ("A", "B")]
    assert path_states(("A", "B"), 3) == [("A", "B")]
    assert path_states(("A", "A", "B"), 1) == [("A",), ("B",)]


def test_markov_order_1_hand_computed():
    # start->A 2, start->B 2, start->C 1; A->B 1, A->null 1; B->conv 1, B->C 2;
    # C->conv 1, C->null 2: P(C)=1/3, P(B)=5/9, P(A)=5/18, P(start)=18/45.
    model = MarkovModel(1)
    model.add(["A", "B"], conversions=1, value=10)
    model.add(["A"], nulls=1)
    model.add(["B", "C"], conversions=1, nulls=1, value=5)
    model.add(["C"], nulls=1)
    result = model.solve()
    assert result.conversion_probability == pytest.approx(18 / 45)
    assert result.removal_effects["A"] == pytest.approx(1 - (13 / 45) / (18 / 45))
    assert result.removal_effects["B"] == pytest.approx(1 - (1 / 15) / (18 / 45))
    credits = result.credits()
    assert sum(c for c, _ in credits.values()) == pytest.approx(2.0)
    assert sum(v for _, v in credits.values()) == pytest.approx(15.0)


def test_single_channel_paths_and_direct_only():
    model = MarkovModel(1)
    model.add(["Direct"], conversions=3)
    model.add(["Direct", "Direct"], nulls=1)
    result = model.solve()
    assert result.removal_effects == {"Direct": pytest.approx(1.0)}
    assert result.credits()["Direct"][0] == pytest.approx(3.0)


def random_paths(seed: int, n: int = 300):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        path = [rng.choice("ABCDE") for _ in range(rng.randint(1, 5))]
        converted = rng.random() < 0.2 + 0.15 * ("B" in path) + 0.1 * ("E" in path)
        rows.append((path, converted))
    return rows


def ca_walk(path, order):
    """The states a path walks through: windows of ``order`` channels over the raw
    path (the whole path if shorter), consecutive equal windows collapsed."""
    if len(path) <= order:
        windows = [",".join(path)]
    else:
        windows = [",".join(path[i : i + order]) for i in range(len(path) - order + 1)]
    return [w for i, w in enumerate(windows) if i == 0 or windows[i - 1] != w]


def independent_chain(rows, order):
    """Transition probabilities built from scratch (no code shared with the solver),
    by ChannelAttribution's rules: windows of ``order`` channels over the raw path
    (the whole path if shorter), consecutive equal windows collapsed."""
    counts = defaultdict(Counter)
    for path, converted in rows:
        walk = ca_walk(path, order)
        states = ["S", *walk, "CONV" if converted else "NULL"]
        for a, b in itertools.pairwise(states):
            counts[a][b] += 1
    return {a: {b: n / sum(c.values()) for b, n in c.items()} for a, c in counts.items()}


def value_iteration(chain, removed=None, sweeps=2000, values=None):
    """P(conversion) from S by value iteration; with ``values`` (state → value of a
    conversion from it), the expected value of a walk."""
    p = defaultdict(float)
    for _ in range(sweeps):
        new = defaultdict(float)
        for state, nexts in chain.items():
            total = 0.0
            for nxt, prob in nexts.items():
                if nxt == "CONV":
                    total += prob * (1.0 if values is None else values[state])
                elif nxt != "NULL" and not (removed and removed in nxt.split(",")):
                    total += prob * p[nxt]
            new[state] = total
        p = new
    return p["S"]


def monte_carlo(chain, removed=None, walks=60_000, seed=1):
    rng = random.Random(seed)
    table = {a: (list(n), list(n.values())) for a, n in chain.items()}
    hits = 0
    for _ in range(walks):
        state = "S"
        while True:
            nexts, probs = table[state]
            state = rng.choices(nexts, probs)[0]
            if state == "CONV":
                hits += 1
                break
            if state == "NULL" or (removed and removed in state.split(",")):
                break
    return hits / walks


@pytest.mark.parametrize("order", [1, 2, 3])
def test_markov_matches_independent_value_iteration_at_every_order(order):
    rows = random_paths(seed=order)
    model = MarkovModel(order)
    for path, converted in rows:
        model.add(path, conversions=int(converted), nulls=int(not converted))
    result = model.solve()
    chain = independent_chain(rows, order)
    base = value_iteration(chain)
    assert result.conversion_probability == pytest.approx(base, abs=1e-9)
    for channel, effect in result.removal_effects.items():
        assert effect == pytest.approx(1 - value_iteration(chain, channel) / base, abs=1e-9)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_markov_matches_simulated_walks(order):
    rows = random_paths(seed=10 + order)
    model = MarkovModel(order)
    for path, converted in rows:
        model.add(path, conversions=int(converted), nulls=int(not converted))
    result = model.solve()
    chain = independent_chain(rows, order)
    assert monte_carlo(chain) == pytest.approx(result.conversion_probability, abs=0.01)
    top = max(result.removal_effects, key=result.removal_effects.get)
    simulated = 1 - monte_carlo(chain, top, seed=2) / monte_carlo(chain, seed=3)
    assert simulated == pytest.approx(result.removal_effects[top], abs=0.03)


def test_markov_recovers_the_strongest_channel_of_synthetic_paths():
    rows = random_paths(seed=99, n=3000)  # B has the largest true effect
    model = MarkovModel(1)
    for path, converted in rows:
        model.add(path, conversions=int(converted), nulls=int(not converted))
    effects = model.solve().removal_effects
    assert max(effects, key=effects.get) == "B"


# -- per-conversion credits -----------------------------------------------------------
def journey(touches, value=90.0):
    return {
        "conversion_id": "o1",
        "journey_id": "o1",
        "customer_key": "c",
        "conversion_value": value,
        "currency": "GBP",
        "conversion_time": 0,
        "conversion_touchpoint_id": "conv",
        "touchpoints": [
            {"touchpoint_id": f"t{i}", "channel": ch, "hours_to_end": h}
            for i, (ch, h) in enumerate(touches)
        ],
    }


def test_journey_credits_sum_to_one_and_to_the_value_for_every_model():
    rows = journey_credits(
        journey([("A", 50.0), ("B", 10.0), ("A", 1.0)]),
        Learned("v", {"A": 0.2, "B": 0.6}),
        now_ms=0,
    )
    by_model = defaultdict(list)
    for row in rows:
        by_model[row["model"]].append(row)
    assert set(by_model) == set(ALL_MODELS)
    for credits in by_model.values():
        assert sum(r["credit"] for r in credits) == pytest.approx(1.0, abs=1e-12)
        assert sum(r["value_credit"] for r in credits) == pytest.approx(90.0, abs=1e-9)
    markov = {r["touchpoint_id"]: r["credit"] for r in by_model["markov"]}
    assert markov == pytest.approx({"t0": 0.125, "t1": 0.75, "t2": 0.125})
    assert len({r["credit_id"] for r in rows}) == len(rows)


def test_conversion_without_touches_goes_to_direct_on_the_conversion():
    rows = journey_credits(journey([]), Learned(), now_ms=0)
    assert {(r["channel"], r["touchpoint_id"], r["credit"]) for r in rows} == {
        ("Direct", "conv", 1.0)
    }


def test_markov_weights_without_a_model_split_by_channel():
    assert markov_weights(["A", "B", "B"], {}) == pytest.approx([0.5, 0.25, 0.25])


def test_compute_csv_from_an_aggregated_file():
    rows = read_rows(
        "A > B,1,10,0,5>1\nA,0,0,1,\nB > C,1,5,1,30>2\n",
        header="path,total_conversions,total_conversion_value,total_null,hours\n",
    )
    text = compute_csv(rows, ["linear", "time_decay", "markov"])
    lines = text.splitlines()
    assert lines[0] == "model,channel,total_conversions,total_conversion_value"
    linear = {ln.split(",")[1]: float(ln.split(",")[2]) for ln in lines if ln.startswith("lin")}
    assert linear == {"A": 0.5, "B": 1.0, "C": 0.5}
    for model in ("time_decay", "markov"):
        total = sum(float(ln.split(",")[2]) for ln in lines if ln.startswith(model))
        assert total == pytest.approx(2.0)
