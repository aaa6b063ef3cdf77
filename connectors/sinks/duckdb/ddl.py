"""DuckDB columns from Avro schemas.

Avro → DuckDB: string → VARCHAR, long → BIGINT, int → INTEGER, double →
DOUBLE, float → FLOAT, boolean → BOOLEAN, bytes → BLOB, timestamp-millis →
TIMESTAMP (UTC), enum → VARCHAR, record → STRUCT, array → LIST, map →
MAP(VARCHAR, ...), a ["null", T] union → nullable T. Field docs become column
comments; the ``pii`` tag of a top-level field is kept for the PII policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.core.errors import FatalError

PRIMITIVE = {
    "string": "VARCHAR",
    "long": "BIGINT",
    "int": "INTEGER",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "bytes": "BLOB",
}


@dataclass(frozen=True)
class Column:
    name: str
    duck_type: str
    doc: str = ""
    pii: str | None = None


def quote_ident(name: str) -> str:
    """A DuckDB identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def avro_type(schema: Any, names: dict[str, Any] | None = None) -> str:
    """The DuckDB type of an Avro type."""
    names = {} if names is None else names
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) != 1:
            raise FatalError(f"unions other than [null, T] have no column type: {schema}")
        return avro_type(branches[0], names)
    if isinstance(schema, str):
        if schema in PRIMITIVE:
            return PRIMITIVE[schema]
        if schema in names:
            return avro_type(names[schema], names)
        raise FatalError(f"unknown Avro type {schema!r}")
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return avro_type(kind, names)
    if schema.get("logicalType") in ("timestamp-millis", "local-timestamp-millis"):
        return "TIMESTAMP"
    if kind == "record":
        names[schema["name"]] = schema
        fields = ", ".join(
            f"{quote_ident(f['name'])} {avro_type(f['type'], names)}" for f in schema["fields"]
        )
        return f"STRUCT({fields})"
    if kind == "enum":
        names[schema["name"]] = schema
        return "VARCHAR"
    if kind == "array":
        return f"{avro_type(schema['items'], names)}[]"
    if kind == "map":
        return f"MAP(VARCHAR, {avro_type(schema['values'], names)})"
    if kind == "fixed":
        return "BLOB"
    return avro_type(kind, names)


def record_columns(record_schema: dict[str, Any]) -> list[Column]:
    """One column per top-level field of an Avro record schema."""
    names: dict[str, Any] = {}
    return [
        Column(f["name"], avro_type(f["type"], names), f.get("doc", ""), f.get("pii"))
        for f in record_schema["fields"]
    ]


def array_item_schema(record_schema: dict[str, Any], field: str) -> dict[str, Any]:
    """The record schema of the items of array field ``field``."""
    fld = next(f for f in record_schema["fields"] if f["name"] == field)
    items = fld["type"]["items"]
    if not isinstance(items, dict) or items.get("type") != "record":
        raise FatalError(f"{field} is not an array of records")
    return items


def create_table_sql(table: str, columns: list[Column], key: tuple[str, ...]) -> str:
    """CREATE TABLE with NOT NULL key columns.

    No PRIMARY KEY index: the sink keeps keys unique itself (delete then insert
    by key in the batch's transaction), which DuckDB does several times faster
    than maintaining an ART index on upsert.
    """
    cols = ",\n  ".join(
        f"{quote_ident(c.name)} {c.duck_type}" + (" NOT NULL" if c.name in key else "")
        for c in columns
    )
    return f"CREATE TABLE IF NOT EXISTS {quote_ident(table)} (\n  {cols}\n)"


def comment_sql(table: str, column: Column) -> str:
    doc = column.doc.replace("'", "''")
    return f"COMMENT ON COLUMN {quote_ident(table)}.{quote_ident(column.name)} IS '{doc}'"
