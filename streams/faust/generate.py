"""Generates ``streams/faust/models.py``: a ``faust.Record`` per Avro record of the catalogue.

    python -m streams.faust.generate          # rewrite models.py from schemas/avro
    python -m streams.faust.generate --check  # exit 1 when models.py is out of date

Each topic's newest schema revision becomes typed classes (nested records too) with
the schema's docs in their docstrings. Avro types map to Python types as the
runtime's codec decodes them: ``long`` timestamps stay epoch milliseconds (``int``),
enums are ``str`` (their symbols listed in the doc), ``[null, T]`` is ``T | None``.
A field with a default keeps it, except empty arrays and maps: a Faust model
shares a mutable default between instances, so those fields are required (the
decoder always fills them). A nested record defined differently by two schemas
gets the name of the record that holds it as a prefix.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.core.catalog import Catalog, default_catalog

OUTPUT = Path(__file__).with_name("models.py")
PRIMITIVE_TYPES = {
    "null": "None",
    "boolean": "bool",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "bytes": "bytes",
    "string": "str",
}
WIDTH = 100
HEADER = '''"""Typed Faust models of every journeybus topic's value, generated from schemas/avro.

Do not edit: ``python -m streams.faust.generate`` rewrites this file from the schemas
(``make models``), and a test fails when it is out of date. ``TOP_LEVEL`` maps each
schema's full Avro name to its model; ``streams.faust.topics`` gives every catalogue
topic its model as value type.

Timestamps are epoch milliseconds (``int``), as the runtime's codec decodes them.
"""

from __future__ import annotations

import faust
'''


@dataclass
class ModelClass:
    """One generated class: its name, docstring and field lines (required first)."""

    name: str
    doc: str
    required: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)


class ModelWriter:
    """Walks Avro schemas and collects the classes in dependency order."""

    def __init__(self) -> None:
        self.classes: list[ModelClass] = []
        self._by_shape: dict[str, str] = {}  # canonical definition → class name
        self._taken: set[str] = set()
        self._named: dict[str, Any] = {}  # full Avro name → definition, per schema
        self.top_level: dict[str, str] = {}  # full Avro name of a schema → class name

    def add_schema(self, raw: dict[str, Any]) -> None:
        self._named = {}
        full = full_name(raw, "")
        self.top_level[full] = self._record(raw, "", "")

    # -- types -------------------------------------------------------------
    def _annotation(self, schema: Any, namespace: str, holder: str) -> tuple[str, str]:
        """The annotation of ``schema`` and a line for the docstring (may be empty)."""
        if isinstance(schema, str):
            if schema in PRIMITIVE_TYPES:
                return PRIMITIVE_TYPES[schema], ""
            full = schema if "." in schema else f"{namespace}.{schema}".lstrip(".")
            definition = self._named.get(full) or self._named.get(schema)
            if definition is None:
                raise ValueError(f"unknown Avro type {schema!r}")
            return self._annotation(definition, namespace, holder)
        if isinstance(schema, list):
            branches = [self._annotation(b, namespace, holder) for b in schema]
            notes = " ".join(note for _, note in branches if note)
            annotations = [a for a, _ in branches]
            # None last, as in Optional: ``int | None``
            ordered = [a for a in annotations if a != "None"] + ["None"] * ("None" in annotations)
            return " | ".join(dict.fromkeys(ordered)), notes
        kind = schema["type"]
        if isinstance(kind, (dict, list)):
            return self._annotation(kind, namespace, holder)
        if schema.get("logicalType") in ("timestamp-millis", "local-timestamp-millis"):
            return "int", "(epoch milliseconds)"
        if kind in PRIMITIVE_TYPES:
            return PRIMITIVE_TYPES[kind], ""
        if kind == "array":
            item, note = self._annotation(schema["items"], namespace, holder)
            return f"list[{item}]", note
        if kind == "map":
            value, note = self._annotation(schema["values"], namespace, holder)
            return f"dict[str, {value}]", note
        if kind == "enum":
            self._named[full_name(schema, namespace)] = schema
            return "str", "One of " + ", ".join(schema["symbols"]) + "."
        if kind == "fixed":
            self._named[full_name(schema, namespace)] = schema
            return "bytes", f"{schema['size']} bytes."
        if kind in ("record", "error"):
            return self._record(schema, namespace, holder), ""
        raise ValueError(f"unsupported Avro type {kind!r}")

    def _record(self, schema: dict[str, Any], namespace: str, holder: str) -> str:
        full = full_name(schema, namespace)
        self._named[full] = schema
        own_namespace = full.rpartition(".")[0]
        shape = json.dumps(schema, sort_keys=True)
        if shape in self._by_shape:
            return self._by_shape[shape]
        name = _short(full)
        if name in self._taken:
            name = f"{holder}{name}"
        model = ModelClass(name=name, doc=schema.get("doc", f"A {name} record."))
        self._taken.add(name)
        self._by_shape[shape] = name
        for f in schema["fields"]:
            annotation, note = self._annotation(f["type"], own_namespace, name)
            line = f"{f['name']}: {annotation}"
            default = f.get("default", _NO_DEFAULT)
            if default is _NO_DEFAULT or isinstance(default, (list, dict)):
                model.required.append(line)
            else:
                model.optional.append(f"{line} = {default!r}")
            doc = " ".join(part for part in (f.get("doc", ""), note) if part)
            model.attributes.append(f"{f['name']}: {doc}" if doc else f["name"])
        self.classes.append(model)
        return name

    # -- output ------------------------------------------------------------
    def source(self) -> str:
        out = [HEADER]
        for model in self.classes:
            out.append(f"\n\nclass {model.name}(faust.Record, include_metadata=False):\n")
            out.append(_docstring(model))
            for line in model.required + model.optional:
                out.append(f"    {line}\n")
        out.append("\n\n# the model of each schema, by its full Avro name\nTOP_LEVEL = {\n")
        for full, name in sorted(self.top_level.items()):
            out.append(f'    "{full}": {name},\n')
        out.append("}\n")
        return "".join(out)


_NO_DEFAULT = object()


def full_name(schema: dict[str, Any], namespace: str = "") -> str:
    """The full Avro name of a named type (its namespace, else the enclosing one's)."""
    name = schema["name"]
    if "." in name:
        return name
    return f"{schema.get('namespace', namespace)}.{name}".lstrip(".")


def _short(full: str) -> str:
    return full.rpartition(".")[2]


def _docstring(model: ModelClass) -> str:
    lines = textwrap.wrap(model.doc, WIDTH - 8) or [model.name]
    body = [*lines, "", "Attributes:"]
    for attribute in model.attributes:
        body.extend(
            textwrap.wrap(attribute, WIDTH - 8, initial_indent="    ", subsequent_indent="        ")
        )
    text = "\n".join(f"    {line}" if line else "" for line in body)
    return f'    """{text.lstrip()}\n    """\n\n'


def generate(catalog: Catalog | None = None) -> str:
    """The source of ``models.py`` for the catalogue's newest schema revisions."""
    catalog = catalog or default_catalog()
    writer = ModelWriter()
    for schema in sorted({spec.schema for spec in catalog.topics.values()}):
        writer.add_schema(catalog.latest(schema).raw)
    return writer.source()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if models.py is stale")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python -m streams.faust.generate", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
