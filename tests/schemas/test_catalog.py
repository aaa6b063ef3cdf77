"""The schema catalogue: every topic of DESIGN.md, documented, tagged, exemplified, evolvable."""

import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import fastavro
import jsonschema
import pytest
import yaml
from fastavro.utils import generate_many

from streams.app.asyncapi import _channel_id, asyncapi_document, process_runtime
from streams.core.catalog import load_catalog
from streams.core.schemacheck import check_catalog, check_evolution, check_examples, check_ids

DESIGN_TOPICS = {
    "cust.clickstream.raw.v1",
    "cust.mobile.raw.v1",
    "cust.social.raw.v1",
    "cust.messaging.raw.v1",
    "cust.fulfillment.raw.v1",
    "cust.identity.raw.v1",
    "cust.catalog.products.v1",
    "cust.touchpoints.v1",
    "cust.journeys.v1",
    "cust.attribution.v1",
    "cust.customer-scores.v1",
    "cust.profiles.v1",
}
TOPIC_NAME = r"^cust\.[a-z0-9-]+(\.[a-z0-9-]+)*\.v[0-9]+(\.dlq)?$"
FIXTURES = Path(__file__).parent.parent / "fixtures"


def walk_fields(schema, prefix=""):
    """Yield (path, field) for every field of every record in a raw Avro schema."""
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_fields(branch, prefix)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            for fld in schema["fields"]:
                yield prefix + fld["name"], fld
                yield from walk_fields(fld["type"], prefix + fld["name"] + ".")
        elif kind == "array":
            yield from walk_fields(schema["items"], prefix)
        elif kind == "map":
            yield from walk_fields(schema["values"], prefix)


def test_every_design_topic_and_its_dead_letter_topic_exists(catalog):
    assert set(catalog.topics) >= DESIGN_TOPICS
    for name in DESIGN_TOPICS:
        assert f"{name}.dlq" in catalog.topics
        assert catalog.topics[f"{name}.dlq"].schema == "cust.dead-letter.v1"


def test_topic_names_follow_the_convention(catalog):
    import re

    for name in catalog.topics:
        assert re.match(TOPIC_NAME, name), name
        assert "_" not in name, f"{name}: hyphens inside a segment, never underscores"


def test_topic_files_are_complete(catalog):
    for spec in catalog.topics.values():
        assert spec.owner and spec.description and spec.guarantees, spec.name
        assert spec.key.get("field") and spec.key.get("description"), spec.name
        assert spec.partitions >= 1 and spec.retention_ms != 0
        assert spec.compatibility in {"BACKWARD", "BACKWARD_TRANSITIVE", "FULL", "FORWARD"}
        assert spec.producers and spec.consumers, spec.name


def test_every_field_and_record_has_a_doc(catalog):
    for revisions in catalog.schemas.values():
        for rev in revisions:
            assert rev.raw.get("doc"), rev.path
            for path, fld in walk_fields(rev.raw):
                assert fld.get("doc"), f"{rev.path}: field {path} has no doc"


def test_pii_tags_match_the_topic_files(catalog):
    for spec in catalog.topics.values():
        tagged = [
            path for path, fld in walk_fields(catalog.latest(spec.schema).raw) if "pii" in fld
        ]
        assert sorted(tagged) == sorted(spec.pii), spec.name
        for path, fld in walk_fields(catalog.latest(spec.schema).raw):
            if "pii" in fld:
                assert fld["pii"] in {"direct", "pseudonymous"}, path


def test_contact_fields_are_tagged_as_direct_pii(catalog):
    for revisions in catalog.schemas.values():
        for path, fld in walk_fields(revisions[-1].raw):
            if path.split(".")[-1] in {"email", "phone", "ip", "text"}:
                assert fld.get("pii") == "direct", f"{revisions[-1].name}: {path}"


def test_derived_topics_carry_no_direct_pii(catalog):
    """Normalise hashes contact data and drops IPs and free text: what stages derive
    holds pseudonymous ids at most (a raw-shaped topic a stage fills, the identity
    evidence, keeps its source schema)."""
    derived = [
        t
        for t in catalog.topics.values()
        if any(p.startswith("streams.") for p in t.producers) and ".raw." not in t.name
    ]
    assert {"cust.touchpoints.v1", "cust.journeys.v1", "cust.profiles.v1"} <= {
        t.name for t in derived
    }
    for spec in derived:
        for path, fld in walk_fields(catalog.latest(spec.schema).raw):
            assert fld.get("pii") != "direct", f"{spec.name}: {path}"


