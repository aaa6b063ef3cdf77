"""PII at ingestion: direct-tagged fields of raw records, before they are published."""

import orjson

from connectors.pii import direct_fields, protect, unprotected
from streams.core.catalog import default_catalog
from streams.core.keys import contact_node, hash_contact, node

CATALOG = default_catalog()


def raw_schema(topic: str) -> dict:
    return CATALOG.value_schema(topic).raw


def test_contact_data_is_hashed_ips_dropped_and_traits_reduced():
    record = {
        "email": " Jo@Example.org ",
        "phone": "+447700900123",
        "context": {"ip": "203.0.113.9", "locale": "en-GB"},
        "traits_json": orjson.dumps(
            {"email": "jo@example.org", "name": "Jo", "city": "Leeds", "country": "GB"}
        ).decode(),
    }
    paths = [("email",), ("phone",), ("context", "ip"), ("traits_json",)]
    protect(paths, record)
    assert record["email"] == hash_contact("jo@example.org")
    assert record["phone"] == hash_contact("+447700900123")
    assert record["context"] == {"ip": None, "locale": "en-GB"}
    assert orjson.loads(record["traits_json"]) == {"city": "Leeds", "country": "GB"}
    again = dict(record)
    protect(paths, again)  # a hash is not hashed twice
    assert again == record


def test_traits_without_declared_ones_and_missing_fields_are_fine():
    record = {"traits_json": '{"name": "Jo"}', "context": None, "email": None}
    protect([("traits_json",), ("context", "ip"), ("email",)], record)
    assert record == {"traits_json": None, "context": None, "email": None}
    broken = {"traits_json": "{not json"}
    protect([("traits_json",)], broken)
    assert broken == {"traits_json": None}


def test_the_identity_graph_links_a_hashed_and_a_plain_email_alike():
    hashed = hash_contact("jo@example.org")
    assert contact_node("email_hash", "jo@example.org") == node("email_hash", hashed)
    assert contact_node("email_hash", hashed) == node("email_hash", hashed)


def test_only_free_text_is_kept_as_sent():
    kept = {
        topic: unprotected(raw_schema(topic))
        for topic in CATALOG.topics
        if topic.endswith(".raw.v1")
    }
    assert {t: p for t, p in kept.items() if p} == {"cust.social.raw.v1": [("text",)]}
    assert ("context", "ip") in direct_fields(raw_schema("cust.clickstream.raw.v1"))
