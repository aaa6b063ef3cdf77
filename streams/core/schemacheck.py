"""Checks of the schema catalogue, shared by the tests and ``journeybus schemas check``."""

from __future__ import annotations

import io
import itertools

import fastavro

from streams.core.catalog import Catalog
from streams.core.compat import incompatibilities
from streams.core.errors import InvalidRecord
from streams.core.jsonavro import from_json


def check_examples(catalog: Catalog) -> list[str]:
    """Each example converts, validates and survives an encode/decode round trip."""
    problems = []
    for name in catalog.topics:
        revision = catalog.value_schema(name)
        for path, value in catalog.examples(name):
            try:
                record = from_json(revision.raw, value)
                buf = io.BytesIO()
                fastavro.schemaless_writer(buf, revision.parsed, record, strict=True)
                buf.seek(0)
                fastavro.schemaless_reader(buf, revision.parsed, None)
            except (InvalidRecord, ValueError, TypeError) as exc:
                problems.append(f"{path}: {exc}")
    return problems


def check_evolution(catalog: Catalog) -> list[str]:
    """Each revision is compatible with the one before under its topics' modes."""
    modes = {spec.schema: spec.compatibility for spec in catalog.topics.values()}
    problems = []
    for name, revisions in catalog.schemas.items():
        for old, new in itertools.pairwise(revisions):
            for err in incompatibilities(new.raw, old.raw, modes.get(name, "BACKWARD")):
                problems.append(f"{name} revision {new.revision} vs {old.revision}: {err}")
    return problems


def check_ids(catalog: Catalog) -> list[str]:
    """Every revision has an id in catalog.json and no id was reassigned."""
    problems = []
    for revisions in catalog.schemas.values():
        for rev in revisions:
            if rev.fingerprint not in catalog.ids:
                problems.append(
                    f"{rev.name} revision {rev.revision} has no id in catalog.json "
                    "(a published revision was edited, or ids were not assigned)"
                )
    if len(set(catalog.ids.values())) != len(catalog.ids):
        problems.append("catalog.json assigns one id to two schemas")
    return problems


def check_catalog(catalog: Catalog) -> list[str]:
    return check_examples(catalog) + check_evolution(catalog) + check_ids(catalog)
