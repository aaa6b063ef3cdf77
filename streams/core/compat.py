"""Avro schema compatibility, by the resolution rules of the Avro specification.

``backward_incompatibilities(new, old)`` lists why data written with ``old``
cannot be read with ``new`` (empty list: compatible). This is the check a
Schema Registry applies in BACKWARD mode; FORWARD swaps the roles and FULL is
both. Compatible schemas also pass fastavro's own reader/writer resolution,
which the tests exercise with generated records.
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
# writer type -> reader types it may be promoted to (Avro spec, "Schema Resolution")
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
MODES = ("BACKWARD", "FORWARD", "FULL", "NONE")


def _named_types(schema: Any, namespace: str | None, out: dict[str, dict]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _named_types(branch, namespace, out)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        ns = schema.get("namespace", namespace)
        full = _fullname(schema["name"], ns)
        out[full] = schema
        out.setdefault(schema["name"].rsplit(".", 1)[-1], schema)
        for fld in schema.get("fields", []):
            _named_types(fld["type"], full.rsplit(".", 1)[0] if "." in full else ns, out)
    elif kind == "array":
        _named_types(schema["items"], namespace, out)
    elif kind == "map":
        _named_types(schema["values"], namespace, out)
    elif isinstance(kind, dict | list):
        _named_types(kind, namespace, out)


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Checker:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader_names: dict[str, dict] = {}
        self.writer_names: dict[str, dict] = {}
        _named_types(reader, None, self.reader_names)
        _named_types(writer, None, self.writer_names)
        self._seen: set[tuple[str, str]] = set()

    def _deref(self, schema: Any, names: dict[str, dict]) -> Any:
        while True:
            if isinstance(schema, str) and schema not in PRIMITIVES:
                schema = names.get(schema) or names.get(schema.rsplit(".", 1)[-1], schema)
                if isinstance(schema, str):
                    return schema
                continue
            if (
                isinstance(schema, dict)
                and isinstance(schema.get("type"), str | list | dict)
                and schema.get("type") not in ("record", "error", "enum", "fixed", "array", "map")
            ):
                # {"type": "long", "logicalType": ...} or {"type": "SomeName"}
                schema = schema["type"]
                continue
            return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, str):
            return schema
        return schema["type"]

    def check(self, reader: Any, writer: Any, path: str) -> list[str]:
        """Errors reading ``writer`` data with ``reader`` at ``path``."""
        reader = self._deref(reader, self.reader_names)
        writer = self._deref(writer, self.writer_names)
        rk, wk = self._kind(reader), self._kind(writer)
        if wk == "union":  # every branch the writer may have used must be readable
            return [
                e
                for i, branch in enumerate(writer)
                for e in self.check(reader, branch, f"{path}<writer branch {i}>")
            ]
        if rk == "union":  # the first reader branch that matches is used
            if any(not self.check(branch, writer, path) for branch in reader):
                return []
            return [f"{path}: writer type {wk} matches no branch of the reader union"]
        if rk != wk:
            if rk in PROMOTIONS.get(wk, ()):
                return []
            return [f"{path}: type changed from {wk} to {rk}"]
        if rk == "record":
            return self._record(reader, writer, path)
        if rk == "enum":
            return self._enum(reader, writer, path)
        if rk == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]")
        if rk == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}")
        if rk == "fixed" and reader.get("size") != writer.get("size"):
            return [f"{path}: fixed size changed from {writer.get('size')} to {reader.get('size')}"]
        return []

    @staticmethod
    def _name_change(reader: dict, writer: dict, path: str) -> list[str]:
        r_short = reader["name"].rsplit(".", 1)[-1]
        w_short = writer["name"].rsplit(".", 1)[-1]
        aliases = {a.rsplit(".", 1)[-1] for a in reader.get("aliases", [])}
        if r_short != w_short and w_short not in aliases:
            return [f"{path}: {reader['type']} name changed from {w_short} to {r_short}"]
        return []

    def _record(self, reader: dict, writer: dict, path: str) -> list[str]:
        errors = self._name_change(reader, writer, path)
        key = (reader["name"], writer["name"])
        if errors or key in self._seen:  # a recursive schema is checked once
            return errors
        self._seen.add(key)
        writer_fields = {f["name"]: f for f in writer["fields"]}
        for fld in reader["fields"]:
            names = [fld["name"], *fld.get("aliases", [])]
            match = next((writer_fields[n] for n in names if n in writer_fields), None)
            sub_path = f"{path}.{fld['name']}" if path else fld["name"]
            if match is None:
                if "default" not in fld:
                    errors.append(f"{sub_path}: new field without a default")
                continue
            errors += self.check(fld["type"], match["type"], sub_path)
        return errors

    def _enum(self, reader: dict, writer: dict, path: str) -> list[str]:
        errors = self._name_change(reader, writer, path)
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            errors.append(f"{path}: enum symbols removed without a default: {missing}")
        return errors


def backward_incompatibilities(new: Any, old: Any) -> list[str]:
    """Why readers using ``new`` cannot read data written with ``old`` ([] = compatible)."""
    return _Checker(new, old).check(new, old, "")


def incompatibilities(new: Any, old: Any, mode: str = "BACKWARD") -> list[str]:
    """Incompatibilities of ``new`` against ``old`` in a Schema Registry mode."""
    mode = mode.upper().removesuffix("_TRANSITIVE")
    if mode not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}")
    errors: list[str] = []
    if mode in ("BACKWARD", "FULL"):
        errors += [f"backward: {e}" for e in backward_incompatibilities(new, old)]
    if mode in ("FORWARD", "FULL"):
        errors += [f"forward: {e}" for e in backward_incompatibilities(old, new)]
    return errors
