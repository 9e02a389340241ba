"""JSON log lines: ECS (this library, @elastic/ecs-pino-format, ecs-winston), pino and pino-http,
bunyan, winston, nginx's JSON format, and any other JSON object.

Field facts: pino writes `level` as a number (10 trace .. 60 fatal), `time` in epoch ms, `msg`,
`pid`, `hostname`, and serialises errors under `err` as {type, message, stack}; pino-http adds
`req` {id, method, url, headers, remoteAddress, remotePort}, `res` {statusCode, headers} and
`responseTime` (ms). bunyan writes `v: 0`, `name`, `hostname`, `pid`, numeric `level`, `msg` and an
ISO `time`. winston's json format writes `level` (a name), `message` and, with format.timestamp(),
`timestamp`; format.errors({stack: true}) adds `stack`.
"""

from __future__ import annotations

from typing import Any

from collector.contract.levels import NUMERIC, normalize_level
from collector.contract.timefmt import normalize_ts
from collector.tail.parsers import nginx, times

_SCALARS = (str, int, float, bool)
_TIME_KEYS = ("time", "timestamp", "ts", "@timestamp")
_MESSAGE_KEYS = ("msg", "message", "log")
_ERROR_KEYS = {"type": "type", "name": "type", "message": "message", "stack": "stack_trace", "code": "code"}
_NUMERIC = sorted(NUMERIC.items())
# keys that make a JSON line something other than a plain pino line (another format, or a field with
# its own handling): a line with none of them, besides level, time, msg, pid and hostname, has only
# labels left (the records' fast path)
PINO_PLAIN = frozenset({"ecs.version", "ecs", "log.level", "http.request.method", "request_time", "v", "name",
                        *_TIME_KEYS, *_MESSAGE_KEYS, "severity", "err", "error", "stack", "req", "res",
                        "responseTime"})


def nearest_level(number: int) -> str:
    """A custom numeric level (pino's customLevels, e.g. 35) -> the nearest standard one (a tie goes
    to the more severe)."""
    return min(_NUMERIC, key=lambda item: (abs(item[0] - number), -item[0]))[1]


def detect(obj: dict[str, Any]) -> str:
    if "ecs.version" in obj or isinstance(obj.get("ecs"), dict) or "log.level" in obj:
        return "ecs"
    if "http.request.method" in obj or "request_time" in obj:
        return "nginx_json"
    level = obj.get("level")
    if type(level) is int:
        return "bunyan" if "v" in obj and "name" in obj else "pino"
    if "message" in obj and isinstance(level, str):
        return "winston"
    return "json"


def from_json(obj: dict[str, Any], fmt: str) -> dict[str, Any]:
    kind = detect(obj) if fmt in ("auto", "json") else fmt
    if kind == "ecs":
        return _ecs(obj)
    if kind == "nginx_json":
        return nginx.from_json(obj)
    return _other(obj, kind)


def _ecs(obj: dict[str, Any]) -> dict[str, Any]:
    ts = obj.get("@timestamp")
    if ts is not None:
        normal = normalize_ts(ts)
        if normal is not None:
            obj["@timestamp"] = normal
    if "log.level" in obj:
        obj["log.level"] = normalize_level(obj["log.level"]) or obj["log.level"]
    else:
        log = obj.get("log")
        if isinstance(log, dict) and "level" in log:
            log["level"] = normalize_level(log["level"]) or log["level"]
    return obj


def _error(err: Any, out: dict[str, Any]) -> None:
    """ECS error.type/message/stack_trace/code; the error's other fields (errno, syscall, address,
    port, cause...) are kept under extra.err, none dropped."""
    if isinstance(err, dict):
        error: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        for key, value in err.items():
            dst = _ERROR_KEYS.get(key)
            if dst is not None and dst not in error and value is not None:
                error[dst] = value if isinstance(value, str) else str(value)
            elif value is not None:
                rest[key] = value
        out["error"] = error
        if rest:
            out.setdefault("extra", {})["err"] = rest
    elif isinstance(err, str):
        out["error"] = {"message": err}


def _http(req: Any, res: Any, took: Any, out: dict[str, Any]) -> None:
    """pino-http's (and bunyan's) req/res: ECS http.*, url.*, source.*, user_agent, event.duration."""
    http: dict[str, Any] = {}
    if isinstance(req, dict):
        request: dict[str, Any] = {}
        if isinstance(req.get("method"), str):
            request["method"] = req["method"]
        if req.get("id") is not None:
            request["id"] = str(req["id"])
        headers = req.get("headers")
        if isinstance(headers, dict):
            if isinstance(headers.get("referer"), str):
                request["referrer"] = headers["referer"]
            if isinstance(headers.get("user-agent"), str):
                out["user_agent"] = {"original": headers["user-agent"]}
        if request:
            http["request"] = request
        target = req.get("url")
        if isinstance(target, str):
            path, _, query = target.partition("?")
            out["url"] = {"original": target, "path": path, **({"query": query} if query else {})}
        addr = req.get("remoteAddress")
        if isinstance(addr, str):
            source: dict[str, Any] = {"address": addr, "ip": addr.removeprefix("::ffff:")}
            if type(req.get("remotePort")) is int:
                source["port"] = req["remotePort"]
            out["source"] = source
    if isinstance(res, dict) and type(res.get("statusCode")) is int:
        http["response"] = {"status_code": res["statusCode"]}
    if http:
        out["http"] = http
    if type(took) in (int, float):
        out.setdefault("event", {})["duration"] = int(took * 1_000_000)  # ms -> ns


def _other(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _TIME_KEYS:
        if key in obj:
            value = obj[key]
            ts = times.epoch(value) if type(value) in (int, float) else normalize_ts(value)
            if ts is not None:
                out["@timestamp"] = ts
                del obj[key]
                break
    level = obj.pop("level", None)
    if level is None:
        level = obj.pop("severity", None)
    normal = normalize_level(level)
    if normal is None and type(level) is int:
        normal = nearest_level(level)
        obj["level"] = level  # the number kept (labels.level) beside the nearest name
    if normal is not None:
        out["log.level"] = normal
    for key in _MESSAGE_KEYS:
        if isinstance(obj.get(key), str):
            out["message"] = obj.pop(key)
            break
    if "err" in obj or "error" in obj:
        _error(obj.pop("err", None) or obj.pop("error", None), out)
    if isinstance(obj.get("stack"), str):  # winston format.errors({stack: true})
        out.setdefault("error", {})["stack_trace"] = obj.pop("stack")
    if "req" in obj or "res" in obj:
        _http(obj.pop("req", None), obj.pop("res", None), obj.pop("responseTime", None), out)
    if type(obj.get("pid")) is int:
        out["process"] = {"pid": obj.pop("pid")}
    if isinstance(obj.get("hostname"), str):
        out["host"] = {"hostname": obj.pop("hostname")}
    if kind == "bunyan":
        obj.pop("v", None)
        if isinstance(obj.get("name"), str):
            out["log"] = {"logger": obj.pop("name")}
    elif kind == "pino" and isinstance(obj.get("name"), str):
        out["log"] = {"logger": obj.pop("name")}
    labels: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in obj.items():
        if type(value) in _SCALARS:
            labels[key.replace(".", "_")] = value
        elif value is not None:
            extra[key] = value
    if labels:
        out["labels"] = labels
    if extra:
        out.setdefault("extra", {}).update(extra)
    return out
