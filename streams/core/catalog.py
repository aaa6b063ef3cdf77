"""The schema catalogue: Avro schema revisions, topic specs and schema ids.

Built from the files in ``schemas/``; nothing is listed twice by hand. A topic
file names its value schema; the schema's newest revision is what producers
write, and every older revision stays readable (backward compatibility is
checked by the tests and by ``journeybus schemas check``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import fastavro
import yaml
from fastavro.schema import to_parsing_canonical_form

from schemas import SCHEMAS_DIR
from streams.core.errors import FatalError

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class SchemaRevision:
    """One published revision of an Avro schema (immutable once in catalog.json)."""

    name: str
    revision: int
    raw: dict[str, Any]
    path: Path

    @cached_property
    def parsed(self) -> dict[str, Any]:
        return fastavro.parse_schema(self.raw)

    @cached_property
    def canonical(self) -> str:
        return to_parsing_canonical_form(self.raw)

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical.encode()).hexdigest()


@dataclass(frozen=True)
class TopicSpec:
    """What a downstream team needs to know about a topic (from schemas/topics)."""

    name: str
    owner: str
    description: str
    schema: str
    key: dict[str, str]
    partitions: int
    retention: str
    cleanup_policy: str
    compatibility: str
    producers: list[str]
    consumers: list[str]
    pii: list[str]
    dlq: bool
    guarantees: str
    dead_letter_of: str | None = None

    @property
    def subject(self) -> str:
        """Schema Registry subject (TopicNameStrategy)."""
        return f"{self.name}-value"

    @property
    def dlq_topic(self) -> str | None:
        return f"{self.name}{DLQ_SUFFIX}" if self.dlq else None

    @property
    def retention_ms(self) -> int:
        return retention_ms(self.retention)


def retention_ms(text: str) -> int:
    """'7d' / '12h' / 'forever' → milliseconds (-1 = forever), as Kafka's retention.ms."""
    if text == "forever":
        return -1
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    raise FatalError(f"bad retention {text!r}: use e.g. 7d, 12h, 30m or forever")


@dataclass(frozen=True)
class ChangelogSpec:
    """The changelog topic of one stateful stage's state for one input topic."""

    name: str
    stage: str
    input: str
    retention: str
    cleanup_policy: str

    @property
    def retention_ms(self) -> int:
        return retention_ms(self.retention)


