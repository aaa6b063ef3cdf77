"""Confluent wire format with fastavro: magic byte 0, 4-byte big-endian schema id, Avro binary.

Any team can decode journeybus topics with stock Schema Registry deserializers.
Schema ids come from the committed catalogue (``schemas/catalog.json``) in the
embedded default, or from a Schema Registry when ``SCHEMA_REGISTRY_URL`` is set.

Decoded timestamps are epoch milliseconds (``int``), as written: the pipeline
computes with them, and skipping datetime conversion is cheaper. Decoding a
record written with an older revision resolves it to the topic's newest
revision (new fields get their defaults).
"""

from __future__ import annotations

import copy
import io
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import fastavro

from streams.core.catalog import Catalog, SchemaRevision, TopicSpec, default_catalog
from streams.core.errors import DecodeError, FatalError, InvalidRecord, Retriable
from streams.core.settings import Settings

MAGIC = 0
HEADER = struct.Struct(">bI")


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without logicalType annotations (timestamps stay ints)."""
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def _parse_plain(raw: dict[str, Any]) -> dict[str, Any]:
    return fastavro.parse_schema(strip_logical_types(copy.deepcopy(raw)))


PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
# the Python type fastavro writes for each complex Avro type
PYTHON_TYPES = {
    "record": dict,
    "error": dict,
    "map": dict,
    "array": list,
    "enum": str,
    "fixed": bytes,
}
Tagger = Callable[[Any], Any]


def union_tagger(schema: Any, named: dict[str, Any] | None = None) -> Tagger | None:
    """A function returning a datum of ``schema`` with each non-null value of an
    optional complex type (``["null", record | array | map | enum | fixed]``) in
    fastavro's tuple notation, ``(branch name, value)``; None if the schema has none.

    Why: to choose a union's branch, fastavro validates the value against each
    branch, so an optional record is walked twice and a nested one once per level
    (a stitched touchpoint: 52 µs to encode, 2x its decode). Named, the branch is
    taken as is; the writer still rejects a value that does not fit it. The input
    is not modified: tagged records are shallow copies.
    """
    named = {} if named is None else named
    if isinstance(schema, str):
        return union_tagger(named[schema], named) if schema in named else None
    if isinstance(schema, list):
        complex_ = [b for b in schema if _type_name(b) not in PRIMITIVES]
        if len(complex_) != 1 or len(schema) != 2 or "null" not in schema:
            return None  # several complex branches: let fastavro choose
        branch = complex_[0]
        if isinstance(branch, str) and branch not in named:
            return None  # a name this walk has not seen defined: let fastavro choose
        name = _branch_name(branch)
        kind = (named[branch] if isinstance(branch, str) else branch)["type"]
        # Only a value of the branch's Python type is tagged: anything else (a string
        # where an array belongs) is left to fastavro's validation, which rejects it.
        fits = PYTHON_TYPES[kind]
        inner = union_tagger(branch, named) or (lambda v: v)
        return lambda v: (name, inner(v)) if isinstance(v, fits) else v
    if not isinstance(schema, dict):
        return None
    kind = schema["type"]
    if kind in ("record", "error", "enum", "fixed"):
        named[schema["name"]] = schema
    if kind in ("record", "error"):
        fields = [(f["name"], union_tagger(f["type"], named)) for f in schema["fields"]]
        taggers = [(name, t) for name, t in fields if t is not None]
        if not taggers:
            return None

        def tag_record(rec: Any) -> Any:
            if not isinstance(rec, dict):
                return rec  # the writer reports it
            out = dict(rec)
            for name, tag in taggers:
                if name in out:
                    out[name] = tag(out[name])
            return out

        return tag_record
    if kind == "array":
        items = union_tagger(schema["items"], named)
        return (
            None if items is None else lambda v: [items(x) for x in v] if isinstance(v, list) else v
        )
    if kind == "map":
        values = union_tagger(schema["values"], named)
        return (
            None
            if values is None
            else lambda v: {k: values(x) for k, x in v.items()} if isinstance(v, dict) else v
        )
    if isinstance(kind, (dict, list)) or kind in named:
        return union_tagger(kind, named)
    return None


def _type_name(schema: Any) -> str:
    return (
        schema
        if isinstance(schema, str)
        else schema.get("type")
        if isinstance(schema, dict)
        else "union"
    )


def _branch_name(schema: Any) -> str:
    """The name tuple notation uses for a union branch: a named type's full name,
    else its type."""
    if isinstance(schema, str):
        return schema
    return (
        schema["name"] if schema["type"] in ("record", "error", "enum", "fixed") else schema["type"]
    )


class SchemaSource(Protocol):
    """Where schema ids come from: the committed catalogue or a Schema Registry."""

    def writer_id(self, topic: TopicSpec, revision: SchemaRevision) -> int: ...

    def writer_schema(self, schema_id: int) -> dict[str, Any] | None:
        """The raw (JSON) schema with that id, or None when unknown."""
        ...


@dataclass
class CatalogSchemaSource:
    """Schema ids from ``schemas/catalog.json`` (the embedded default)."""

    catalog: Catalog

    def __post_init__(self) -> None:
        self._by_id = {sid: rev.raw for sid, rev in self.catalog.revision_by_id().items()}

    def writer_id(self, topic: TopicSpec, revision: SchemaRevision) -> int:
        return self.catalog.schema_id(revision)

    def writer_schema(self, schema_id: int) -> dict[str, Any] | None:
        return self._by_id.get(schema_id)


@dataclass
class RegistrySchemaSource:
    """Schema ids from a Confluent-compatible Schema Registry.

    ``auto_register`` registers the catalogue schema under the topic's subject
    when it is not there yet (the embedded and demo set-ups); production
    deployments register with ``journeybus schemas register`` and may turn it off.
    """

    client: Any  # confluent_kafka.schema_registry.SchemaRegistryClient
    auto_register: bool = True
    _ids: dict[tuple[str, str], int] = field(default_factory=dict)

    def writer_id(self, topic: TopicSpec, revision: SchemaRevision) -> int:
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        key = (topic.subject, revision.fingerprint)
        if key not in self._ids:
            schema = Schema(json.dumps(revision.raw), "AVRO")
            try:
                if self.auto_register:
                    self._ids[key] = self.client.register_schema(topic.subject, schema)
                else:
                    self._ids[key] = self.client.lookup_schema(topic.subject, schema).schema_id
            except SchemaRegistryError as exc:
                raise FatalError(f"schema registry refused {topic.subject}: {exc}") from exc
            except Exception as exc:  # connection errors: the registry may come back
                raise Retriable(f"schema registry unreachable for {topic.subject}: {exc}") from exc
        return self._ids[key]

    def writer_schema(self, schema_id: int) -> dict[str, Any] | None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return json.loads(self.client.get_schema(schema_id).schema_str)
        except SchemaRegistryError:
            return None


class TopicCodec:
    """Encodes and decodes the values of one topic.

    ``encode`` validates strictly (unknown fields and wrong types raise
    ``InvalidRecord``); ``decode`` raises ``DecodeError`` naming the topic,
    partition and offset for a wrong magic byte, an unknown schema id, or bytes
    that are not the Avro record they claim to be.
    """

    def __init__(
        self, topic: TopicSpec, revision: SchemaRevision, schema_id: int, source: SchemaSource
    ) -> None:
        self.topic = topic
        self.revision = revision
        self.schema_id = schema_id
        self._source = source
        self._header = HEADER.pack(MAGIC, schema_id)
        self._writer = _parse_plain(revision.raw)
        self._reader = self._writer
        self._tag = union_tagger(self._writer) or (lambda record: record)
        # schema id -> parsed writer schema (None: same as reader, no resolution)
        self._writers: dict[int, dict[str, Any] | None] = {schema_id: None}

    # -- encode ------------------------------------------------------------
    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        try:
            fastavro.schemaless_writer(
                buf, self._writer, self._tag(record), strict_allow_default=True
            )
        except (
            ValueError,
            TypeError,
            AttributeError,
            KeyError,
            OverflowError,
            struct.error,
        ) as exc:
            raise InvalidRecord(
                "schema_violation",
                f"cannot encode for {self.topic.name}: {exc}",
                topic=self.topic.name,
            ) from None
        return buf.getvalue()

    def encode_many(self, records: Iterable[dict[str, Any]]) -> list[bytes]:
        return [self.encode(r) for r in records]

    # -- decode ------------------------------------------------------------
    def _writer_for(
        self, schema_id: int, partition: int | None, offset: int | None
    ) -> dict[str, Any] | None:
        if schema_id in self._writers:
            return self._writers[schema_id]
        raw = self._source.writer_schema(schema_id)
        if raw is None:
            raise DecodeError(
                f"unknown schema id {schema_id}",
                topic=self.topic.name,
                partition=partition,
                offset=offset,
            )
        parsed = _parse_plain(raw)
        self._writers[schema_id] = parsed
        return parsed

    def decode(
        self, data: bytes | None, partition: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        where = {"topic": self.topic.name, "partition": partition, "offset": offset}
        if not data or len(data) < HEADER.size:
            raise DecodeError(f"{len(data or b'')} bytes is too short for a framed record", **where)
        if data[0] != MAGIC:
            raise DecodeError(f"wrong magic byte 0x{data[0]:02x} (expected 0x00)", **where)
        schema_id = int.from_bytes(data[1:5], "big")
        writer = self._writer_for(schema_id, partition, offset)
        buf = io.BytesIO(data)
        buf.seek(HEADER.size)
        try:
            if writer is None:
                record = fastavro.schemaless_reader(buf, self._reader, None)
            else:
                record = fastavro.schemaless_reader(buf, writer, self._reader)
        except Exception as exc:  # fastavro raises EOFError, UnicodeDecodeError, IndexError...
            raise DecodeError(
                f"not a valid {self.revision.name} record: {type(exc).__name__}: {exc}", **where
            ) from None
        if buf.tell() != len(data):
            raise DecodeError(f"{len(data) - buf.tell()} trailing bytes after the record", **where)
        return record  # type: ignore[return-value]

    def decode_many(self, values: Iterable[bytes]) -> tuple[list[dict], list[DecodeError]]:
        """Decode a batch; returns the records and the errors (in input order each)."""
        records: list[dict] = []
        errors: list[DecodeError] = []
        for value in values:
            try:
                records.append(self.decode(value))
            except DecodeError as exc:
                errors.append(exc)
        return records, errors


class Codec:
    """Codecs for every catalogue topic, built lazily and cached."""

    def __init__(self, catalog: Catalog, source: SchemaSource) -> None:
        self.catalog = catalog
        self.source = source
        self._codecs: dict[str, TopicCodec] = {}

    def for_topic(self, name: str) -> TopicCodec:
        codec = self._codecs.get(name)
        if codec is None:
            spec = self.catalog.topic(name)
            revision = self.catalog.latest(spec.schema)
            codec = TopicCodec(spec, revision, self.source.writer_id(spec, revision), self.source)
            self._codecs[name] = codec
        return codec

    def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        return self.for_topic(topic).encode(record)

    def decode(
        self, topic: str, data: bytes, partition: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        return self.for_topic(topic).decode(data, partition, offset)


def registry_client(url: str, settings: Settings) -> Any:
    """A confluent-kafka Schema Registry client (``mock://`` gives an in-memory one)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf: dict[str, Any] = {"url": url}
    auth = settings.schema_registry.basic_auth_user_info
    if auth:
        conf["basic.auth.user.info"] = auth.get_secret_value()
    return SchemaRegistryClient.new_client(conf)


def make_codec(settings: Settings, catalog: Catalog | None = None) -> Codec:
    """The codec every process uses: registry ids if configured, else the catalogue's."""
    catalog = catalog or default_catalog()
    if settings.schema_registry.url:
        return Codec(
            catalog, RegistrySchemaSource(registry_client(settings.schema_registry.url, settings))
        )
    return Codec(catalog, CatalogSchemaSource(catalog))
