"""nginx: the `combined` access log, the JSON access format of docs/ingest.md, and the error log.

combined (ngx_http_log_module): `$remote_addr - $remote_user [$time_local] "$request" $status
$body_bytes_sent "$http_referer" "$http_user_agent"`, anything after it kept in the message.
error log (ngx_log_error_core): `yyyy/mm/dd hh:mm:ss [level] pid#tid: *cid message, client: ...,
server: ..., request: "...", host: "..."`, in the server's local time (taken as UTC).
"""

from __future__ import annotations

import re
from typing import Any

from collector.contract.levels import ERROR, INFO, WARNING, normalize_level
from collector.tail.parsers import times

_Q = r'"([^"\\]*(?:\\.[^"\\]*)*)"'  # runs of plain characters: not one alternation a character
ACCESS = re.compile(r"(\S+) - (\S+) \[([^\]]+)\] " + _Q + r" (\d{3}) (\d+|-)(?: " + _Q + " " + _Q + ")?")
REQUEST = re.compile(r"([A-Z]+) (\S+)(?: HTTP/(\d(?:\.\d)?))?$")
# ACCESS then REQUEST in one, for whole lines of printable ASCII with no backslash and no `"` outside
# the quoted fields (the records' fast path): where it matches (fullmatch), ACCESS and REQUEST give
# the same fields (each field ends at the first character that can end it, in both)
_NO_ESCAPE = r"!#-\[\]-~"  # printable ASCII but space, `"` and backslash
ACCESS_PLAIN = re.compile(rf'([{_NO_ESCAPE}]+) - ([{_NO_ESCAPE}]+) \[([ -\[^-~]+)\] "([A-Z]+) ([{_NO_ESCAPE}]+)'
                          rf'(?: HTTP/(\d(?:\.\d)?))?" (\d{{3}}) (\d+|-)(?: "([ {_NO_ESCAPE}]*)" "([ {_NO_ESCAPE}]*)")?'
                          r'[ -\[\]-~]*')
_ERROR = re.compile(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\d+)#(\d+): (?:\*(\d+) )?(.*)", re.S)
_CONTEXT = re.compile(r', (client|server|request|upstream|host|referrer): (?:"([^"]*)"|([^,]*))')


def level_of_status(status: int) -> str:
    return ERROR if status >= 500 else WARNING if status >= 400 else INFO


def _request(method: str, target: str, version: str | None, out: dict[str, Any]) -> None:
    http = out.setdefault("http", {})
    http["request"] = {"method": method}
    if version:
        http["version"] = version
    path, _, query = target.partition("?")
    url: dict[str, Any] = {"original": target, "path": path}
    if query:
        url["query"] = query
    out["url"] = url


def parse_access(text: str) -> dict[str, Any] | None:
    found = ACCESS.match(text)
    if found is None:
        return None
    addr, user, when, request, status, size, referrer, agent = found.groups()
    out: dict[str, Any] = {}
    ts = times.clf(when)
    if ts is not None:
        out["@timestamp"] = ts
    code = int(status)
    out["log.level"] = level_of_status(code)
    out["message"] = text
    out["source"] = {"address": addr, "ip": addr} if addr[0].isdigit() or ":" in addr else {"address": addr}
    if user != "-":
        out["user"] = {"name": user}
    req = REQUEST.match(request)
    if req is not None:
        _request(req[1], req[2], req[3], out)
    http = out.setdefault("http", {})
    http["response"] = {"status_code": code, "body": {"bytes": int(size) if size != "-" else 0}}
    if referrer and referrer != "-":
        http.setdefault("request", {})["referrer"] = referrer
    if agent and agent != "-":
        out["user_agent"] = {"original": agent}
    return out


def parse_error(text: str) -> dict[str, Any] | None:
    found = _ERROR.match(text)
    if found is None:
        return None
    when, level, pid, tid, connection, message = found.groups()
    out: dict[str, Any] = {}
    ts = times.slashed(when)
    if ts is not None:
        out["@timestamp"] = ts
    out["log.level"] = normalize_level(level) or ERROR
    out["message"] = message
    out["process"] = {"pid": int(pid), "thread": {"id": int(tid)}}
    labels: dict[str, Any] = {}
    if connection:
        labels["connection"] = int(connection)
    for key, quoted, bare in _CONTEXT.findall(message):
        value = quoted or bare
        if key == "client":
            out["source"] = {"address": value, "ip": value}
        elif key == "request":
            req = REQUEST.match(value)
            if req is not None:
                _request(req[1], req[2], req[3], out)
        elif key == "host":
            out.setdefault("url", {})["domain"] = value
        else:
            labels[key] = value
    if labels:
        out["labels"] = labels
    return out


def from_json(obj: dict[str, Any]) -> dict[str, Any]:
    """The docs/ingest.md JSON format (ECS keys already): level from the status, `event.duration` (ns)
    from nginx's `request_time` (seconds), a `message` like `GET /api/users 200`."""
    raw = obj.get("@timestamp")
    ts = times.iso(raw) if type(raw) is str else None
    if ts is not None:
        obj["@timestamp"] = ts
    status = obj.get("http.response.status_code")
    if "log.level" not in obj:
        obj["log.level"] = level_of_status(status if type(status) is int else 0)
    took = obj.pop("request_time", None)
    if took not in (None, "", "-") and "event.duration" not in obj:
        try:
            obj["event.duration"] = int(float(took) * 1e9)
        except (TypeError, ValueError):
            pass
    if "message" not in obj:
        obj["message"] = f"{obj.get('http.request.method', '-')} {obj.get('url.original', obj.get('url.path', '-'))} " \
                         f"{status if status is not None else '-'}"
    return obj
