"""Confluent framing and fastavro codec, without a broker."""

import struct

import pytest

from streams.core.codec import HEADER
from streams.core.errors import DecodeError, InvalidRecord
from streams.core.jsonavro import from_json

TOPIC = "cust.clickstream.raw.v1"


@pytest.fixture
def example(catalog):
    _, value = catalog.examples(TOPIC)[0]
    return from_json(catalog.value_schema(TOPIC).raw, value)


def test_frame_is_magic_zero_then_big_endian_schema_id(codec, catalog, example):
    data = codec.encode(TOPIC, example)
    magic, schema_id = HEADER.unpack(data[:5])
    assert magic == 0
    assert schema_id == catalog.schema_id(catalog.value_schema(TOPIC))


def test_every_example_round_trips(codec, catalog):
    count = 0
    for topic in catalog.topics:
        schema = catalog.value_schema(topic).raw
        for _, value in catalog.examples(topic):
            record = from_json(schema, value)
            assert codec.decode(topic, codec.encode(topic, record)) == record
            count += 1
    assert count >= 26


def test_encode_rejects_unknown_fields_and_wrong_types(codec, example):
    with pytest.raises(InvalidRecord) as err:
        codec.encode(TOPIC, {**example, "surprise": 1})
    assert err.value.reason == "schema_violation"
    with pytest.raises(InvalidRecord):
        codec.encode(TOPIC, {**example, "event_time": "not a number"})


def test_wrong_magic_byte_names_topic_partition_offset(codec, example):
    data = b"\x01" + codec.encode(TOPIC, example)[1:]
    with pytest.raises(DecodeError) as err:
        codec.decode(TOPIC, data, partition=3, offset=41)
    assert err.value.reason == "decode_error"
    assert (err.value.topic, err.value.partition, err.value.offset) == (TOPIC, 3, 41)
    assert "wrong magic byte 0x01" in str(err.value)
    assert f"[{TOPIC}/3@41]" in str(err.value)


def test_unknown_schema_id_is_a_decode_error(codec, example):
    data = struct.pack(">bI", 0, 999_999) + codec.encode(TOPIC, example)[5:]
    with pytest.raises(DecodeError, match="unknown schema id 999999"):
        codec.decode(TOPIC, data, partition=0, offset=1)


@pytest.mark.parametrize("cut", [0, 3, 5, 12, -1])
def test_truncated_bytes_are_a_decode_error(codec, example, cut):
    data = codec.encode(TOPIC, example)
    with pytest.raises(DecodeError):
        codec.decode(TOPIC, data[:cut] if cut >= 0 else data[:-1])


def test_trailing_garbage_is_a_decode_error(codec, example):
    with pytest.raises(DecodeError, match="trailing bytes"):
        codec.decode(TOPIC, codec.encode(TOPIC, example) + b"\x00\x01")


def test_record_written_with_an_older_revision_reads_with_new_defaults(codec, catalog, example):
    import io

    import fastavro

    old = catalog.schemas[TOPIC][0]
    assert old.revision == 1 and catalog.value_schema(TOPIC).revision == 3
    added = ("consent_json", "rudder_id", "channel")  # by revisions 2 and 3
    legacy = {k: v for k, v in example.items() if k not in added}
    buf = io.BytesIO()
    buf.write(HEADER.pack(0, catalog.schema_id(old)))
    fastavro.schemaless_writer(buf, old.parsed, legacy)
    decoded = codec.decode(TOPIC, buf.getvalue())
    assert decoded == {**legacy, **dict.fromkeys(added)}


def test_decode_many_separates_errors(codec, example):
    good = codec.encode(TOPIC, example)
    records, errors = codec.for_topic(TOPIC).decode_many([good, b"junk!", good])
    assert len(records) == 2 and len(errors) == 1


def _fastavro_untagged(codec, topic, record) -> bytes:
    """The bytes fastavro writes when it chooses each union branch itself."""
    import io

    import fastavro

    buf = io.BytesIO()
    topic_codec = codec.for_topic(topic)
    fastavro.schemaless_writer(buf, topic_codec._writer, record, strict_allow_default=True)
    return topic_codec._header + buf.getvalue()


def test_union_tagging_writes_the_bytes_fastavro_would_and_leaves_the_record(codec, catalog):
    import copy

    from streams.core.codec import union_tagger

    tagged_topics = 0
    for topic in catalog.topics:
        schema = catalog.value_schema(topic).raw
        tagged_topics += union_tagger(codec.for_topic(topic)._writer) is not None
        for _, value in catalog.examples(topic):
            record = from_json(schema, value)
            before = copy.deepcopy(record)
            assert codec.encode(topic, record) == _fastavro_untagged(codec, topic, record)
            assert record == before  # tagging copies, never edits the caller's record
    assert tagged_topics >= 5  # touchpoints, stitched, journeys, ... have optional records


def test_a_bad_value_in_an_optional_record_is_still_a_schema_violation(codec):
    topic = "cust.touchpoints.stitched.v1"
    record = {
        "kind": "touchpoint",
        "customer_key": "c-1",
        "touchpoint": {"touchpoint_id": 7},  # wrong type, required fields missing
        "merge_into": None,
        "origin": None,
        "state_json": None,
        "emitted_at": 1,
    }
    with pytest.raises(InvalidRecord) as err:
        codec.encode(topic, record)
    assert err.value.reason == "schema_violation"
    with pytest.raises(InvalidRecord):
        codec.encode(topic, {**record, "touchpoint": "not a record"})


def test_union_tagger_leaves_primitive_unions_and_tags_nested_optional_records():
    import io

    import fastavro

    from streams.core.codec import union_tagger

    inner = {"type": "record", "name": "ns.Inner", "fields": [{"name": "x", "type": "long"}]}
    schema = {
        "type": "record",
        "name": "ns.Outer",
        "fields": [
            {"name": "s", "type": ["null", "string"]},
            {"name": "one", "type": ["null", inner]},
            {"name": "many", "type": ["null", {"type": "array", "items": "ns.Inner"}]},
            {"name": "again", "type": ["null", "ns.Inner"]},
        ],
    }
    tag = union_tagger(schema)
    record = {"s": "a", "one": {"x": 1}, "many": [{"x": 2}], "again": None}
    assert tag(record) == {
        "s": "a",
        "one": ("ns.Inner", {"x": 1}),
        "many": ("array", [{"x": 2}]),
        "again": None,
    }
    assert union_tagger({"type": "record", "name": "P", "fields": [schema["fields"][0]]}) is None
    # a value of the wrong kind is left for fastavro's validation to reject
    assert tag({"one": "text", "many": "abc"}) == {"one": "text", "many": "abc"}
    parsed = fastavro.parse_schema(schema)
    with pytest.raises(ValueError):
        fastavro.schemaless_writer(
            io.BytesIO(), parsed, tag({"s": None, "one": None, "many": "abc", "again": None})
        )
