"""Reading a request body within bounds: bytes counted as they arrive (also for chunked bodies
without Content-Length), every gzip member inflated, and the record count enforced before the
records are built (a body of millions of tiny records is refused without materializing them).
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
    "application/jsonlines", "text/plain",
})
# top-level keys of the OTLP/HTTP JSON encoding (ExportLogsServiceRequest & co.)
OTLP_KEYS = ("resourceLogs", "resourceMetrics", "resourceSpans")
_GZIP_MAGIC = b"\x1f\x8b"
_FIRST_PIECE = 64  # an empty gzip member is 20 bytes
_MAX_PIECE = 1 << 20


class Problem(Exception):
    """The request as a whole is refused with `status` (a 4xx, or 503 to come back later)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.extra = extra or {}


class InFlight:
    """Request bytes held right now by every request together. A request alone may use the whole
    bound; one that would push the total over it while others hold bytes gets 503."""

    def __init__(self, bound: int, retry_after: int = 1):
        self.bound = bound
        self.retry_after = retry_after
        self.bytes = 0

    def hold(self) -> Hold:
        return Hold(self)


class Hold:
    """One request's share of `InFlight`; `release()` it when the answer is sent."""

    def __init__(self, pool: InFlight):
        self.pool = pool
        self.bytes = 0

    def grow(self, more: int) -> None:
        pool = self.pool
        if more > 0 and pool.bytes > self.bytes and pool.bytes + more > pool.bound:
            raise Problem(503, "too many bytes in process; retry later", {"Retry-After": str(pool.retry_after)})
        pool.bytes += more
        self.bytes += more

    def resize(self, size: int) -> None:
        self.grow(size - self.bytes)

    def release(self) -> None:
        self.pool.bytes -= self.bytes
        self.bytes = 0


async def read(chunks: AsyncIterator[bytes], hold: Hold, limit: int, declared: str | None,
               encoding: str) -> tuple[bytes, int]:
    """(the body, gunzipped; its size on the wire). Each chunk is counted before it is kept."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise Problem(415, f"Content-Encoding {encoding[:40]!r} is not supported (use gzip or none)")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"body is over the limit of {limit} bytes")
        hold.grow(len(chunk))
        parts.append(chunk)
    body = b"".join(parts)
    if encoding in ("gzip", "x-gzip"):
        hold.resize(min(limit, len(body) * 4))  # a guess held while it inflates, corrected after
        body = await asyncio.to_thread(gunzip, body, limit)  # up to `limit` of CPU work: off the event loop
        hold.resize(len(body))
    return body, size


def gunzip(body: bytes, limit: int) -> bytes:
    """Every member of a (multi-member, RFC 1952 2.2) gzip body; anything after the last member is 400.

    Linear in the body whatever its members: each member is fed from a view of the body in pieces
    that start small and double, so finding where a member ends costs about its own size (taking
    the rest of the body from `unused_data` copied it per member: quadratic in the member count)."""
    out: list[bytes] = []
    size = 0
    view = memoryview(body)
    end = len(body)
    at = 0
    first = True
    while True:
        # wbits 47: gzip or zlib header auto-detected (first member); later members must be gzip
        inflater = zlib.decompressobj(wbits=47 if first else 31)
        step = _FIRST_PIECE
        fed = at
        while not inflater.eof and fed < end:
            piece_end = min(end, fed + step)
            try:
                piece = inflater.decompress(view[fed:piece_end], limit + 1 - size)
            except zlib.error:
                raise Problem(400, "body is not valid gzip" if first else "bytes after the gzip data are not gzip") \
                    from None
            size += len(piece)
            if size > limit or inflater.unconsumed_tail:
                raise Problem(413, f"body is over the limit of {limit} bytes once decompressed")
            out.append(piece)
            fed = piece_end
            step = min(step * 2, _MAX_PIECE)
        if not inflater.eof:
            raise Problem(400, "gzip body is truncated")
        at = fed - len(inflater.unused_data)  # at most one piece: the copy stays small
        if at >= end:
            return b"".join(out)
        if view[at:at + 2] != _GZIP_MAGIC:
            raise Problem(400, f"{end - at} bytes of garbage after the gzip data")
        first = False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # as orjson: NaN and Infinity are no JSON values


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, at: int) -> int:
    """The index of the first non-blank character at or after `at`."""
    found = _SPACE.match(text, at)
    return found.end() if found else at


def array_items(body: bytes, limit: int) -> list[Any]:
    """The elements of a JSON array body, parsed one by one: 413 as soon as there are more than
    `limit` (a body of millions of `{}` costs `limit` small dicts, not millions); 400 if unusable."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise Problem(400, f"body is not valid JSON: not UTF-8 ({exc.reason} at {exc.start})") from None
    skip = _skip
    at = skip(text, 0)
    if text[at:at + 1] != "[":
        raise Problem(400, "a JSON array of record objects (or one object) is expected")
    at = skip(text, at + 1)
    items: list[Any] = []
    if text[at:at + 1] == "]":
        at += 1
    else:
        decode = _DECODER.raw_decode
        while True:
            if len(items) == limit:
                raise Problem(413, f"more than {limit} records: over the limit per request")
            try:
                item, at = decode(text, at)
            except (ValueError, RecursionError) as exc:
                raise Problem(400, f"body is not valid JSON: {exc}"[:300]) from None
            items.append(item)
            at = skip(text, at)
            sep = text[at:at + 1]
            at = skip(text, at + 1)
            if sep == "]":
                break
            if sep != ",":
                raise Problem(400, f"body is not valid JSON: ',' or ']' expected at {at}")
    if text[at:].strip(" \t\n\r"):
        raise Problem(400, "body is not valid JSON: data after the array")
    return items


