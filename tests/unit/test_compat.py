"""Avro compatibility rules, each against a hand-made pair of schemas."""

import copy

import pytest

from streams.core.compat import backward_incompatibilities, incompatibilities

BASE = {
    "type": "record",
    "name": "Event",
    "namespace": "t",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {
            "name": "meta",
            "type": [
                "null",
                {"type": "record", "name": "Meta", "fields": [{"name": "x", "type": "long"}]},
            ],
            "default": None,
        },
    ],
}


def changed(fn):
    new = copy.deepcopy(BASE)
    fn(new)
    return new


def field(schema, name):
    return next(f for f in schema["fields"] if f["name"] == name)


def test_identical_schema_is_compatible():
    assert backward_incompatibilities(BASE, BASE) == []


def test_added_field_with_default_is_backward_compatible():
    new = changed(
        lambda s: s["fields"].append({"name": "extra", "type": ["null", "string"], "default": None})
    )
    assert backward_incompatibilities(new, BASE) == []


def test_added_field_without_default_is_not():
    new = changed(lambda s: s["fields"].append({"name": "extra", "type": "string"}))
    assert backward_incompatibilities(new, BASE) == ["extra: new field without a default"]


def test_removed_field_is_backward_but_not_forward_compatible_without_default():
    new = changed(lambda s: s["fields"].pop(0))
    assert backward_incompatibilities(new, BASE) == []
    assert incompatibilities(new, BASE, "FORWARD") == ["forward: id: new field without a default"]


@pytest.mark.parametrize(
    "writer,reader,ok",
    [
        ("int", "long", True),
        ("int", "double", True),
        ("long", "float", True),
        ("float", "double", True),
        ("string", "bytes", True),
        ("long", "int", False),
        ("double", "float", False),
        ("string", "int", False),
    ],
)
def test_primitive_promotions_follow_the_avro_spec(writer, reader, ok):
    old = changed(lambda s: field(s, "count").update(type=writer))
    new = changed(lambda s: field(s, "count").update(type=reader))
    assert (backward_incompatibilities(new, old) == []) is ok


def test_widening_to_a_union_is_compatible_narrowing_is_not():
    new = changed(lambda s: field(s, "count").update(type=["null", "int"]))
    assert backward_incompatibilities(new, BASE) == []
    assert backward_incompatibilities(BASE, new) != []


def test_enum_symbol_removed_needs_reader_default():
    new = changed(lambda s: field(s, "kind")["type"].update(symbols=["a"]))
    assert backward_incompatibilities(new, BASE) == [
        "kind: enum symbols removed without a default: ['b']"
    ]
    new["fields"][2]["type"]["default"] = "a"
    assert backward_incompatibilities(new, BASE) == []


def test_enum_symbol_added_is_backward_compatible():
    new = changed(lambda s: field(s, "kind")["type"].update(symbols=["a", "b", "c"]))
    assert backward_incompatibilities(new, BASE) == []


def test_nested_record_change_is_found_with_its_path():
    new = changed(lambda s: field(s, "meta")["type"][1]["fields"][0].update(type="string"))
    errors = backward_incompatibilities(new, BASE)
    assert errors and all(e.startswith("meta") for e in errors)


def test_array_item_type_change_is_found():
    new = changed(lambda s: field(s, "tags")["type"].update(items="int"))
    assert backward_incompatibilities(new, BASE) == ["tags[]: type changed from string to int"]


def test_renamed_record_needs_an_alias():
    new = changed(lambda s: s.update(name="Renamed"))
    assert backward_incompatibilities(new, BASE) == [": record name changed from Event to Renamed"]
    new["aliases"] = ["t.Event"]
    assert backward_incompatibilities(new, BASE) == []


def test_renamed_field_is_matched_through_its_alias():
    new = changed(lambda s: field(s, "count").update(name="total", aliases=["count"]))
    assert backward_incompatibilities(new, BASE) == []


def test_full_mode_reports_both_directions():
    new = changed(lambda s: s["fields"].append({"name": "extra", "type": "string"}))
    errors = incompatibilities(new, BASE, "FULL_TRANSITIVE")
    assert errors == ["backward: extra: new field without a default"]


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError):
        incompatibilities(BASE, BASE, "SIDEWAYS")
