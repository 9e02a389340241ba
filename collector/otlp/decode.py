"""Request bodies -> the official generated classes (`opentelemetry-proto`), and answers back.

Binary protobuf is parsed by the generated class. OTLP/JSON is protobuf's JSON mapping with the
OTLP specification's differences (opentelemetry.io/docs/specs/otlp, "JSON Protobuf Encoding"):
trace and span ids are hex, not base64; enums are integers; 64-bit integers may be strings or
numbers; unknown fields are ignored. The ids are rewritten to base64 before protobuf's
`json_format` reads the rest, so the generated class and its checks still decide.
"""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status

from collector.otlp import bound

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})

_ID_KEYS = ("traceId", "spanId", "trace_id", "span_id")
# where ids sit: logs' records, and metric exemplars
_POINT_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram")


class Malformed(Exception):
    """The body cannot be read as this request type (answered 400)."""


def media_type(content_type: str) -> str | None:
    """PROTOBUF or JSON for a Content-Type header, None when neither (415)."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in PROTOBUF_TYPES:
        return PROTOBUF
    if ctype == JSON or (ctype.startswith("application/") and ctype.endswith("+json")):
        return JSON
    return None


class Parsed(NamedTuple):
    """A request as far as it can be used: entries that cannot be decoded are left out and counted."""

    message: Message
    records: int  # records or data points in the body, the bad ones included
    rejected: int = 0
    reason: str = ""


_BAD = (DecodeError, RecursionError, ValueError, TypeError, json_format.ParseError)


def parse(body: bytes, kind: str, cls: type[Message], path: bound.Path, limit: int) -> Parsed:
    """The request, counted before it is built (bound.TooMany past `limit`). When the whole body
    cannot be decoded, it is rebuilt entry by entry along `path`, so one record nested too deeply
    (or with a non-hex id in JSON) costs that record, not the batch; Malformed when the request
    itself, outside its records, is unusable."""
    if kind == PROTOBUF:
        try:
            count = bound.count_protobuf(body, path, limit)
        except bound.Truncated as exc:
            raise Malformed(f"body is not a valid {cls.__name__} protobuf message: {exc}") from None
        try:
            return Parsed(cls.FromString(body), count)
        except _BAD:
            pass
        message = cls()
        try:
            rejected = _salvage_protobuf(message, memoryview(body), path.numbers, 0)
        except (bound.Truncated, *_BAD) as exc:
            raise Malformed(f"body is not a valid {cls.__name__} protobuf message: {exc}"[:300]) from None
        return Parsed(message, count, rejected, "a record could not be decoded (nested too deeply?)")
    bound.scan_json(body, path, limit)  # TooMany before orjson builds anything (~30 x the body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"body is not valid JSON: {exc}"[:300]) from None
    if type(doc) is not dict:
        raise Malformed(f"a JSON object ({cls.__name__}) is expected")
    count = bound.count_json(doc, path, limit)
    bad_ids, reason = _hex_ids_to_base64(doc)
    message = cls()
    try:
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
        return Parsed(message, count, bad_ids, reason)
    except _BAD:
        pass
    message = cls()
    try:
        rejected = _salvage_json(message, doc, path, 0)
    except _BAD as exc:
        raise Malformed(f"body is not a valid OTLP/JSON {cls.__name__}: {exc}"[:300]) from None
    return Parsed(message, count, bad_ids + rejected, reason or "a record could not be decoded (nested too deeply?)")


def _salvage_protobuf(message: Message, buf: memoryview, levels: tuple[frozenset[int], ...], depth: int) -> int:
    """Builds `message` from `buf` field by field along the path; returns how many leaves were left out.
    The message's own fields (outside the path) must decode, or the error goes up to its parent."""
    rest, children = bound.split_protobuf(buf, levels[depth])
    message.MergeFromString(rest)
    last = depth == len(levels) - 1
    fields = message.DESCRIPTOR.fields_by_number
    rejected = 0
    for number, payload in children:
        field = fields[number]
        container = getattr(message, field.name)
        repeated = _is_repeated(field)
        child = container.add() if repeated else container
        try:
            child.MergeFromString(payload)
            continue
        except _BAD:
            child.Clear()
        if not last:
            try:
                rejected += _salvage_protobuf(child, payload, levels, depth + 1)
                continue
            except (bound.Truncated, *_BAD):
                child.Clear()
        if repeated:
            del container[-1]
        rejected += max(1, bound.count_protobuf(bytes(payload), bound.Path(levels[depth + 1:], ()), 1 << 30)
                        if not last else 1)
    return rejected


