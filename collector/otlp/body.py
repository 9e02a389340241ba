"""Reading a request body within the ingest API's limits: bytes counted as they arrive (a chunked
body without Content-Length cannot slip past the bound), gzip inflated with the same bound, every
gzip member read and trailing garbage refused."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator


class BodyError(Exception):
    """status 400, 413 or 415 with a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


async def read_limited(chunks: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise BodyError(413, f"body of {content_length} bytes is over the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body is over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """`Content-Encoding` undone: identity or gzip (every member); anything else is 415."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BodyError(415, f"Content-Encoding {encoding[:40]!r} is not supported (use gzip or none)")
    return gunzip(body, limit)


def gunzip(body: bytes, limit: int) -> bytes:
    """All members of a gzip stream, at most `limit` bytes inflated."""
    out: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(rest, limit - size + 1)
        except zlib.error:
            raise BodyError(400, "body is not valid gzip") from None
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body is over the limit of {limit} bytes once decompressed")
        out.append(chunk)
        if not inflater.eof:
            raise BodyError(400, "gzip body is truncated")
        rest = inflater.unused_data
        if not rest:
            return b"".join(out)
        if rest[:2] != b"\x1f\x8b":
            raise BodyError(400, "trailing bytes after the gzip data")
