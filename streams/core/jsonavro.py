"""Turn plain JSON values into values fastavro can write, guided by the schema.

Plain JSON (what people write in example files, JSONL replays and webhooks)
differs from Avro's own JSON encoding: unions are untagged, timestamps are ISO
8601 strings or epoch milliseconds, bytes are text. ``from_json`` resolves
those against the schema and raises ``InvalidRecord("schema_violation")`` with
the field path when a value does not fit; ``to_json`` is the inverse, for
printing examples and dead letters.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from streams.core.errors import InvalidRecord

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_timestamp_ms(value: Any) -> int:
    """Epoch milliseconds from an int/float (ms) or an ISO 8601 string (UTC if naive)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int((stamp - _EPOCH).total_seconds() * 1000)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        return parse_timestamp_ms(dt.datetime.fromisoformat(text))
    raise ValueError(f"not a timestamp: {value!r}")


def _named(schema: dict, names: dict[str, Any], namespace: str | None) -> None:
    name = schema["name"]
    ns = schema.get("namespace", namespace)
    full = name if "." in name or not ns else f"{ns}.{name}"
    names[full] = schema
    names[name.rsplit(".", 1)[-1]] = schema


class _Converter:
    def __init__(self, schema: Any) -> None:
        self.names: dict[str, Any] = {}
        self.schema = schema

    def convert(self, schema: Any, value: Any, path: str, namespace: str | None = None) -> Any:
        if isinstance(schema, list):
            return self._union(schema, value, path, namespace)
        if isinstance(schema, str):
            if schema in self.names:
                return self.convert(self.names[schema], value, path, namespace)
            return self._primitive(schema, None, value, path)
        kind = schema["type"]
        if kind == "record":
            _named(schema, self.names, namespace)
            ns = schema.get("namespace", namespace)
            if not isinstance(value, dict):
                raise self._bad(path, f"expected an object for record {schema['name']}")
            known = {f["name"] for f in schema["fields"]}
            extra = set(value) - known
            if extra:
                raise self._bad(path, f"unknown field(s) {sorted(extra)}")
            out = {}
            for fld in schema["fields"]:
                sub = f"{path}.{fld['name']}" if path else fld["name"]
                if fld["name"] in value:
                    out[fld["name"]] = self.convert(fld["type"], value[fld["name"]], sub, ns)
                elif "default" in fld:
                    out[fld["name"]] = fld["default"]
                else:
                    raise self._bad(sub, "required field missing")
            return out
        if kind == "enum":
            _named(schema, self.names, namespace)
            if value not in schema["symbols"]:
                raise self._bad(path, f"{value!r} is not one of {schema['symbols']}")
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise self._bad(path, "expected a list")
            return [
                self.convert(schema["items"], v, f"{path}[{i}]", namespace)
                for i, v in enumerate(value)
            ]
        if kind == "map":
            if not isinstance(value, dict):
                raise self._bad(path, "expected an object")
            return {
                str(k): self.convert(schema["values"], v, f"{path}.{k}", namespace)
                for k, v in value.items()
            }
        if kind == "fixed":
            _named(schema, self.names, namespace)
            return self._primitive("bytes", None, value, path)
        return self._primitive(kind, schema.get("logicalType"), value, path)

    def _union(self, branches: list, value: Any, path: str, namespace: str | None) -> Any:
        if value is None:
            if "null" in branches:
                return None
            raise self._bad(path, "null is not allowed")
        errors = []
        for branch in branches:
            if branch == "null":
                continue
            try:
                return self.convert(branch, value, path, namespace)
            except InvalidRecord as exc:
                errors.append(exc.detail)
        raise self._bad(path, "; ".join(errors) or "no union branch fits")

    def _primitive(self, kind: str, logical: str | None, value: Any, path: str) -> Any:
        try:
            if logical in ("timestamp-millis", "local-timestamp-millis"):
                return parse_timestamp_ms(value)
            if logical in ("timestamp-micros", "local-timestamp-micros"):
                return parse_timestamp_ms(value) * 1000 if isinstance(value, str) else int(value)
            if kind == "null" and value is None:
                return None
            if kind == "boolean" and isinstance(value, bool):
                return value
            if kind in ("int", "long") and isinstance(value, int) and not isinstance(value, bool):
                limit = 2**31 if kind == "int" else 2**63
                if not -limit <= value < limit:
                    raise ValueError(f"{value} out of range for {kind}")
                return value
            if (
                kind in ("float", "double")
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                return float(value)
            if kind == "string" and isinstance(value, str):
                return value
            if kind == "bytes":
                if isinstance(value, bytes):
                    return value
                if isinstance(value, str):
                    # Avro JSON encoding maps bytes to code points 0-255; anything
                    # wider is taken as base64 (how most webhooks send binary).
                    try:
                        return value.encode("latin-1")
                    except UnicodeEncodeError:
                        return base64.b64decode(value, validate=True)
        except (ValueError, TypeError) as exc:
            raise self._bad(path, str(exc)) from None
        raise self._bad(path, f"expected {logical or kind}, got {type(value).__name__}")

    @staticmethod
    def _bad(path: str, message: str) -> InvalidRecord:
        return InvalidRecord("schema_violation", f"{path or '<root>'}: {message}")


def from_json(schema: Any, value: Any) -> Any:
    """A plain JSON value converted to fit the Avro ``schema`` (raw JSON schema dict)."""
    return _Converter(schema).convert(schema, value, "")


def to_json(value: Any) -> Any:
    """A decoded Avro value as plain JSON: datetimes as ISO 8601, bytes as latin-1 text."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value
