"""The Faust toolkit's pure parts: generated models, the codec against the runtime's,
topic names, settings and the scaffold's refusals."""

from __future__ import annotations

import ssl

import pytest
from pydantic import SecretStr

from streams.core.catalog import default_catalog
from streams.core.codec import CatalogSchemaSource, Codec
from streams.core.errors import DecodeError, FatalError, InvalidRecord
from streams.core.jsonavro import from_json
from streams.core.settings import KafkaSettings, Settings
from streams.faust import models
from streams.faust.app import broker_credentials, faust_options
from streams.faust.codec import AvroCodec, avro_codec
from streams.faust.generate import OUTPUT, generate
from streams.faust.scaffold import scaffold
from streams.faust.topics import attribute_name, model_of_schema

CATALOG = default_catalog()
CODEC = Codec(CATALOG, CatalogSchemaSource(CATALOG))
EXAMPLES = [
    (topic, path.name, from_json(CATALOG.value_schema(topic).raw, example))
    for topic in sorted(CATALOG.topics)
    if not topic.endswith(".dlq")
    for path, example in CATALOG.examples(topic)
]


def test_models_file_is_what_the_schemas_generate():
    assert OUTPUT.read_text() == generate(), "run: python -m streams.faust.generate"


def test_every_catalogue_topic_has_a_model_and_examples():
    with_examples = {topic for topic, _, _ in EXAMPLES}
    assert with_examples >= {t for t in CATALOG.topics if not t.endswith(".dlq")}
    for spec in CATALOG.topics.values():
        model = model_of_schema(CATALOG.latest(spec.schema).raw)
        assert model.__module__ == models.__name__


@pytest.mark.parametrize(("topic", "example", "record"), EXAMPLES, ids=lambda v: str(v)[:40])
def test_codec_round_trips_every_example_byte_for_byte(topic, example, record):
    written = CODEC.encode(topic, record)  # as the batched stages write it
    codec = avro_codec(CODEC, topic)
    decoded = codec.loads(written)
    model = model_of_schema(CATALOG.value_schema(topic).raw)
    value = model.from_data(decoded, preferred_type=model)
    assert isinstance(value, model)
    assert codec.dumps(value) == written  # a model re-encodes to the same bytes
    assert codec.dumps(decoded) == written  # and so does the dict
    assert CODEC.decode(topic, codec.dumps(value)) == CODEC.decode(topic, written)


def test_nested_records_decode_to_their_models():
    topic, _, record = next(e for e in EXAMPLES if e[0] == "cust.profiles.v1")
    codec = avro_codec(CODEC, topic)
    profile = models.CustomerProfile.from_data(codec.loads(CODEC.encode(topic, record)))
    assert profile.attributes
    assert all(isinstance(a, models.ProfileAttribute) for a in profile.attributes)
    assert [a.name for a in profile.attributes] == [a["name"] for a in record["attributes"]]


def test_codec_errors_are_the_runtimes():
    codec = avro_codec(CODEC, "cust.touchpoints.v1")
    with pytest.raises(DecodeError, match="wrong magic byte"):
        codec.loads(b"\x01\x00\x00\x00\x01abc")
    with pytest.raises(InvalidRecord) as raised:
        codec.dumps({"touchpoint_id": "only this"})
    assert raised.value.reason == "schema_violation"


def test_codec_clones_keep_their_topic():
    codec = avro_codec(CODEC, "cust.journeys.v1")
    clone = codec.clone()
    assert isinstance(clone, AvroCodec)
    assert clone.topic_codec is codec.topic_codec


def test_models_carry_the_schema_docs():
    doc = models.CustomerScore.__doc__
    assert "expected_value_365d: Expected repeat revenue in 365 days." in doc
    assert "(epoch milliseconds)" in doc
    assert "One of observed, declared, inferred." in models.ProfileAttribute.__doc__


@pytest.mark.parametrize(
    ("topic", "attribute"),
    [
        ("cust.customer-scores.v1", "customer_scores"),
        ("cust.touchpoints.stitched.v1", "touchpoints_stitched"),
        ("cust.journeys.v1", "journeys"),
        ("cust.journeys.v1.dlq", "journeys_dlq"),
        ("cust.catalog.products.v1", "catalog_products"),
    ],
)
def test_attribute_names(topic, attribute):
    assert attribute_name(topic) == attribute


def test_attribute_names_are_unique():
    names = [attribute_name(t) for t in CATALOG.topics]
    assert len(names) == len(set(names))


def test_credentials_follow_the_bus_settings():
    assert broker_credentials(KafkaSettings()) is None
    sasl = broker_credentials(
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="team",
            sasl_password=SecretStr("s3cret"),
        )
    )
    assert sasl.mechanism.value == "SCRAM-SHA-512"
    assert sasl.protocol.value == "SASL_SSL"
    assert isinstance(sasl.ssl_context, ssl.SSLContext)
    assert "s3cret" not in repr(sasl)
    plain = broker_credentials(
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    )
    assert plain.protocol.value == "SASL_PLAINTEXT"
    assert plain.mechanism.value == "PLAIN"
    tls = broker_credentials(KafkaSettings(security_protocol="SSL"))
    assert tls.protocol.value == "SSL"


def test_faust_options_are_the_measured_ones(tmp_path):
    settings = Settings(runtime_dir=tmp_path)
    options = faust_options("team-x", settings, "h1:9092,h2:9093")
    assert options["broker"] == ["journeybus://h1:9092", "journeybus://h2:9093"]
    assert options["broker_session_timeout"] == 6.0
    assert options["broker_heartbeat_interval"] == 1.0
    assert options["processing_guarantee"] == "at_least_once"  # no aiokafka idempotence
    assert options["consumer_auto_offset_reset"] == "earliest"
    assert options["datadir"] == str(tmp_path / "faust" / "team-x")


@pytest.mark.parametrize("name", ["Bad", "1x", "with-hyphen", "class"])
def test_scaffold_refuses_names_that_are_not_modules(name, tmp_path):
    with pytest.raises(FatalError):
        scaffold(name, "cust.touchpoints.v1", tmp_path)


def test_scaffold_refuses_unknown_topics_and_overwrites(tmp_path):
    with pytest.raises(FatalError, match="not a topic"):
        scaffold("x", "cust.nope.v1", tmp_path)
    scaffold("x", "cust.touchpoints.v1", tmp_path)
    with pytest.raises(FatalError, match="exists"):
        scaffold("x", "cust.touchpoints.v1", tmp_path)
