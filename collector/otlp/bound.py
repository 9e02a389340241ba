"""The record-count limit, enforced before the generated classes build a request.

Parsing materialises every entry: 10 MiB of empty log records is five million objects (~650 MB
and seconds of CPU) before a count could say 413. So the entries along the path to the records
(resources -> scopes -> log records; resources -> scopes -> metrics -> data -> data points) are
counted first, without building anything, and the count stops as soon as it is over the limit:
- protobuf: the wire format's length-delimited fields are stepped over (tag, length, skip); only
  the path's fields are entered. This reads no values: decoding stays with the generated classes.
- JSON: the path's lists' entries, read from the bytes before orjson builds anything
  (`scan_json`); `count_json` counts the parsed document the same way, as a backstop.
Containers count too (at most `4 * limit + 64` entries walked), so a body of millions of empty
resources or scopes is refused just the same. Field numbers come from the generated descriptors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
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


# OTLP/JSON counted from the bytes, before orjson builds anything (10 MiB of `{}` is ~300 MB of
# Python objects): only the path's objects are read key by key; every other value (a record, an
# attribute, an unknown field) is stepped over by one regular expression that matches a string or a
# value nested up to _NESTED levels, in C and without memory (possessive quantifiers: no
# backtracking state is kept). Deeper values go bracket by bracket, up to orjson's own depth limit.
_STRING = rb'"(?:[^"\\]++|\\.)*+"'
_FLAT = rb'(?:[^"\[\]{}]++|' + _STRING + rb')*+'
_NESTED = 160  # beyond the protobuf decoder's depth (100 messages): deeper values are unusable anyway
_ORJSON_DEPTH = 1024
_DEEP_STEPS = 100_000  # brackets gone through one by one per body, at most (~0.1 s)


def _nested(levels: int) -> bytes:
    inner = _FLAT
    for _ in range(levels):
        inner = rb'(?:[^"\[\]{}]++|' + _STRING + rb'|[\[{]' + inner + rb'[\]}])*+'
    return rb'[\[{]' + inner + rb'[\]}]'


_RE_STRING = re.compile(_STRING, re.S)
_RE_FLAT = re.compile(_FLAT, re.S)
_RE_VALUE = re.compile(_nested(_NESTED), re.S)
_VALUE = _STRING + rb'|[^ \t\n\r,:\[\]{}"]++|' + _nested(16)  # deeper: the run stops, _skip goes on


def _others(keys: frozenset[bytes]) -> Any:
    """A run of `"key": value,` whose keys are none of `keys` (and have no escapes): stepped over in C."""
    names = b"|".join(re.escape(key) for key in sorted(keys))
    return re.compile(rb'(?:(?!"(?:' + names + rb')")"[^"\\]*+"[ \t\n\r]*+:[ \t\n\r]*+(?:' + _VALUE
                      + rb')[ \t\n\r]*+,[ \t\n\r]*+)*+', re.S)


_RE_SCALAR = re.compile(rb'[^ \t\n\r,:\[\]{}"]++')
_RE_SPACE = re.compile(rb'[ \t\n\r]*+')
_OPEN, _CLOSE, _QUOTE, _COMMA, _COLON = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord(","), ord(":")



@dataclass(frozen=True)
class Path:
    """The fields leading to the counted entries: per level, protobuf field numbers and JSON keys."""

    numbers: tuple[frozenset[int], ...]
    keys: tuple[tuple[str, ...], ...]
    single: frozenset[int] = frozenset()  # levels holding one object in JSON, not a list
    bkeys: tuple[frozenset[bytes], ...] = field(init=False, repr=False, compare=False)
    others: tuple[Any, ...] = field(init=False, repr=False, compare=False)  # per level: a run of other keys

    def __post_init__(self) -> None:
        object.__setattr__(self, "bkeys", tuple(frozenset(k.encode() for k in level) for level in self.keys))
        object.__setattr__(self, "others", tuple(_others(level) for level in self.bkeys))


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
        self.deep = 0  # scan_json: brackets it may still go through one by one

    def add(self, leaves: int, walked: int) -> None:
        self.leaves += leaves
        self.walked += walked
        if self.leaves > self.limit or self.walked > self.budget:
            raise TooMany(f"more than {self.limit} entries" if self.leaves > self.limit
                          else f"more than {self.budget} nested entries")

    def add_leaves(self, n: int) -> None:
        """`add(1, 1)` n times: stops where that would, with the same word."""
        if self.leaves + n > self.limit or self.walked + n > self.budget:
            step = min(self.limit - self.leaves, self.budget - self.walked) + 1
            self.add(step, step)
        self.leaves += n
        self.walked += n


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
    """The same count over a parsed OTLP/JSON document (lists' entries; odd shapes count 0). Entries
    are counted one by one in document order, as `scan_json` meets them, so both stop at the same
    entry and say the same."""
    count = _Count(limit)
    _walk_json(doc, path, 0, count)
    return count.leaves


def _walk_json(node: Any, path: Path, depth: int, count: _Count) -> None:
    if type(node) is not dict:
        return
    last = depth == len(path.keys) - 1
    keys = [key for key in path.keys[depth] if key in node]
    if len(keys) > 1:  # in the document's order, as the scan meets them
        keys = [key for key in node if key in path.keys[depth]]
    for key in keys:
        value = node[key]
        if depth in path.single:
            if type(value) is dict:
                count.add(0, 1)
                _walk_json(value, path, depth + 1, count)
            continue
        if type(value) is not list:
            continue
        if last:
            count.add_leaves(len(value))
            continue
        for item in value:
            count.add(0, 1)
            _walk_json(item, path, depth + 1, count)


class _Unreadable(Exception):
    """The scan cannot go on (not JSON, or deeper than orjson reads): orjson decides."""


def scan_json(body: bytes, path: Path, limit: int) -> int | None:
    """`count_json` of the document `body` holds, read from the bytes without building it (TooMany
    past `limit`, as early as the count is over). None when the bytes are not JSON as far as the scan
    read them: then orjson's parse says why (400), and `count_json` after it still holds the limit.

    For every body orjson reads it agrees with `count_json`, with one exception on the strict side: a
    key repeated in one object counts every time (orjson keeps the last value)."""
    count = _Count(limit)
    count.deep = _DEEP_STEPS
    try:
        pos = _RE_SPACE.match(body).end()  # type: ignore[union-attr]
        if pos < len(body) and body[pos] == ord("{"):
            _scan_object(body, pos, path, 0, count)
        else:
            return None
    except (_Unreadable, IndexError):
        return None
    return count.leaves


def _scan_object(buf: bytes, pos: int, path: Path, depth: int, count: _Count) -> int:
    """`buf[pos]` is `{`; the position after its `}`. The path's keys are followed, the rest skipped."""
    keys = path.bkeys[depth]
    last = depth == len(path.keys) - 1
    others = path.others[depth]
    pos = _RE_SPACE.match(buf, pos + 1).end()  # type: ignore[union-attr]
    if buf[pos] == ord("}"):
        return pos + 1
    while True:
        pos = others.match(buf, pos).end()
        key_end = _string_end(buf, pos)
        key = buf[pos + 1:key_end - 1]
        if b"\\" in key:  # an escaped key may still be a path key (orjson unescapes it)
            try:
                key = orjson.loads(buf[pos:key_end]).encode()
            except (orjson.JSONDecodeError, UnicodeEncodeError):
                raise _Unreadable from None
        pos = _RE_SPACE.match(buf, key_end).end()  # type: ignore[union-attr]
        if buf[pos] != _COLON:
            raise _Unreadable
        pos = _RE_SPACE.match(buf, pos + 1).end()  # type: ignore[union-attr]
        if key not in keys:
            pos = _skip(buf, pos, count)
        elif depth in path.single:
            if buf[pos] == ord("{"):
                count.add(0, 1)
                pos = _scan_object(buf, pos, path, depth + 1, count)
            else:
                pos = _skip(buf, pos, count)
        elif buf[pos] == ord("["):
            pos = _scan_list(buf, pos, path, depth, last, count)
        else:
            pos = _skip(buf, pos, count)
        pos = _RE_SPACE.match(buf, pos).end()  # type: ignore[union-attr]
        if buf[pos] == ord("}"):
            return pos + 1
        if buf[pos] != _COMMA:
            raise _Unreadable
        pos = _RE_SPACE.match(buf, pos + 1).end()  # type: ignore[union-attr]


def _scan_list(buf: bytes, pos: int, path: Path, depth: int, last: bool, count: _Count) -> int:
    """`buf[pos]` is `[` of a path list: its entries counted (the last level's as leaves), objects of
    the levels above walked."""
    pos = _RE_SPACE.match(buf, pos + 1).end()  # type: ignore[union-attr]
    if buf[pos] == ord("]"):
        return pos + 1
    while True:
        if last:
            count.add_leaves(1)
            pos = _skip(buf, pos, count)
        else:
            count.add(0, 1)
            pos = _scan_object(buf, pos, path, depth + 1, count) if buf[pos] == ord("{") else _skip(buf, pos, count)
        pos = _RE_SPACE.match(buf, pos).end()  # type: ignore[union-attr]
        if buf[pos] == ord("]"):
            return pos + 1
        if buf[pos] != _COMMA:
            raise _Unreadable
        pos = _RE_SPACE.match(buf, pos + 1).end()  # type: ignore[union-attr]


def _string_end(buf: bytes, pos: int) -> int:
    if buf[pos] != _QUOTE:
        raise _Unreadable
    m = _RE_STRING.match(buf, pos)
    if m is None:
        raise _Unreadable
    return m.end()


def _skip(buf: bytes, pos: int, count: _Count) -> int:
    """The position after the value at `pos` (not checked beyond its brackets and strings: a body
    orjson refuses is refused after the scan anyway)."""
    head = buf[pos]
    if head == _QUOTE:
        return _string_end(buf, pos)
    if head not in _OPEN:
        m = _RE_SCALAR.match(buf, pos)
        if m is None:
            raise _Unreadable
        return m.end()
    m = _RE_VALUE.match(buf, pos)
    if m is not None:
        return m.end()
    # nested deeper than _RE_VALUE reaches: bracket by bracket, each shallow part still in C
    level = 0
    while True:
        count.deep -= 1
        if count.deep < 0:
            raise TooMany(f"values nested deeper than {_NESTED} levels in too many places")
        head = buf[pos]
        if head in _OPEN:
            level += 1
            if level > _ORJSON_DEPTH:
                raise _Unreadable
            pos += 1
        elif head in _CLOSE:
            level -= 1
            pos += 1
            if level == 0:
                return pos
        else:
            raise _Unreadable  # a string that does not end
        pos = _RE_FLAT.match(buf, pos).end()  # type: ignore[union-attr]
