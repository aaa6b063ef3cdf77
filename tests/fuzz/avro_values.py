"""Hypothesis strategies for records of a topic's Avro schema, in the decoded form the
codec returns (timestamps as epoch ms, unions untagged, bytes as ``bytes``).

Two families, mixed: records drawn from the schema alone (every union branch, extreme
numbers and timestamps, empty, huge and arbitrary unicode strings, URL-shaped strings
built from the channel rules' site lists), and valid records (catalogue examples,
generated population events) with some of their fields replaced by such values, so
the deep paths of a stage's logic are reached too.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from hypothesis import strategies as st

from connectors.generator.population import PopulationGenerator
from streams.core.catalog import default_catalog
from streams.core.jsonavro import from_json
from streams.enrich import ga4_rules

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
NOW_MS = 1_796_000_000_000  # late 2026: timestamps near it pass the plausibility checks

SITES = (*ga4_rules.SOURCE_CATEGORIES.values(), ga4_rules.AI_ASSISTANTS)
HOSTS = sorted({f"{e}.com" if "." not in e else e for s in SITES for e in s if " " not in e})
text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.sampled_from(["", " ", "\x00", "null", "None", "true", "{}", "[]", "é" * 3, "\u202e"]),
    # huge ones built, not drawn character by character (which is slow)
    st.builds(
        lambda piece, n: piece * n,
        st.sampled_from(["a", "é", "/?", "%ff", "Mozilla/5.0 (", "ab.", "\u202e"]),
        st.integers(1_000, 20_000),
    ),
)
urls = st.builds(
    "{}://{}{}/{}?{}".format,
    st.sampled_from(["https", "http", "android-app", "", "javascript"]),
    st.sampled_from(["", "www.", "m.", "a.b."]),
    st.one_of(st.sampled_from(HOSTS), st.text(max_size=30)),
    st.text(max_size=30),
    st.sampled_from(
        ["", "utm_source=chatgpt.com", "utm_medium=cpc&gclid=x", "utm_source=&utm_medium=%ff"]
    ),
)
strings = st.one_of(text, urls)
longs = st.one_of(
    st.integers(*INT64),
    st.integers(NOW_MS - 400 * 86_400_000, NOW_MS + 86_400_000),
    st.sampled_from([0, -1, 1, INT64[0], INT64[1], 946_684_800_000, 253_402_300_799_999]),
)
doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, float("nan"), float("inf")]),
)


@cache
def _named(topic: str) -> dict[str, Any]:
    """Named types of a topic's newest schema, by name and full name."""
    named: dict[str, Any] = {}

    def walk(schema: Any, namespace: str | None) -> None:
        if isinstance(schema, list):
            for branch in schema:
                walk(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema["type"]
            if kind in ("record", "enum", "fixed"):
                space = schema.get("namespace", namespace)
                named[schema["name"]] = schema
                if space:
                    named[f"{space}.{schema['name']}"] = schema
                for field in schema.get("fields", ()):
                    walk(field["type"], space)
            elif kind == "array":
                walk(schema["items"], namespace)
            elif kind == "map":
                walk(schema["values"], namespace)
            elif isinstance(kind, dict | list):
                walk(kind, namespace)

    walk(schema_of(topic), None)
    return named


def schema_of(topic: str) -> dict[str, Any]:
    return default_catalog().value_schema(topic).raw


def from_schema(schema: Any, named: dict[str, Any], depth: int = 0) -> st.SearchStrategy:
    """Any value of ``schema``; deep nesting is cut short by preferring short arrays."""
    if isinstance(schema, list):
        return st.one_of([from_schema(b, named, depth) for b in schema])
    if isinstance(schema, str):
        if schema in named:
            return from_schema(named[schema], named, depth)
        return primitive(schema, None)
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return from_schema(kind, named, depth)
    if kind == "record":
        fields = {f["name"]: from_schema(f["type"], named, depth + 1) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "array":
        return st.lists(from_schema(schema["items"], named, depth + 1), max_size=6 if depth else 8)
    if kind == "map":
        return st.dictionaries(strings, from_schema(schema["values"], named, depth + 1), max_size=5)
    return primitive(kind, schema.get("logicalType"))


def primitive(kind: str, logical: str | None) -> st.SearchStrategy:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(*INT32)
    if kind == "long":
        return longs
    if kind in ("float", "double"):
        return doubles if kind == "double" else st.floats(width=32)
    if kind == "bytes":
        return st.binary(max_size=64)
    if kind == "string":
        return strings
    raise ValueError(f"no strategy for Avro type {kind!r}")


@cache
def valid_records(topic: str) -> tuple[dict[str, Any], ...]:
    """Valid records of ``topic``: its catalogue examples and, for raw topics, events of
    a small generated population."""
    catalog = default_catalog()
    schema = schema_of(topic)
    name = catalog.topic(topic).schema  # examples of every topic of the same schema
    same = [t for t, spec in catalog.topics.items() if spec.schema == name]
    records = [from_json(schema, value) for t in same for _, value in catalog.examples(t)]
    events = PopulationGenerator(12, seed=5).generate()
    records += [e.record for e in events if e.topic == topic and not e.invalid][:40]
    return tuple(records)


@st.composite
def mutated(draw: st.DrawFn, topic: str) -> dict[str, Any]:
    """A valid record of ``topic`` with some fields (nested ones too) replaced by any
    value of their type."""
    named = _named(topic)
    record = copy.deepcopy(draw(st.sampled_from(valid_records(topic))))
    _mutate(draw, record, schema_of(topic), named)
    return record


def _mutate(draw: st.DrawFn, record: dict[str, Any], schema: dict, named: dict) -> None:
    for field in schema["fields"]:
        name, kind = field["name"], field["type"]
        value = record.get(name)
        nested = _record_schema(kind, named)
        if isinstance(value, dict) and nested is not None and draw(st.booleans()):
            _mutate(draw, value, nested, named)
        elif draw(st.integers(0, 3)) == 0:
            record[name] = draw(from_schema(kind, named, 1))


def _record_schema(kind: Any, named: dict) -> dict | None:
    """The record schema of a field that is a record or an optional record."""
    branches = kind if isinstance(kind, list) else [kind]
    for branch in branches:
        resolved = named.get(branch, branch) if isinstance(branch, str) else branch
        if isinstance(resolved, dict) and resolved.get("type") == "record":
            return resolved
    return None


def records(topic: str) -> st.SearchStrategy:
    """Records of ``topic``: drawn from the schema, or valid ones mutated."""
    return st.one_of(from_schema(schema_of(topic), _named(topic)), mutated(topic))
