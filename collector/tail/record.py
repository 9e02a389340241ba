"""One joined record -> (Kafka key, value bytes), shaped like the library's records.

The value is deterministic for a given line of a given file generation: no read-time or send-time
field, dicts built in a fixed order, so a re-sent line is byte-identical and collapses in the index
(its `event.id` is the line's id). A line without its own time gets none: the shipper then takes the
Kafka timestamp.
"""

from __future__ import annotations

from typing import Any

import orjson

from collector.contract.ecs import ECS_VERSION
from collector.contract.levels import NUMERIC, normalize_level
from collector.contract.timefmt import normalize_ts
from collector.tail.multiline import Joined, whole
from collector.tail.parsers import auto_access_ascii, parse, unparsed
from collector.tail.parsers.jsonlogs import PINO_PLAIN
from collector.tail.parsers.nginx import ACCESS_PLAIN, level_of_status
from collector.tail.parsers.times import clf, epoch
from collector.tail.reader import FileTail

AGENT = {"type": "elk-tail"}
_SCALARS = (str, int, float, bool)
_LEVEL_BYTES = {name: name.encode() for name in NUMERIC.values()}
_STATUS_LEVEL = [_LEVEL_BYTES[level_of_status(code)] for code in range(1000)]  # ACCESS_PLAIN: 3 digits
_DIGITS = b"0123456789"
_TOP = ("@timestamp", "log.level", "message", "ecs.version")


def _service_name(parsed: dict[str, Any]) -> str | None:
    name = parsed.get("service.name")
    if isinstance(name, str) and name:
        return name
    service = parsed.get("service")
    if isinstance(service, dict) and isinstance(service.get("name"), str) and service["name"]:
        return str(service["name"])
    return None


