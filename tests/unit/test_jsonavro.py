"""Plain JSON to Avro-ready values."""

import pytest

from streams.core.errors import InvalidRecord
from streams.core.jsonavro import from_json, parse_timestamp_ms, to_json

SCHEMA = {
    "type": "record",
    "name": "R",
    "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "n", "type": ["null", "double"], "default": None},
        {"name": "raw", "type": "bytes"},
        {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
        {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["x", "y"]}},
        {
            "name": "sub",
            "type": [
                "null",
                {"type": "record", "name": "S", "fields": [{"name": "v", "type": "int"}]},
            ],
            "default": None,
        },
    ],
}


def test_timestamps_accept_iso_with_zone_naive_and_millis():
    assert parse_timestamp_ms("1970-01-01T00:00:01Z") == 1000
    assert parse_timestamp_ms("1970-01-01T01:00:01+01:00") == 1000
    assert parse_timestamp_ms("1970-01-01T00:00:01.250") == 1250
    assert parse_timestamp_ms(1234) == 1234


def test_record_conversion_fills_defaults_and_resolves_untagged_unions():
    out = from_json(
        SCHEMA,
        {"at": "2026-01-01T00:00:00Z", "n": 3, "raw": "ab\u00ff", "kind": "y", "sub": {"v": 7}},
    )
    assert out == {
        "at": 1767225600000,
        "n": 3.0,
        "raw": b"ab\xff",
        "tags": {},
        "kind": "y",
        "sub": {"v": 7},
    }


@pytest.mark.parametrize(
    "value,needle",
    [
        ({"at": 1, "raw": "", "kind": "z"}, "kind: 'z' is not one of"),
        ({"at": 1, "raw": "", "kind": "x", "bogus": 1}, "unknown field(s) ['bogus']"),
        ({"raw": "", "kind": "x"}, "at: required field missing"),
        ({"at": "yesterday", "raw": "", "kind": "x"}, "at: Invalid isoformat"),
        ({"at": 1, "raw": "", "kind": "x", "sub": {"v": "7"}}, "sub.v: expected int"),
        ({"at": 1, "raw": "", "kind": "x", "sub": {"v": 2**40}}, "out of range for int"),
        ({"at": True, "raw": "", "kind": "x"}, "at: a boolean is not a timestamp"),
    ],
)
def test_bad_values_name_the_field(value, needle):
    with pytest.raises(InvalidRecord) as err:
        from_json(SCHEMA, value)
    assert err.value.reason == "schema_violation"
    assert needle in str(err.value)


def test_to_json_is_printable():
    assert to_json({"b": b"\x00a", "l": [1]}) == {"b": "\x00a", "l": [1]}
