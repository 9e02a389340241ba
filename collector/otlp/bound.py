"""The record-count limit, enforced before the generated classes build a request.

Parsing materialises every entry: 10 MiB of empty log records is five million objects (~650 MB
and seconds of CPU) before a count could say 413. So the entries along the path to the records
(resources -> scopes -> log records; resources -> scopes -> metrics -> data -> data points) are
counted first, without building anything, and the count stops as soon as it is over the limit:
- protobuf: the wire format's length-delimited fields are stepped over (tag, length, skip); only
  the path's fields are entered. This reads no values: decoding stays with the generated classes.
- JSON: the lengths of the path's lists, after orjson (which is bounded by the body size).
Containers count too (at most `4 * limit + 64` entries walked), so a body of millions of empty
resources or scopes is refused just the same. Field numbers come from the generated descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, ResourceMetrics, ScopeMetrics

_LENGTH_DELIMITED = 2
_START_GROUP = 3
_END_GROUP = 4


class TooMany(Exception):
    """More entries than allowed (answered 413)."""


class Truncated(Exception):
    """The protobuf body ends inside a field, or is no protobuf at all (answered 400)."""


_MAX_GROUP_DEPTH = 100  # the protobuf runtimes' own recursion limit


@dataclass(frozen=True)
class Path:
    """The fields leading to the counted entries: per level, protobuf field numbers and JSON keys."""

    numbers: tuple[frozenset[int], ...]
    keys: tuple[tuple[str, ...], ...]
    single: frozenset[int] = frozenset()  # levels holding one object in JSON, not a list


def _number(descriptor: Any, *names: str) -> frozenset[int]:
    return frozenset(descriptor.fields_by_name[name].number for name in names)


def _keys(*names: str) -> tuple[str, ...]:
    """The lowerCamelCase name OTLP/JSON writes and the proto name json_format also accepts."""
    out: list[str] = []
    for name in names:
        head, *rest = name.split("_")
        out += [head + "".join(part.title() for part in rest), name]
    return tuple(dict.fromkeys(out))


_DATA = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
LOGS = Path(
    numbers=(_number(ExportLogsServiceRequest.DESCRIPTOR, "resource_logs"),
             _number(ResourceLogs.DESCRIPTOR, "scope_logs"), _number(ScopeLogs.DESCRIPTOR, "log_records")),
    keys=(_keys("resource_logs"), _keys("scope_logs"), _keys("log_records")),
)
METRICS = Path(
    numbers=(_number(ExportMetricsServiceRequest.DESCRIPTOR, "resource_metrics"),
             _number(ResourceMetrics.DESCRIPTOR, "scope_metrics"), _number(ScopeMetrics.DESCRIPTOR, "metrics"),
             _number(Metric.DESCRIPTOR, *_DATA), _number(Gauge.DESCRIPTOR, "data_points")),
    keys=(_keys("resource_metrics"), _keys("scope_metrics"), _keys("metrics"), _keys(*_DATA),
          _keys("data_points")),
    single=frozenset({3}),  # a metric's gauge/sum/...
)


class _Count:
    def __init__(self, limit: int):
        self.limit = limit
        self.budget = 4 * limit + 64
        self.leaves = 0
        self.walked = 0

    def add(self, leaves: int, walked: int) -> None:
        self.leaves += leaves
        self.walked += walked
        if self.leaves > self.limit or self.walked > self.budget:
            raise TooMany(f"more than {self.limit} entries" if self.leaves > self.limit
                          else f"more than {self.budget} nested entries")


def count_protobuf(body: bytes, path: Path, limit: int) -> int:
    """How many entries sit at the end of `path`; TooMany past `limit`, Truncated for a cut body."""
    count = _Count(limit)
    _walk(memoryview(body), 0, len(body), path.numbers, 0, count)
    return count.leaves


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            break
    raise Truncated("a varint runs past its field")


def _walk(buf: memoryview, pos: int, end: int, levels: tuple[frozenset[int], ...], depth: int,
          count: _Count) -> None:
    wanted = levels[depth]
    last = depth == len(levels) - 1
    while pos < end:
        tag = buf[pos]  # OTLP's field numbers fit one byte; longer varints take the general path
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        wire = tag & 7
        if wire == 0:
            _, pos = _varint(buf, pos, end)
            continue
        if wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _LENGTH_DELIMITED:
            if pos < end and buf[pos] < 0x80:
                size = buf[pos]
                pos += 1
            else:
                size, pos = _varint(buf, pos, end)
            if tag >> 3 in wanted:
                if last:
                    count.add(1, 1)
                else:
                    count.add(0, 1)
                    _walk(buf, pos, min(pos + size, end), levels, depth + 1, count)
            pos += size
        elif wire == _START_GROUP:
            # groups are not in OTLP, but the parser steps over an unknown group and reads on:
            # so must the count, or the fields after a group would go uncounted
            pos = _skip_group(buf, pos, end, tag >> 3)
        else:  # an end-group without its start, or wire types 6/7: the parser would refuse it too
            raise Truncated(f"wire type {wire} is not valid here")
        if pos > end:
            raise Truncated("a field runs past the end of the body")


def _skip_group(buf: memoryview, pos: int, end: int, number: int) -> int:
    """The position after the end-group tag matching `number` (nested groups included)."""
    open_groups = [number]
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        wire = tag & 7
        if wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _LENGTH_DELIMITED:
            size, pos = _varint(buf, pos, end)
            pos += size
        elif wire == _START_GROUP:
            if len(open_groups) >= _MAX_GROUP_DEPTH:
                raise Truncated("groups nested too deeply")
            open_groups.append(tag >> 3)
        elif wire == _END_GROUP and tag >> 3 == open_groups[-1]:
            open_groups.pop()
            if not open_groups:
                return pos
        else:
            raise Truncated(f"wire type {wire} is not valid here")
    raise Truncated("a group runs past the end of the body")


def split_protobuf(buf: memoryview, wanted: frozenset[int]) -> tuple[bytes, list[tuple[int, memoryview]]]:
    """(the message's other fields, re-encoded as they were; [(number, payload)] of the length-delimited
    fields numbered `wanted`, in order). For rebuilding a request entry by entry; Truncated if cut."""
    rest = bytearray()
    children: list[tuple[int, memoryview]] = []
    pos, end = 0, len(buf)
    while pos < end:
        start = pos
        tag, pos = _varint(buf, pos, end)
        wire = tag & 7
        if wire == _LENGTH_DELIMITED:
            size, pos = _varint(buf, pos, end)
            if pos + size > end:
                raise Truncated("a field runs past the end of its message")
            if tag >> 3 in wanted:
                children.append((tag >> 3, buf[pos:pos + size]))
                pos += size
                continue
            pos += size
        elif wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _START_GROUP:
            pos = _skip_group(buf, pos, end, tag >> 3)
        else:
            raise Truncated(f"wire type {wire} is not valid here")
        if pos > end:
            raise Truncated("a field runs past the end of its message")
        rest += buf[start:pos]
    return bytes(rest), children


def count_json(doc: Any, path: Path, limit: int) -> int:
    """The same count over a parsed OTLP/JSON document (lists' lengths; odd shapes count 0)."""
    count = _Count(limit)
    _walk_json(doc, path, 0, count)
    return count.leaves


def _walk_json(node: Any, path: Path, depth: int, count: _Count) -> None:
    if type(node) is not dict:
        return
    last = depth == len(path.keys) - 1
    for key in path.keys[depth]:
        value = node.get(key)
        if depth in path.single:
            if type(value) is dict:
                count.add(0, 1)
                _walk_json(value, path, depth + 1, count)
            continue
        if type(value) is not list:
            continue
        if last:
            count.add(len(value), len(value))
            continue
        count.add(0, len(value))
        for item in value:
            _walk_json(item, path, depth + 1, count)