class Builder:
    def __init__(self, host_name: str):
        self.host = {"name": host_name}
        self._hostname = ("", b'""')  # the last pino hostname and its JSON
        self._when = (b"", b"")  # the last nginx time and its wire form

    def raw_template(self, tail: FileTail) -> bytes:
        """The bytes of `raw()`'s record for a plain file, as a %-template of (message JSON, offset in
        hex, offset): the per-line work is one JSON string and one format, no dicts."""
        source = tail.source
        cached = tail.raw_template
        if cached is not None and cached[0] == tail.line_id(0):
            return cached[1]

        def lit(value: bytes) -> bytes:
            return value.replace(b"%", b"%%")

        template = (b'{"message":%b' + lit(b',"ecs.version":' + orjson.dumps(ECS_VERSION) + b',"service":'
                                          + orjson.dumps(source.service_obj) + b',"event":{"id":'
                                          + orjson.dumps(tail.line_id(0))[:-2])
                    + b'%x' + lit(b'"},"log":{"file":' + orjson.dumps(tail.file_obj) + b',"offset":') + b'%d'
                    + lit(b'},"host":' + orjson.dumps(self.host) + b',"agent":' + orjson.dumps(AGENT) + b'}'))
        tail.raw_template = (tail.line_id(0), template)
        return template

    def _parts(self, tail: FileTail) -> tuple[tuple[bytes, ...], bytes]:
        """The per-format fast paths' records of `tail`, everything constant per file generation
        (service, id prefix, file, host, agent) in place. nginx: the constant pieces between the
        fields, joined with them (time, level, message text, address, `ip`, `user`, method,
        `referrer`, `version`, status, bytes, URL, path, `query`, `user_agent`, offset in hex,
        offset); pino: a bytes %-template of time, level, message JSON, pid, hostname JSON, `labels`,
        offset in hex, offset."""
        cached = tail.parsed_parts
        if cached is not None and cached[0] is self:
            return cached[1]
        source = tail.source
        host = orjson.dumps(self.host)
        agent = b',"agent":' + orjson.dumps(AGENT) + b"}"
        head = b',"ecs.version":' + orjson.dumps(ECS_VERSION) + b',"service":' + orjson.dumps(source.service_obj) + b","
        event = b'"event":{"id":"' + tail.line_id(0)[:-1].encode()
        where = b'"},"log":{"file":' + orjson.dumps(tail.file_obj) + b',"offset":'
        # NUL marks a field: orjson writes none in its output (it escapes control characters)
        nginx = (b'{"@timestamp":"\0","log.level":"\0","message":"\0"' + head + b'"source":{"address":"\0"\0\0},'
                 b'"http":{"request":{"method":"\0"\0}\0,"response":{"status_code":\0,"body":{"bytes":\0}}},'
                 b'"url":{"original":"\0","path":"\0"\0\0},' + event + b"\0" + where + b"\0"
                 + b'},"host":' + host + agent)
        pieces = tuple(nginx.split(b"\0"))
        assert len(pieces) == 18

        def lit(value: bytes) -> bytes:
            return value.replace(b"%", b"%%")

        pino = (b'{"@timestamp":"%b","log.level":"%b","message":%b' + lit(head) + b'"process":{"pid":%d},'
                b'"host":{"hostname":%b,' + lit(host[1:]) + b'%b,' + lit(event) + b'%x' + lit(where) + b'%d'
                + lit(b"}" + agent))
        tail.parsed_parts = (self, (pieces, pino))
        return pieces, pino

    def fast(self, tail: FileTail, start: int, line: bytes) -> bytes | None:
        """`build(...)[1]` for the commonest lines of format auto, written straight from the parsed
        fields (no record dict, no general merging): an nginx `combined` line of plain printable ASCII
        and a plain pino line, from the line's bytes (`build` has them decoded). None: any other line,
        for `build` (tested byte for byte against it). The caller checks that the file has no static
        fields and the line no Docker attributes, and keys the record by the file's service (neither
        shape names a service)."""
        if line[:1] == b"{":
            return self._pino(tail, start, line)
        values: list[bytes] = []
        self.fast_run(tail, [(start, start, line)], 0, 1, 1, 0, 1 << 62, values, alone=True)
        return values[0] if values else None

    def fast_run(self, tail: FileTail, lines: list[tuple[int, int, bytes]], index: int, stop: int, room: int,
                 overhead: int, max_record: int, values: list[bytes], alone: bool = False) -> tuple[int, int, int]:
        """`fast` over lines[index:stop] in one loop (the tailer's commonest case: per-line calls would
        cost as much as the work): each line that is a record by itself (`whole` with the line after
        it; `alone`: not checked, the caller knows) and that the fast path writes is appended to
        `values`, while the records' sizes (each plus `overhead`) stay below `room`; it stops at the
        first other line. Returns where it stopped, the size added and the end of the last line taken
        (-1: none).

        nginx: only lines of printable ASCII without a backslash match ACCESS_PLAIN: the only JSON
        escaping is then of `"`, and the fields hold none, so they go in as they are (joined by `+`:
        cheaper than a `%` per optional field)."""
        size = 0
        last = -1
        append = values.append
        fullmatch = ACCESS_PLAIN.fullmatch
        pino = self._pino
        cached = tail.parsed_parts
        (p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, p16, p17) = (
            cached[1][0] if cached is not None and cached[0] is self else self._parts(tail)[0])
        join = b"".join
        levels = _STATUS_LEVEL
        digits = _DIGITS
        while index < stop and size < room:
            start, end, line = lines[index]
            if not alone and not whole(line, lines[index + 1][2]):
                break
            if line[:1] == b"{":
                value = pino(tail, start, line)
                if value is None:
                    break
            else:
                if not auto_access_ascii(line):
                    break
                found = fullmatch(line)
                if found is None:
                    break
                addr, user, when, method, target, version, status, size_field, referrer, agent = found.groups()
                if when != self._when[0]:
                    ts = clf(when.decode())
                    if ts is None:
                        break
                    self._when = (when, ts.encode())
                code = int(status)
                path, _, query = target.partition(b"?")
                # numbers as nginx wrote them unless a leading zero makes JSON's form differ
                value = join((
                    p0, self._when[1], p1, levels[code], p2, line.replace(b'"', b'\\"'), p3, addr, p4,
                    b',"ip":"' + addr + b'"' if addr[0] in digits or b":" in addr else b"", p5,
                    b'},"user":{"name":"' + user + b'"' if user != b"-" else b"", p6, method, p7,
                    b',"referrer":"' + referrer + b'"' if referrer and referrer != b"-" else b"", p8,
                    b',"version":"' + version + b'"' if version else b"", p9,
                    status if status[0] != 48 else b"%d" % code, p10,
                    b"0" if size_field == b"-" else size_field if size_field[0] != 48 or len(size_field) == 1
                    else b"%d" % int(size_field), p11, target, p12, path, p13,
                    b',"query":"' + query + b'"' if query else b"", p14,
                    b'},"user_agent":{"original":"' + agent + b'"' if agent and agent != b"-" else b"", p15,
                    b"%x" % start, p16, b"%d" % start, p17))
            if len(value) > max_record:
                break
            append(value)
            size += len(value) + overhead
            last = end
            index += 1
        return index, size, last

    def _pino(self, tail: FileTail, start: int, line: bytes) -> bytes | None:
        """A pino line of level, time (epoch ms), pid, hostname, msg and scalar fields only."""
        try:
            obj = orjson.loads(line)  # invalid UTF-8 is refused: the general path decodes it with U+FFFD
        except orjson.JSONDecodeError:
            return None
        if type(obj) is not dict:
            return None
        pop = obj.pop
        level = pop("level", None)
        name = NUMERIC.get(level) if type(level) is int else None
        stamp = pop("time", None)
        msg = pop("msg", None)
        pid = pop("pid", None)
        hostname = pop("hostname", None)
        if (name is None or type(stamp) is not int or type(msg) is not str or type(pid) is not int
                or type(hostname) is not str or not PINO_PLAIN.isdisjoint(obj)):
            return None
        ts = epoch(stamp)
        if ts is None:
            return None
        dumps = orjson.dumps
        labels = b""
        if obj:
            plain = True  # the fields left are the labels as they are (no dotted name, no null)
            for key, value in obj.items():
                if type(value) not in _SCALARS:
                    if value is not None:
                        return None  # extra.*: the general path
                    plain = False
                elif "." in key:
                    plain = False
            if not plain:
                obj = {key.replace(".", "_"): value for key, value in obj.items() if value is not None}
            if obj:
                labels = b',"labels":' + dumps(obj)
        if hostname != self._hostname[0]:  # a file's lines name one host: its JSON is kept
            self._hostname = (hostname, dumps(hostname))
        return self._parts(tail)[1] % (ts.encode(), _LEVEL_BYTES[name], dumps(msg), pid, self._hostname[1], labels,
                                       start, start)

    def raw(self, tail: FileTail, joined: Joined) -> tuple[bytes, bytes]:
        """Format `raw`: the text as the message, no parsing (the hot path of plain shipping)."""
        source = tail.source
        rec: dict[str, Any] = {"message": joined.text, "ecs.version": ECS_VERSION, "service": source.service_obj,
                               "event": {"id": tail.line_id(joined.start)},
                               "log": {"file": tail.file_obj, "offset": joined.start}, "host": self.host}
        if source.static:
            rec.update(source.static)
        if joined.attrs is not None:
            if joined.attrs[1]:
                ts = normalize_ts(joined.attrs[1])
                if ts is not None:
                    rec["@timestamp"] = ts
            rec["labels"] = {"stream": joined.attrs[0]}
        rec["agent"] = AGENT
        return source.key, orjson.dumps(rec)

    def build(self, tail: FileTail, joined: Joined) -> tuple[bytes, bytes]:
        source = tail.source
        text = joined.text
        if source.fmt == "raw":
            return self.raw(tail, joined)
        try:
            found = parse(text, source.fmt) if text else None
        except Exception:  # a parser bug must never cost a line
            found = None
        parsed: dict[str, Any] = found if found is not None else unparsed(text)
        attrs = joined.attrs  # Docker: (stream, time)
        rec: dict[str, Any] = {}
        pop = parsed.pop
        ts = pop("@timestamp", None)
        if ts is not None:
            rec["@timestamp"] = ts
        elif attrs is not None and attrs[1]:
            ts = normalize_ts(attrs[1])
            if ts is not None:
                rec["@timestamp"] = ts
        level = pop("log.level", None)
        log = parsed.get("log")
        if level is not None:
            rec["log.level"] = level
        elif not (type(log) is dict and "level" in log):
            rec["log.level"] = "info"
        rec["message"] = pop("message", text)
        rec["ecs.version"] = pop("ecs.version", ECS_VERSION)
        service = _service_name(parsed) if "service" in parsed or "service.name" in parsed else None
        if service is None:
            service = source.service
            rec["service"] = source.service_obj
        rec.update(parsed)
        event = rec.get("event")
        if event is None:
            rec["event"] = event = {}
        elif type(event) is not dict:
            rec["event"] = event = {"original": str(event)}
        event["id"] = tail.line_id(joined.start)
        where = {"file": tail.file_obj, "offset": joined.start}
        if type(log) is dict:
            if "level" in log:
                log["level"] = normalize_level(log["level"]) or log["level"]
            log.update(where)
        else:
            rec["log"] = where
        host = rec.get("host")
        rec["host"] = {**host, **self.host} if type(host) is dict else self.host
        if source.static:
            for key, value in source.static.items():
                rec.setdefault(key, value)
        if attrs is not None:
            labels = rec.get("labels")
            if type(labels) is not dict:
                rec["labels"] = labels = {}
            labels["stream"] = attrs[0]
        if "agent" not in rec:
            rec["agent"] = AGENT
        return (source.key if service is source.service else service.encode()), orjson.dumps(rec)