def _salvage_json(message: Message, node: dict[str, Any], path: bound.Path, depth: int) -> int:
    """`_salvage_protobuf` for a parsed OTLP/JSON document."""
    keys = path.keys[depth]
    json_format.ParseDict({k: v for k, v in node.items() if k not in keys}, message, ignore_unknown_fields=True)
    last = depth == len(path.keys) - 1
    by_json = message.DESCRIPTOR.fields_by_camelcase_name
    by_name = message.DESCRIPTOR.fields_by_name
    rejected = 0
    for key in keys:
        value = node.get(key)
        if value is None:
            continue
        field = by_name.get(key) or by_json[key]
        container = getattr(message, field.name)
        repeated = _is_repeated(field)
        if type(value) is not (list if repeated else dict):
            if depth == 0:
                raise ValueError(f"{key}: expected {'a list' if repeated else 'an object'}")
            rejected += 1
            continue
        for item in value if repeated else [value]:
            child = container.add() if repeated else container
            try:
                if type(item) is not dict:
                    raise TypeError("not an object")
                json_format.ParseDict(item, child, ignore_unknown_fields=True)
                continue
            except _BAD:
                child.Clear()
            if not last and type(item) is dict:
                try:
                    rejected += _salvage_json(child, item, path, depth + 1)
                    continue
                except _BAD:
                    child.Clear()
            if repeated:
                del container[-1]
            rejected += 1 if last or type(item) is not dict else max(1, _json_leaves(item, path, depth + 1))
    return rejected


def _json_leaves(node: dict[str, Any], path: bound.Path, depth: int) -> int:
    sub = bound.Path(path.numbers[depth:], path.keys[depth:], frozenset(d - depth for d in path.single if d >= depth))
    return bound.count_json(node, sub, 1 << 30)


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def _hex_ids_to_base64(doc: dict[str, Any]) -> tuple[int, str]:
    """OTLP/JSON's hex ids rewritten for json_format; a record, or a data point with an exemplar, whose
    id is not hex is taken out of the document: (how many, the first reason)."""
    bad: list[str] = []

    def keep(entries: list[Any], ids_of: Any) -> list[Any]:
        kept = []
        for entry in entries:
            problem = next((p for p in map(_rewrite_ids, ids_of(entry)) if p), None) if type(entry) is dict else None
            if problem:
                bad.append(problem)
            else:
                kept.append(entry)
        return kept

    for resource in _objects(doc.get("resourceLogs", doc.get("resource_logs"))):
        for scope in _objects(resource.get("scopeLogs", resource.get("scope_logs"))):
            for key in ("logRecords", "log_records"):
                if type(scope.get(key)) is list:
                    scope[key] = keep(scope[key], lambda record: [record])
    for resource in _objects(doc.get("resourceMetrics", doc.get("resource_metrics"))):
        for scope in _objects(resource.get("scopeMetrics", resource.get("scope_metrics"))):
            for metric in _objects(scope.get("metrics")):
                for kind in _POINT_KINDS:
                    data = metric.get(kind)
                    for key in ("dataPoints", "data_points"):
                        if type(data) is dict and type(data.get(key)) is list:
                            data[key] = keep(data[key], lambda point: _objects(point.get("exemplars")))
    return len(bad), bad[0] if bad else ""


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if type(v) is dict] if type(value) is list else []


def _rewrite_ids(obj: dict[str, Any]) -> str | None:
    """Hex ids to base64 in place; the reason when one is not hex."""
    for key in _ID_KEYS:
        value = obj.get(key)
        if type(value) is str and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                return f"{key}: {value[:40]!r} is not hex (OTLP/JSON writes ids as hex)"
    return None


def encode(message: Message, kind: str) -> bytes:
    """An answer in the request's encoding (OTLP/JSON keys are lowerCamelCase)."""
    if kind == PROTOBUF:
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message))


def status(code: int, text: str, kind: str) -> bytes:
    """The body of a refusal: a google.rpc.Status, as the OTLP/HTTP specification asks."""
    return encode(Status(code=code, message=text), kind)
