"""Fuzzed input to the decoders: random bytes, truncated and corrupted Avro, wrong schema
ids. Every bad value raises ``DecodeError`` (an ``InvalidRecord``: dead-lettered by the
caller) within bounded time; nothing else escapes."""

from __future__ import annotations

import struct

from hypothesis import example, given
from hypothesis import strategies as st

from connectors.generator.population import PopulationGenerator
from streams.core.codec import make_codec
from streams.core.errors import DecodeError
from streams.core.settings import Settings

CODEC = make_codec(Settings())
EVENTS = [e for e in PopulationGenerator(15, seed=2).generate() if not e.invalid]
TOPICS = sorted({e.topic for e in EVENTS})
VALID = [(e.topic, CODEC.encode(e.topic, e.record)) for e in EVENTS]
valid = st.sampled_from(VALID)


def decodes_or_refuses(topic: str, data: bytes) -> None:
    try:
        record = CODEC.decode(topic, data)
    except DecodeError as exc:
        assert exc.reason and str(exc)
        return
    assert isinstance(record, dict)  # a mutation may still be a valid record


@given(topic=st.sampled_from(TOPICS), data=st.binary(max_size=600))
@example(topic=TOPICS[0], data=b"")
@example(topic=TOPICS[0], data=b"\x00")
@example(topic=TOPICS[0], data=b"\x01\x00\x00\x00\x01abc")
def test_random_bytes(topic, data):
    decodes_or_refuses(topic, data)


@given(record=valid, cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_avro(record, cut):
    topic, data = record
    cut = cut % len(data)
    try:
        CODEC.decode(topic, data[:cut])
    except DecodeError:
        return
    raise AssertionError(f"{cut} of {len(data)} bytes decoded")


@given(record=valid, schema_id=st.integers(min_value=0, max_value=2**32 - 1))
def test_wrong_or_unknown_schema_id(record, schema_id):
    topic, data = record
    decodes_or_refuses(topic, data[:1] + struct.pack(">I", schema_id) + data[5:])


@given(
    record=valid,
    flips=st.lists(
        st.tuples(st.integers(min_value=5, max_value=10_000), st.integers(0, 255)), max_size=8
    ),
    tail=st.binary(max_size=16),
)
def test_corrupted_avro(record, flips, tail):
    topic, data = record
    body = bytearray(data)
    for position, value in flips:
        body[position % len(body)] = value
    decodes_or_refuses(topic, bytes(body) + tail)
