"""``journeybus schemas register``: the catalogue into a Schema Registry, with its own ids.

Data written on the embedded default carries the catalogue's schema ids
(``schemas/catalog.json``); a registry that gave the same schemas other ids could not
decode it. So each revision is looked up first: already there with the catalogue's
id, nothing to do; there with another id, a loud failure naming both. A revision
not there yet is imported with its catalogue id and version (Confluent's IMPORT mode
on the subject, put back to READWRITE after); a registry that refuses that (no
import mode, the id taken by another schema) is a failure naming the revision,
never a silent registration under a new id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from streams.core.catalog import Catalog, SchemaRevision, TopicSpec
from streams.core.errors import FatalError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryMismatch(FatalError):
    """The registry holds a catalogue schema under another id, or refuses its id."""


def _body(revision: SchemaRevision, **extra: Any) -> dict[str, Any]:
    return {"schema": json.dumps(revision.raw), "schemaType": "AVRO", **extra}


def register_catalog(
    client: httpx.Client, catalog: Catalog, echo: Callable[[str], None] = print
) -> int:
    """Make the registry behind ``client`` hold every topic's revisions under the
    catalogue's ids; how many were imported. Raises ``RegistryMismatch``."""
    imported = 0
    for spec in sorted(catalog.topics.values(), key=lambda s: s.subject):
        for revision in catalog.schemas[spec.schema]:
            wanted = catalog.schema_id(revision)
            found = client.post(f"/subjects/{spec.subject}", json=_body(revision))
            if found.status_code == 200:
                have = found.json()["id"]
                if have != wanted:
                    raise RegistryMismatch(
                        f"{spec.subject} revision {revision.revision} has id {have} in the "
                        f"registry but {wanted} in schemas/catalog.json: data written with "
                        "either cannot be read through the other"
                    )
                echo(f"{spec.subject:50} revision {revision.revision} -> id {have} (present)")
                continue
            _import(client, spec, revision, wanted)
            imported += 1
            echo(f"{spec.subject:50} revision {revision.revision} -> id {wanted} (imported)")
    return imported


def _import(client: httpx.Client, spec: TopicSpec, revision: SchemaRevision, wanted: int) -> None:
    mode = client.put(f"/mode/{spec.subject}", params={"force": "true"}, json={"mode": "IMPORT"})
    try:
        if mode.status_code != 200:
            raise RegistryMismatch(
                f"{spec.subject}: the registry refused IMPORT mode ({mode.status_code} "
                f"{mode.text[:200]}), so revision {revision.revision} cannot get its catalogue "
                f"id {wanted}"
            )
        done = client.post(
            f"/subjects/{spec.subject}/versions",
            json=_body(revision, id=wanted, version=revision.revision),
        )
        if done.status_code != 200 or done.json().get("id") != wanted:
            raise RegistryMismatch(
                f"{spec.subject} revision {revision.revision}: importing it as id {wanted} "
                f"failed ({done.status_code} {done.text[:200]})"
            )
    finally:
        if mode.status_code == 200:
            client.put(f"/mode/{spec.subject}", json={"mode": "READWRITE"})


def registry_http(url: str, basic_auth: str | None) -> httpx.Client:
    """An HTTP client for the registry at ``url`` (``user:password`` basic auth)."""
    auth = tuple(basic_auth.split(":", 1)) if basic_auth else None
    return httpx.Client(
        base_url=url.rstrip("/"),
        auth=auth,  # type: ignore[arg-type]
        headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        timeout=30,
    )