def ndjson_lines(body: bytes, limit: int) -> list[bytes]:
    """The non-blank lines; 413 as soon as there are more than `limit` of them."""
    if body.count(b"\n") < limit:  # at most `limit` lines: nothing to count
        return [line for line in body.split(b"\n") if line.strip()]
    lines: list[bytes] = []
    start = 0
    end = len(body)
    while start < end:
        stop = body.find(b"\n", start)
        if stop < 0:
            stop = end
        line = body[start:stop]
        start = stop + 1
        if line.strip():
            if len(lines) == limit:
                raise Problem(413, f"more than {limit} records: over the limit per request")
            lines.append(line)
    return lines


def otlp_refusal(doc: Any) -> None:
    """An OTLP exporter counts any 2xx as delivered: its bodies get a 400 that says where they belong."""
    if type(doc) is dict and any(key in doc for key in OTLP_KEYS):
        message = ("this is an OTLP/HTTP JSON body; this endpoint takes ECS records (JSON array or NDJSON): "
                   "send OTLP to the OTLP intake (port 4318, /v1/logs or /v1/metrics)")
        # `code`/`message`: the google.rpc.Status shape OTLP clients read from a refusal
        raise Problem(400, message, extra={"code": 3, "message": message})


def parse(body: bytes, ctype: str, max_records: int) -> tuple[list[Any], list[dict[str, Any]]]:
    """(records, rejected): records[i] is a parsed value, or None when rejected[...] names i."""
    if not ctype:
        ctype = "application/json" if body.lstrip()[:1] == b"[" else "application/x-ndjson"
    rejected: list[dict[str, Any]] = []
    if ctype in JSON_TYPES or ctype.endswith("+json"):
        if body.lstrip()[:1] == b"[" and body.count(b",") >= max_records:
            doc: Any = array_items(body, max_records)  # may hold too many records: parse them one by one
        else:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise Problem(400, f"body is not valid JSON: {exc}") from None
        if type(doc) is dict:
            otlp_refusal(doc)
            records: list[Any] = [doc]
        elif type(doc) is list:
            records = doc
        else:
            raise Problem(400, "a JSON array of record objects (or one object) is expected")
    elif ctype in NDJSON_TYPES:
        records = []
        loads = orjson.loads
        for line in ndjson_lines(body, max_records):
            try:
                records.append(loads(line))
            except orjson.JSONDecodeError as exc:
                rejected.append({"index": len(records), "reason": f"invalid JSON: {exc}"[:300]})
                records.append(None)
        if records:
            otlp_refusal(records[0])
        if records and len(rejected) == len(records):
            raise Problem(400, f"no line of the NDJSON body is valid JSON (first: {rejected[0]['reason']})")
    else:
        raise Problem(415, f"Content-Type {ctype[:60]!r} is not supported: use application/json "
                           "(an array of records) or application/x-ndjson (one record per line)")
    if not records:
        raise Problem(400, "the body holds no records")
    if len(records) > max_records:
        raise Problem(413, f"{len(records)} records are over the limit of {max_records} per request")
    return records, rejected
