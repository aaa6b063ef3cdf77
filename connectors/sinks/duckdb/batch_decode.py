"""Decode a batch of Confluent-framed Avro records into one Arrow table, in native code.

A batch of framed records written with one schema is, once the 5-byte headers
are cut off, exactly the data block of an Avro object container file: a
header naming the writer schema plus the concatenated records. polars-avro
(Rust) decodes that at several hundred thousand records per second, where
fastavro manages tens of thousands for our wide schemas.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pyarrow as pa

AVRO_MAGIC = b"Obj\x01"


def _long(n: int) -> bytes:
    """Avro zig-zag varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes(b: bytes) -> bytes:
    return _long(len(b)) + b


def container_file(schema: dict[str, Any], records: list[bytes]) -> bytes:
    """An Avro object container file (codec null) holding ``records`` in one block."""
    sync = os.urandom(16)
    meta = {b"avro.schema": json.dumps(schema).encode(), b"avro.codec": b"null"}
    header = (
        AVRO_MAGIC
        + _long(len(meta))
        + b"".join(_bytes(k) + _bytes(v) for k, v in meta.items())
        + _long(0)
        + sync
    )
    body = b"".join(records)
    return header + _long(len(records)) + _long(len(body)) + body + sync


def decode_records(schema: dict[str, Any], records: list[bytes]) -> pa.Table:
    """Arrow table of schemaless Avro ``records`` (headers already removed)."""
    import polars_avro

    frame = polars_avro.read_avro(io.BytesIO(container_file(schema, records)))
    return frame.to_arrow()