def test_every_topic_has_at_least_two_examples(catalog):
    for name in DESIGN_TOPICS:
        assert len(catalog.examples(name)) >= 2, name
    dead_letter_examples = sum(
        len(catalog.examples(t)) for t in catalog.topics if t.endswith(".dlq")
    )
    assert dead_letter_examples >= 2
    folders = {p.name for p in (catalog.root / "examples").iterdir()}
    assert folders <= set(catalog.topics), "example folder for an unknown topic"


def test_every_example_validates_against_its_schema(catalog):
    assert check_examples(catalog) == []


def test_each_revision_is_backward_compatible_with_the_previous(catalog):
    assert check_evolution(catalog) == []
    assert any(len(revs) > 1 for revs in catalog.schemas.values())


def test_old_data_reads_with_the_new_revision_through_fastavro_resolution(catalog):
    for name, revisions in catalog.schemas.items():
        for old, new in itertools.pairwise(revisions):
            for record in generate_many(old.parsed, 50):
                buf = io.BytesIO()
                fastavro.schemaless_writer(buf, old.parsed, record)
                buf.seek(0)
                read = fastavro.schemaless_reader(buf, old.parsed, new.parsed)
                assert set(read) == {f["name"] for f in new.raw["fields"]}, name


def test_an_incompatible_revision_is_reported(tmp_path, catalog):
    import shutil

    root = tmp_path / "schemas"
    shutil.copytree(catalog.root, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    folder = root / "avro" / "cust.social.raw.v1"
    bad = json.loads((folder / "1.avsc").read_text())
    bad["fields"].append({"name": "sentiment", "type": "double", "doc": "no default"})
    (folder / "2.avsc").write_text(json.dumps(bad))
    broken = load_catalog(root)
    assert check_evolution(broken) == [
        "cust.social.raw.v1 revision 2 vs 1: backward: sentiment: new field without a default"
    ]
    assert any("cust.social.raw.v1 revision 2 has no id" in p for p in check_ids(broken))


def test_catalog_json_is_up_to_date_and_ids_are_unique(catalog):
    assert check_ids(catalog) == []
    committed = json.loads((catalog.root / "catalog.json").read_text())
    assert committed == catalog.assign_ids(), "run `journeybus schemas catalog --write`"


def test_whole_catalogue_check_is_clean(catalog):
    assert check_catalog(catalog) == []


def test_asyncapi_document_validates_against_the_asyncapi_3_schema(catalog):
    doc = asyncapi_document(catalog)
    meta = json.loads((FIXTURES / "asyncapi-3.0.0.schema.json").read_text())
    jsonschema.validate(doc, meta)
    assert {c["address"] for c in doc["channels"].values()} == set(catalog.topics)
    for message in doc["components"]["messages"].values():
        assert message["payload"]["schemaFormat"].startswith("application/vnd.apache.avro")


def test_asyncapi_cli_writes_parseable_yaml(tmp_path):
    out = tmp_path / "asyncapi.yaml"
    subprocess.run(
        [sys.executable, "-m", "streams.app.cli", "catalog", "--asyncapi", "-o", str(out)],
        check=True,
    )
    doc = yaml.safe_load(out.read_text())
    assert doc["asyncapi"] == "3.0.0"
    meta = json.loads((FIXTURES / "asyncapi-3.0.0.schema.json").read_text())
    jsonschema.validate(doc, meta)


@pytest.mark.parametrize(
    "retention,ms", [("7d", 604_800_000), ("12h", 43_200_000), ("forever", -1)]
)
def test_retention_is_converted_to_kafka_milliseconds(retention, ms):
    from streams.core.catalog import retention_ms

    assert retention_ms(retention) == ms


def test_asyncapi_validation_rejects_a_2x_style_operation(catalog):
    doc = asyncapi_document(catalog)
    first = next(iter(doc["operations"]))
    doc["operations"][first]["action"] = "publish"  # AsyncAPI 2.x wording, invalid in 3.0
    meta = json.loads((FIXTURES / "asyncapi-3.0.0.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, meta)


def test_asyncapi_says_how_each_process_runs(catalog):
    doc = asyncapi_document(catalog)
    touchpoints = doc["operations"]["consume_" + _channel_id("cust.touchpoints.v1")]
    runtimes = touchpoints["x-journeybus-runtime"]
    assert runtimes["streams.journeys"] == "batched"
    assert runtimes["duckdb sink"] == "batched"
    assert process_runtime("streams.activation (audiences)") == "faust"
    assert process_runtime("postgres-fulfillment source") == "connector"
    for operation in doc["operations"].values():
        assert set(operation["x-journeybus-runtime"].values()) <= {"batched", "faust", "connector"}