@dataclass
class Catalog:
    """All schemas, topics and schema ids of the bus."""

    root: Path
    schemas: dict[str, list[SchemaRevision]] = field(default_factory=dict)
    topics: dict[str, TopicSpec] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # fingerprint -> schema id
    changelogs: dict[tuple[str, str], ChangelogSpec] = field(default_factory=dict)

    # -- lookups -----------------------------------------------------------
    def latest(self, schema_name: str) -> SchemaRevision:
        try:
            return self.schemas[schema_name][-1]
        except KeyError:
            raise FatalError(f"no schema named {schema_name!r} in {self.root}") from None

    def topic(self, name: str) -> TopicSpec:
        try:
            return self.topics[name]
        except KeyError:
            raise FatalError(f"unknown topic {name!r}: not in the catalogue") from None

    def changelog(self, stage: str, input_topic: str) -> ChangelogSpec:
        """The changelog of ``stage``'s state for ``input_topic`` (state-changelogs.yaml)."""
        try:
            return self.changelogs[(stage, input_topic)]
        except KeyError:
            raise FatalError(
                f"stage {stage!r} keeps state for {input_topic} but "
                "schemas/topics/state-changelogs.yaml names no changelog for it"
            ) from None

    def value_schema(self, topic: str) -> SchemaRevision:
        return self.latest(self.topic(topic).schema)

    def schema_id(self, revision: SchemaRevision) -> int:
        try:
            return self.ids[revision.fingerprint]
        except KeyError:
            raise FatalError(
                f"{revision.name} revision {revision.revision} has no id in catalog.json; "
                "run `journeybus schemas catalog --write`"
            ) from None

    def revision_by_id(self) -> dict[int, SchemaRevision]:
        by_fp = {rev.fingerprint: rev for revs in self.schemas.values() for rev in revs}
        return {sid: by_fp[fp] for fp, sid in self.ids.items() if fp in by_fp}

    def examples(self, topic: str) -> list[tuple[Path, Any]]:
        folder = self.root / "examples" / topic
        return [(p, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]

    # -- schema ids --------------------------------------------------------
    def assign_ids(self) -> dict[str, Any]:
        """The catalog.json document: existing ids kept, new revisions numbered after them."""
        next_id = max(self.ids.values(), default=0) + 1
        entries = []
        ids = dict(self.ids)
        for name in sorted(self.schemas):
            for rev in self.schemas[name]:
                if rev.fingerprint not in ids:
                    ids[rev.fingerprint] = next_id
                    next_id += 1
                entries.append(
                    {
                        "id": ids[rev.fingerprint],
                        "schema": name,
                        "revision": rev.revision,
                        "fingerprint": rev.fingerprint,
                    }
                )
        entries.sort(key=lambda e: e["id"])
        return {
            "comment": "Schema ids of the embedded default; generated by "
            "`journeybus schemas catalog --write`. Ids never change.",
            "schemas": entries,
        }


def _load_schemas(root: Path) -> dict[str, list[SchemaRevision]]:
    out: dict[str, list[SchemaRevision]] = {}
    for folder in sorted(p for p in (root / "avro").iterdir() if p.is_dir()):
        revs = []
        for path in folder.glob("*.avsc"):
            if not path.stem.isdigit():
                raise FatalError(f"{path}: revision files are named <number>.avsc")
            revs.append(
                SchemaRevision(folder.name, int(path.stem), json.loads(path.read_text()), path)
            )
        revs.sort(key=lambda r: r.revision)
        if [r.revision for r in revs] != list(range(1, len(revs) + 1)):
            raise FatalError(f"{folder}: revisions must be numbered 1..N without gaps")
        out[folder.name] = revs
    return out


def _load_changelogs(root: Path) -> dict[tuple[str, str], ChangelogSpec]:
    doc = yaml.safe_load((root / "topics" / "state-changelogs.yaml").read_text())
    return {
        (stage, topic): ChangelogSpec(
            doc["name"].replace("{topic}", topic).replace("{stage}", stage),
            stage,
            topic,
            doc["retention"],
            doc["cleanup_policy"],
        )
        for stage, inputs in doc["stores"].items()
        for topic in inputs
    }


def _load_topics(root: Path) -> dict[str, TopicSpec]:
    topics: dict[str, TopicSpec] = {}
    dlq_template: dict[str, Any] | None = None
    for path in sorted((root / "topics").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc.get("family") == "changelog":  # _load_changelogs
            continue
        if doc.pop("pattern", False):
            dlq_template = doc
            continue
        if path.stem != doc["name"]:
            raise FatalError(f"{path}: file name must equal the topic name {doc['name']!r}")
        topics[doc["name"]] = TopicSpec(**doc)
    if dlq_template is None:
        raise FatalError(f"{root / 'topics'}: the dead-letter topic family file is missing")
    for spec in list(topics.values()):
        if spec.dlq:
            name = f"{spec.name}{DLQ_SUFFIX}"
            doc = {
                k: (v.replace("{topic}", spec.name) if isinstance(v, str) else v)
                for k, v in dlq_template.items()
            }
            doc["name"] = name
            topics[name] = TopicSpec(**doc, dead_letter_of=spec.name)
    return dict(sorted(topics.items()))


def load_catalog(root: Path = SCHEMAS_DIR) -> Catalog:
    """Read the catalogue from ``root`` (default: the installed ``schemas`` package)."""
    schemas = _load_schemas(root)
    topics = _load_topics(root)
    for spec in topics.values():
        if spec.schema not in schemas:
            raise FatalError(f"topic {spec.name} names unknown schema {spec.schema!r}")
    ids: dict[str, int] = {}
    catalog_file = root / "catalog.json"
    if catalog_file.exists():
        for entry in json.loads(catalog_file.read_text())["schemas"]:
            ids[entry["fingerprint"]] = int(entry["id"])
    return Catalog(
        root=root, schemas=schemas, topics=topics, ids=ids, changelogs=_load_changelogs(root)
    )


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The installed catalogue, loaded once per process."""
    return load_catalog()


def record_key(spec: TopicSpec, value: dict[str, Any]) -> str | None:
    """The topic's key of ``value``: its key field, else its fallback field."""
    for name in (spec.key.get("field"), spec.key.get("fallback")):
        if name and value.get(name):
            return str(value[name])
    return None
