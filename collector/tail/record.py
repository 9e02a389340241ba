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
from collector.tail.multiline import Joined
from collector.tail.parsers import auto_access, parse, unparsed
from collector.tail.parsers.jsonlogs import PINO_PLAIN
from collector.tail.parsers.nginx import ACCESS_PLAIN, level_of_status
from collector.tail.parsers.times import clf, epoch
from collector.tail.reader import FileTail

AGENT = {"type": "elk-tail"}
_SCALARS = (str, int, float, bool)
_QUOTE, _ESCAPED = '"', '\\"'
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

    def _parts(self, tail: FileTail) -> tuple[str, str, str, str, str, str]:
        """The constant pieces of a parsed record of `tail` as JSON text, for the per-format fast paths:
        ecs.version + service, the id prefix, log.file, host + agent, agent alone, this host's name (for
        a host object that has a hostname before it). Cached on the tail for its current generation."""
        cached = tail.parsed_parts
        if cached is not None and cached[0] is self:
            return cached[1]
        ident = tail.line_id(0)
        source = tail.source
        host = orjson.dumps(self.host).decode()
        agent = ',"agent":' + orjson.dumps(AGENT).decode() + "}"
        parts = (',"ecs.version":' + orjson.dumps(ECS_VERSION).decode() + ',"service":'
                 + orjson.dumps(source.service_obj).decode() + ",",
                 ident[:-1],
                 '"},"log":{"file":' + orjson.dumps(tail.file_obj).decode() + ',"offset":',
                 '},"host":' + host + agent, "}" + agent, host[1:])
        tail.parsed_parts = (self, parts)
        return parts

    def fast(self, tail: FileTail, start: int, text: str) -> bytes | None:
        """`build(...)[1]` for the commonest lines of format auto, written straight from the parsed
        fields (no record dict, no general merging): an nginx `combined` line of plain printable ASCII
        and a plain pino line. None: any other line, for `build` (tested byte for byte against it).
        The caller checks that the file has no static fields and the line no Docker attributes, and
        keys the record by the file's service (neither shape names a service)."""
        if text[:1] == "{":
            return self._pino(tail, start, text)
        # only lines of printable ASCII without a backslash match: the only JSON escaping is then of
        # `"`, and the fields hold none, so they go in as they are
        found = ACCESS_PLAIN.fullmatch(text)
        if found is None or not auto_access(text):
            return None
        addr, user, when, method, target, version, status, size, referrer, agent = found.groups()
        ts = clf(when)
        if ts is None:
            return None
        code = int(status)
        path, _, query = target.partition("?")
        head, prefix, where, end, _, _ = self._parts(tail)
        ip = f',"ip":"{addr}"' if addr[0].isdigit() or ":" in addr else ""
        named = f'}},"user":{{"name":"{user}"' if user != "-" else ""
        ref = f',"referrer":"{referrer}"' if referrer and referrer != "-" else ""
        ver = f',"version":"{version}"' if version else ""
        query = f',"query":"{query}"' if query else ""
        ua = f'}},"user_agent":{{"original":"{agent}"' if agent and agent != "-" else ""
        return (f'{{"@timestamp":"{ts}","log.level":"{level_of_status(code)}","message":"'
                f'{text.replace(_QUOTE, _ESCAPED)}"{head}"source":{{"address":"{addr}"{ip}{named}}},'
                f'"http":{{"request":{{"method":"{method}"{ref}}}{ver},"response":{{"status_code":{code},'
                f'"body":{{"bytes":{int(size) if size != "-" else 0}}}}}}},"url":{{"original":"{target}",'
                f'"path":"{path}"{query}{ua}}},"event":{{"id":"{prefix}{start:x}{where}{start}{end}').encode()

    def _pino(self, tail: FileTail, start: int, text: str) -> bytes | None:
        """A pino line of level, time (epoch ms), pid, hostname, msg and scalar fields only."""
        try:
            obj = orjson.loads(text)
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
        labels = ""
        if obj:
            found: dict[str, Any] = {}
            for key, value in obj.items():
                if type(value) in _SCALARS:
                    found[key.replace(".", "_")] = value
                elif value is not None:
                    return None  # extra.*: the general path
            if found:
                labels = ',"labels":' + dumps(found).decode()
        head, prefix, where, _, end, host = self._parts(tail)
        return (f'{{"@timestamp":"{ts}","log.level":"{name}","message":{dumps(msg).decode()}{head}'
                f'"process":{{"pid":{pid}}},"host":{{"hostname":{dumps(hostname).decode()},{host}{labels},'
                f'"event":{{"id":"{prefix}{start:x}{where}{start}{end}').encode()

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
