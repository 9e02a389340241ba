"""Request bodies -> the official generated classes (`opentelemetry-proto`), and answers back.

Binary protobuf is parsed by the generated class. OTLP/JSON is protobuf's JSON mapping with the
OTLP specification's differences (opentelemetry.io/docs/specs/otlp, "JSON Protobuf Encoding"):
trace and span ids are hex, not base64; enums are integers; 64-bit integers may be strings or
numbers; unknown fields are ignored. The ids are rewritten to base64 before protobuf's
`json_format` reads the rest, so the generated class and its checks still decide.
"""

from __future__ import annotations

import base64
from typing import Any

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


def parse(body: bytes, kind: str, cls: type[Message], path: bound.Path, limit: int) -> tuple[Message, int]:
    """(the request, how many records or data points it holds); bound.TooMany past `limit`,
    counted before the message is built."""
    if kind == PROTOBUF:
        try:
            count = bound.count_protobuf(body, path, limit)
            return cls.FromString(body), count
        except bound.Truncated as exc:
            raise Malformed(f"body is not a valid {cls.__name__} protobuf message: {exc}") from None
        except (DecodeError, RecursionError, ValueError) as exc:
            raise Malformed(f"body is not a valid {cls.__name__} protobuf message: {exc}"[:300]) from None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"body is not valid JSON: {exc}"[:300]) from None
    if type(doc) is not dict:
        raise Malformed(f"a JSON object ({cls.__name__}) is expected")
    count = bound.count_json(doc, path, limit)
    _hex_ids_to_base64(doc)
    message = cls()
    try:
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise Malformed(f"body is not a valid OTLP/JSON {cls.__name__}: {exc}"[:300]) from None
    return message, count


def _hex_ids_to_base64(doc: dict[str, Any]) -> None:
    for resource in _objects(doc.get("resourceLogs", doc.get("resource_logs"))):
        for scope in _objects(resource.get("scopeLogs", resource.get("scope_logs"))):
            for record in _objects(scope.get("logRecords", scope.get("log_records"))):
                _rewrite_ids(record)
    for resource in _objects(doc.get("resourceMetrics", doc.get("resource_metrics"))):
        for scope in _objects(resource.get("scopeMetrics", resource.get("scope_metrics"))):
            for metric in _objects(scope.get("metrics")):
                for kind in _POINT_KINDS:
                    data = metric.get(kind)
                    if type(data) is dict:
                        for point in _objects(data.get("dataPoints", data.get("data_points"))):
                            for exemplar in _objects(point.get("exemplars")):
                                _rewrite_ids(exemplar)


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if type(v) is dict] if type(value) is list else []


def _rewrite_ids(obj: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if type(value) is str and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise Malformed(f"{key}: {value[:40]!r} is not hex (OTLP/JSON writes ids as hex)") from None


def encode(message: Message, kind: str) -> bytes:
    """An answer in the request's encoding (OTLP/JSON keys are lowerCamelCase)."""
    if kind == PROTOBUF:
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message))


def status(code: int, text: str, kind: str) -> bytes:
    """The body of a refusal: a google.rpc.Status, as the OTLP/HTTP specification asks."""
    return encode(Status(code=code, message=text), kind)
