"""A generated event sent as a Segment call comes out of the collector's mapping unchanged."""

from __future__ import annotations

import orjson
import pytest

from connectors.generator.population import PopulationGenerator
from connectors.generator.via_collector import SEGMENT_SOURCES, to_segment
from connectors.sources.tracking import segment_record
from streams.core.errors import InvalidRecord


def _parsed(record: dict) -> dict:
    """JSON-text fields compared by value (the collector re-serialises them)."""
    return {k: orjson.loads(v) if k.endswith("_json") and v else v for k, v in record.items()}


def test_segment_round_trip_keeps_every_field_but_the_transport_times():
    events = PopulationGenerator(60, seed=3, invalid_rate=0.05).generate()
    tracked = [e for e in events if e.topic in SEGMENT_SOURCES]
    assert {e.record["event_type"] for e in tracked} >= {"page", "track", "identify"}
    checked = 0
    for event in tracked:
        source = SEGMENT_SOURCES[event.topic]
        if event.invalid in ("missing_id", "unknown_event_type"):
            with pytest.raises(InvalidRecord) as caught:
                segment_record(to_segment(event.record, event.invalid), source, 1)
            assert caught.value.reason == event.invalid
            continue
        back = _parsed(segment_record(to_segment(event.record, event.invalid), source, 123))
        expected = _parsed({**event.record, "received_at": 123, "sent_at": None})
        assert back == expected, event.record["event_id"]
        checked += 1
    assert checked > 300
