"""Request bodies as sent: Content-Encoding decoded here, within a size limit.

aiohttp's own decompression lost some errors (a deflate stream cut short, sent
after the headers, left the request waiting for a body that never came), and
answered unsupported encodings before any handler could say so in JSON. The
collector reads the body as sent and decodes it here: every failure is a
``BodyError`` with a status and a code for the JSON answer.
"""

from __future__ import annotations

import zlib

# Content-Encoding → zlib window bits: gzip (and its old name), zlib-wrapped deflate
# (raw deflate, which some clients send as "deflate", is tried when that fails)
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ENCODINGS = frozenset({"identity", *DECODERS})


class BodyError(Exception):
    """A body that cannot be read: ``status`` and ``code`` for the answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """``raw`` decoded from ``encoding`` (a Content-Encoding value), at most ``limit``
    bytes once decoded (a compressed body can expand a thousandfold)."""
    encoding = encoding.strip().lower() or "identity"
    if encoding not in ENCODINGS:
        raise BodyError(
            415,
            "unsupported_encoding",
            f"Content-Encoding must be one of {', '.join(sorted(ENCODINGS))}",
        )
    if encoding == "identity":
        return raw
    try:
        return _inflate(raw, DECODERS[encoding], limit)
    except zlib.error:
        if encoding != "deflate":
            raise BodyError(
                400, "invalid_encoding", f"the body is not valid {encoding} data"
            ) from None
    try:
        return _inflate(raw, -zlib.MAX_WBITS, limit)
    except zlib.error:
        raise BodyError(400, "invalid_encoding", "the body is not valid deflate data") from None


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes:
    """Every member of a compressed stream (gzip may concatenate them), in full."""
    out = bytearray()
    rest = raw
    while True:
        stream = zlib.decompressobj(wbits)
        out += stream.decompress(rest, limit + 1 - len(out))
        if len(out) > limit:
            raise BodyError(413, "payload_too_large", f"a request may be {limit} bytes decoded")
        if not stream.eof:
            raise zlib.error("the compressed stream is cut short")
        rest = stream.unused_data
        if not rest:
            return bytes(out)
