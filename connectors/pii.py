"""PII at ingestion: what a source does to fields tagged ``"pii": "direct"`` before it
publishes a record (``Publisher``), by what each field is for:

- contact data (``email``, ``phone``): replaced by its SHA-256 (``hash_contact``,
  the identity graph's form), so identities still link and no address reaches a
  topic; a value that already is a SHA-256 stays as it is;
- IP addresses: dropped, nothing downstream uses them (the collector's rate limit
  reads the address before);
- ``traits_json``: reduced to the declared traits profiles keep (city, country,
  preferences), so names, emails and birthdays never reach a topic;
- free text (a social post's ``text``): kept, since sentiment needs it; normalise
  publishes only the score, and the sink hashes or drops the column.

A field this module has no rule for is left alone and listed by ``unprotected``
(a schema test keeps that list to the free text above).
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.core.keys import hash_contact, is_contact_hash
from streams.normalise.logic import DECLARED_TRAITS

CONTACT = ("email", "phone")
DROPPED = ("ip",)
TRAITS = "traits_json"


def direct_fields(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the ``direct``-tagged fields of a raw Avro schema (records nest)."""
    if isinstance(schema, list):
        return [p for branch in schema for p in direct_fields(branch, path)]
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return []
    out = []
    for fld in schema["fields"]:
        here = (*path, fld["name"])
        if fld.get("pii") == "direct":
            out.append(here)
        out += direct_fields(fld["type"], here)
    return out


_PATHS: dict[tuple[str, int], list[tuple[str, ...]]] = {}


def protect_revision(revision: Any, record: dict[str, Any]) -> dict[str, Any]:
    """``protect`` with the direct fields of a catalogue ``SchemaRevision`` (found once
    per revision)."""
    key = (revision.name, revision.revision)
    paths = _PATHS.get(key)
    if paths is None:
        paths = _PATHS[key] = direct_fields(revision.raw)
    return protect(paths, record)


def unprotected(schema: dict[str, Any]) -> list[tuple[str, ...]]:
    """Direct fields no rule covers (kept as sent)."""
    rules = (*CONTACT, *DROPPED, TRAITS)
    return [p for p in direct_fields(schema) if p[-1] not in rules]


def _declared(traits_json: str | None) -> str | None:
    try:
        traits = orjson.loads(traits_json) if traits_json else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(traits, dict):
        return None
    kept = {k: traits[k] for k in DECLARED_TRAITS if traits.get(k) not in (None, "")}
    return orjson.dumps(kept).decode() if kept else None


def protect(paths: list[tuple[str, ...]], record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (Avro form) with its direct fields at ``paths`` protected; the record
    is changed in place and returned."""
    for path in paths:
        parent: Any = record
        for name in path[:-1]:
            parent = parent.get(name) if isinstance(parent, dict) else None
        field = path[-1]
        if not isinstance(parent, dict) or parent.get(field) in (None, ""):
            continue
        value = parent[field]
        if field in CONTACT and isinstance(value, str) and not is_contact_hash(value):
            parent[field] = hash_contact(value)
        elif field in DROPPED:
            parent[field] = None
        elif field == TRAITS:
            parent[field] = _declared(value)
    return record
