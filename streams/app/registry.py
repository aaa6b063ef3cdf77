"""A Confluent-compatible Schema Registry (read API) that serves the schema catalogue.

The embedded default writes the catalogue's own schema ids (``schemas/catalog.json``)
into every message; this registry answers for exactly those ids, so a stock
``confluent_kafka.schema_registry.SchemaRegistryClient`` with ``AvroDeserializer``
(or any Confluent-compatible reader: Faust codecs, kcat ``-s avro``, ksqlDB) decodes
every topic with no priming. ``journeybus up`` starts it (``--registry-port``,
default 8081); ``journeybus registry serve`` runs it alone.

Routes (Confluent's): ``GET /schemas/ids/{id}`` (and ``/schema``, ``/versions``),
``/schemas/types``, ``/subjects``, ``/subjects/{subject}/versions``,
``/subjects/{subject}/versions/{version|latest}`` (and ``/schema``),
``POST /subjects/{subject}`` (which version is this schema), ``/config``,
``/config/{subject}`` and ``/mode``. Subjects are ``<topic>-value``
(TopicNameStrategy); a subject's versions are its schema's revisions, oldest first.

Guarantees: read-only (the catalogue is the source of truth, changed by commits, not
requests): registering a schema the subject already has answers its id, as a
registry would; any other schema is refused with Confluent's 42205 "read-only"
error, never given a new id. Errors are ``{"error_code", "message"}`` with
Confluent's codes (40401 subject, 40402 version, 40403 schema not found).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web
from fastavro.schema import to_parsing_canonical_form

from connectors.web import serving, until
from streams.core.catalog import Catalog, SchemaRevision

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def _answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> web.Response:
    return _answer({"error_code": code, "message": message}, status)


def _fixed(body: Any) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler that always answers ``body``."""

    async def handle(_request: web.Request) -> web.Response:
        return _answer(body)

    return handle


class CatalogRegistry:
    """The catalogue as a Schema Registry: ids, subjects and versions (read-only)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.by_id = catalog.revision_by_id()
        # subject -> its schema's revisions (version n = revision n) and compatibility
        self.subjects: dict[str, list[SchemaRevision]] = {}
        self.compatibility: dict[str, str] = {}
        for spec in sorted(catalog.topics.values(), key=lambda s: s.subject):
            self.subjects[spec.subject] = catalog.schemas[spec.schema]
            self.compatibility[spec.subject] = spec.compatibility

    def app(self) -> web.Application:
        app = web.Application()
        get = app.router.add_get
        get("/", _fixed({}))
        get("/schemas/types", _fixed(["AVRO"]))
        get("/schemas/ids/{id}", self._schema_by_id)
        get("/schemas/ids/{id}/schema", self._schema_by_id)
        get("/schemas/ids/{id}/versions", self._versions_of_id)
        get("/subjects", _fixed(list(self.subjects)))
        get("/subjects/{subject}/versions", self._versions)
        get("/subjects/{subject}/versions/{version}", self._version)
        get("/subjects/{subject}/versions/{version}/schema", self._version)
        app.router.add_post("/subjects/{subject}", partial(self._posted, register=False))
        app.router.add_post("/subjects/{subject}/versions", partial(self._posted, register=True))
        get("/config", _fixed({"compatibilityLevel": "BACKWARD"}))
        get("/config/{subject}", self._config)
        get("/mode", _fixed({"mode": "READONLY"}))
        return app

    # -- lookups -----------------------------------------------------------------------
    def _revision_of_id(self, request: web.Request) -> SchemaRevision | None:
        try:
            return self.by_id.get(int(request.match_info["id"]))
        except ValueError:
            return None

    async def _schema_by_id(self, request: web.Request) -> web.Response:
        revision = self._revision_of_id(request)
        if revision is None:
            return _error(404, 40403, "Schema not found")
        if request.path.endswith("/schema"):
            return _answer(revision.raw)
        return _answer({"schema": json.dumps(revision.raw)})

    async def _versions_of_id(self, request: web.Request) -> web.Response:
        revision = self._revision_of_id(request)
        if revision is None:
            return _error(404, 40403, "Schema not found")
        return _answer(
            [
                {"subject": subject, "version": revision.revision}
                for subject, revisions in self.subjects.items()
                if revision in revisions
            ]
        )

    def _subject(self, request: web.Request) -> list[SchemaRevision] | web.Response:
        revisions = self.subjects.get(request.match_info["subject"])
        if revisions is None:
            return _error(404, 40401, f"Subject '{request.match_info['subject']}' not found.")
        return revisions

    async def _versions(self, request: web.Request) -> web.Response:
        revisions = self._subject(request)
        if isinstance(revisions, web.Response):
            return revisions
        return _answer([r.revision for r in revisions])

    def _entry(self, subject: str, revision: SchemaRevision) -> dict[str, Any]:
        return {
            "subject": subject,
            "version": revision.revision,
            "id": self.catalog.schema_id(revision),
            "schema": json.dumps(revision.raw),
        }

    async def _version(self, request: web.Request) -> web.Response:
        revisions = self._subject(request)
        if isinstance(revisions, web.Response):
            return revisions
        wanted = request.match_info["version"]
        if wanted in ("latest", "-1"):
            revision = revisions[-1]
        else:
            found = [r for r in revisions if str(r.revision) == wanted]
            if not found:
                return _error(404, 40402, f"Version {wanted} not found.")
            revision = found[0]
        if request.path.endswith("/schema"):
            return _answer(revision.raw)
        return _answer(self._entry(request.match_info["subject"], revision))

    async def _config(self, request: web.Request) -> web.Response:
        revisions = self._subject(request)
        if isinstance(revisions, web.Response):
            return revisions
        return _answer({"compatibilityLevel": self.compatibility[request.match_info["subject"]]})

    async def _matching(
        self, request: web.Request
    ) -> tuple[str, SchemaRevision | None] | web.Response:
        """The subject and its revision equal (in Avro's canonical form) to the posted
        schema, or the error to answer."""
        revisions = self._subject(request)
        if isinstance(revisions, web.Response):
            return revisions
        try:
            body = await request.json()
            canonical = to_parsing_canonical_form(json.loads(body["schema"]))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(422, 42201, f"Invalid schema: {exc}")
        if body.get("schemaType", "AVRO") != "AVRO":
            return _error(422, 42201, "only AVRO schemas are served")
        found = [r for r in revisions if r.canonical == canonical]
        return request.match_info["subject"], (found[0] if found else None)

    async def _posted(self, request: web.Request, register: bool) -> web.Response:
        """``POST /subjects/{s}`` (lookup: the version and id) and ``POST
        /subjects/{s}/versions`` (register: the id of a schema the subject has, else
        the read-only refusal)."""
        matched = await self._matching(request)
        if isinstance(matched, web.Response):
            return matched
        subject, revision = matched
        if revision is None and not register:
            return _error(404, 40403, "Schema not found")
        if revision is None:
            return _error(
                422,
                42205,
                f"Subject {subject} is in read-only mode: the catalogue's schemas are "
                "changed by adding a revision under schemas/avro, not by registering",
            )
        if register:
            return _answer({"id": self.catalog.schema_id(revision)})
        return _answer(self._entry(subject, revision))


async def serve_registry(
    catalog: Catalog, host: str, port: int, stop: threading.Event, on_port=None
) -> None:
    """Serve the catalogue's registry until ``stop`` is set; ``on_port(port)`` once bound."""
    async with serving(CatalogRegistry(catalog).app(), host, port) as bound:
        if on_port is not None:
            on_port(bound)
        await until(stop)
