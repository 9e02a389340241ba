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
from collector.contract.levels import normalize_level
from collector.contract.timefmt import normalize_ts
from collector.tail.multiline import Joined
from collector.tail.parsers import parse, unparsed
from collector.tail.reader import FileTail

AGENT = {"type": "elk-tail"}
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
