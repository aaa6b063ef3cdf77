"""Audience definitions (checked at load) and membership changes from profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.activation.audiences import audience_changes, evaluate
from streams.activation.definitions import DefinitionError, load_audiences, load_messages


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def attr(value, confidence="observed", probability=None) -> dict:
    return {"value": value, "confidence": confidence, "probability": probability}


def test_shipped_definitions_load():
    audiences = load_audiences()
    messages = load_messages(audiences)
    assert {"high-value", "repeat-buyers", "category-shoes", "social-voices"} <= set(audiences)
    assert set(messages) <= set(audiences)
    variant = next(v for v in messages["high-value"] if v.id == "category-early-access")
    assert variant.attributes == ("preferred_category",)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("- {name: vip, all: [{attribute: prefered_category, op: '==', value: x}]}",
         "audience 'vip': all[0].attribute: unknown attribute"),
        ("- {name: vip, all: [{attribute: order_count, op: '=>', value: 2}]}",
         "audience 'vip': all[0].op: unknown operator '=>'"),
        ("- {name: vip, all: [{attribute: order_count, op: '>=', value: two}]}",
         "audience 'vip': all[0].value: '>=' needs a number"),
        ("- {name: vip, all: [], any: []}", "audience 'vip': give exactly one of"),
        ("- {name: vip, min_probability: 2, any: [{attribute: device, op: exists}]}",
         "audience 'vip': min_probability"),
        ("- {name: Big Spenders, any: [{attribute: device, op: exists}]}", "audiences[0].name"),
        ("- {name: vip, any: [{attribute: device, op: exists}]}\n"
         "- {name: vip, any: [{attribute: device, op: missing}]}", "'vip': declared twice"),
    ],
)  # fmt: skip
def test_a_bad_audience_is_rejected_at_load_naming_audience_and_field(tmp_path, body, named):
    path = write(tmp_path, "a.yaml", f"audiences:\n{body}\n")
    with pytest.raises(DefinitionError) as error:
        load_audiences(path)
    assert str(path) in str(error.value) and named in str(error.value)


def test_message_sets_are_capped_and_name_known_audiences_and_attributes(tmp_path):
    audiences = load_audiences()
    eleven = "".join(f"\n    - {{id: v{i}, text: hello}}" for i in range(11))
    with pytest.raises(DefinitionError, match=r"11 variants, above the cap of 10"):
        load_messages(audiences, write(tmp_path, "m.yaml", f"messages:\n  high-value:{eleven}"))
    with pytest.raises(DefinitionError, match=r"audience 'nobody'.*no such audience"):
        load_messages(
            audiences, write(tmp_path, "m.yaml", "messages:\n  nobody: [{id: a, text: b}]")
        )
    with pytest.raises(DefinitionError, match=r"\(v1\)\.text: unknown attribute \{shoe_size\}"):
        load_messages(
            audiences,
            write(tmp_path, "m.yaml", "messages:\n  high-value: [{id: v1, text: '{shoe_size}'}]"),
        )


def test_membership_follows_profile_versions_with_reasons_and_confidence():
    audiences = load_audiences()
    state: dict = {}
    shoes = {"preferred_category": attr("Shoes", "inferred", 0.7)}
    entered = audience_changes(state, "c1", 3, shoes, audiences, 1_000, 1_050)
    assert [(r["audience"], r["change"]) for r in entered] == [("category-shoes", "entered")]
    (used,) = entered[0]["attributes_used"]
    assert used == {
        "name": "preferred_category",
        "value": "Shoes",
        "confidence": "inferred",
        "probability": 0.7,
    }
    assert "preferred_category == Shoes: Shoes (yes)" in entered[0]["reason"]
    # a late (older) profile changes nothing; a replay of the same version neither
    assert audience_changes(state, "c1", 2, {}, audiences, 1_100, 1_150) == []
    assert audience_changes(state, "c1", 3, {}, audiences, 1_100, 1_150) == []
    # the inference weakens below the audience's 0.6: the customer exits
    weak = {"preferred_category": attr("Shoes", "inferred", 0.4)}
    exited = audience_changes(state, "c1", 4, weak, audiences, 1_200, 1_250)
    assert [(r["audience"], r["change"]) for r in exited] == [("category-shoes", "exited")]
    assert "not accepted" in exited[0]["reason"]
    assert exited[0]["change_id"] != entered[0]["change_id"]
    # the same inputs give the same ids (a replay is one row downstream)
    again = audience_changes({}, "c1", 3, shoes, audiences, 1_000, 9_999)
    assert again[0]["change_id"] == entered[0]["change_id"]


def test_observed_only_audience_ignores_declared_values_and_undeclared_audiences_exit(tmp_path):
    audiences = load_audiences()
    member, _, _ = evaluate(audiences["repeat-buyers"], {"order_count": attr("3", "declared")})
    assert not member
    member, _, _ = evaluate(audiences["repeat-buyers"], {"order_count": attr("3")})
    assert member
    state: dict = {}
    audience_changes(state, "c1", 1, {"order_count": attr("3")}, audiences, 1, 2)
    fewer = {k: v for k, v in audiences.items() if k != "repeat-buyers"}
    (gone,) = audience_changes(state, "c1", 2, {"order_count": attr("3")}, fewer, 3, 4)
    assert (gone["audience"], gone["change"]) == ("repeat-buyers", "exited")
    assert state["members"] == {}
