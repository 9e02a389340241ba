"""Shaping one posted record into the ECS document the library emits (docs/ARCHITECTURE.md).

Plain dicts on the hot path. Per record: top-level `@timestamp` (UTC, millisecond `Z` form; left
out when the caller gives none: the record's Kafka time stands for it),
`log.level` (lower-case), `message`, `ecs.version` first; then nested ECS objects. Dotted ECS
keys (`"service.name"`) are nested; caller fields that are not ECS go under `labels` (scalars)
or `extra` (anything else), exactly like `collector.record.build`. `service.name` is the
token's service (an instance name such as `api-service-1` or `api_service_1` is accepted for
its service by the contract's instance rule and kept as `service.node.name`); `event.dataset`
and `data_stream` are never the caller's to pick. Levels, timestamps, instance names and health
status words are read by the contract (collector/contract), as in the prober and the shipper.
Common logger shapes are understood: pino (`level` 30, `msg`, `time`), winston/bunyan
(`level`, `message`/`msg`, `timestamp`/`time`) and the seed's `/health` body for /v1/health.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from collector.contract.ecs import ECS_VERSION, SPEC_TOP
from collector.contract.health import PROBE_STATUSES, outcome, probe_status, status_word
from collector.contract.levels import INFO, LEVELS, normalize_level
from collector.contract.names import is_instance_of, other_service_named
from collector.contract.streams import DATASET_HEALTH, sanitize_dataset
from collector.contract.timefmt import ORIGINAL_LABEL, OUT_OF_RANGE_LABEL, normalize_ts, plausible_wire
from collector.redact import REDACTED, Redactor

Record = dict[str, Any]

# top-level ECS field sets a record may carry as objects (kept, redacted where text can hide secrets)
ECS_OBJECTS = frozenset({
    "agent", "client", "cloud", "container", "destination", "dns", "email", "error", "file", "host", "http",
    "network", "observer", "orchestrator", "process", "rule", "server", "source", "span", "threat", "tls",
    "trace", "transaction", "url", "user", "user_agent",
})
_SPEC_TOP = frozenset(SPEC_TOP)
_SERVICE_TEXT = ("version", "environment", "id", "type", "state", "address", "ephemeral_id")
_SCALARS = (str, int, float, bool)
MAX_TEXT = 32_768  # `message` beyond this is cut (the full record must still fit a Kafka message)


class Reject(Exception):
    """This record cannot be accepted; str(exc) is the reason given to the client."""


class OtherService(Exception):
    """The record names a service the token may not write for (the request gets 403)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def parse_timestamp(value: Any) -> str:
    """ISO-8601 (any offset) or epoch seconds/milliseconds -> `2026-01-02T03:04:05.678Z`."""
    normalized = normalize_ts(value)
    if normalized is not None:
        return normalized
    if type(value) is str:
        raise Reject(f"@timestamp: {value[:64]!r} is not an ISO-8601 time")
    if type(value) in (int, float):
        raise Reject(f"@timestamp: {value!r} is out of range")
    raise Reject("@timestamp: expected an ISO-8601 string or epoch milliseconds")


def _mark_out_of_range(fields: Record, original: Any) -> None:
    """A record whose own time is outside the plausible window (contract timefmt) is written with no
    time of ours, so the shipper takes the time Kafka gives it (the receive time) and a retry stays
    the same bytes; the sender's value is kept in `labels`, with the mark."""
    labels = fields.get("labels")
    if labels is None or type(labels) is dict:  # anything else is rejected by _rest
        fields["labels"] = {**(labels or {}), ORIGINAL_LABEL: str(original)[:64], OUT_OF_RANGE_LABEL: True}


def parse_level(value: Any) -> str:
    level = normalize_level(value)
    if level is not None:
        return level
    if type(value) is str:
        raise Reject(f"log.level: {value[:32]!r} is not one of {', '.join(LEVELS)}")
    raise Reject(f"log.level: expected one of {', '.join(LEVELS)}")


def _http_ok(http: Any) -> bool:
    """Whether a posted probe result's HTTP answer was 2xx; without one the body was read from a 2xx."""
    response = http.get("response") if type(http) is dict else None
    code = response.get("status_code") if type(response) is dict else None
    if code is None:
        return True
    if type(code) is not int or not 100 <= code <= 599:
        raise Reject("http.response.status_code: expected an HTTP status code (100-599)")
    return 200 <= code < 300


class Shaper:
    """Builds ECS records for one token's service. Cheap to create; holds no request state."""

    def __init__(self, redactor: Redactor, default_environment: str = "",
                 known_services: Callable[[], Iterable[str]] = tuple):
        self.redactor = redactor
        self.known_services = known_services  # every service a token exists for (the node-name rule)
        self.default_environment = default_environment
        self._dataset: dict[str, str] = {}
        self._label_names: dict[str, tuple[str, bool]] = {}

    def dataset(self, service: str) -> str:
        ds = self._dataset.get(service)
        if ds is None:
            ds = sanitize_dataset(service)
            if len(self._dataset) < 10_000:
                self._dataset[service] = ds
        return ds

    def _label_name(self, key: str) -> tuple[str, bool]:
        """(the label's name, "" when it cannot be one; whether its value is secret), remembered:
        label keys repeat on every record of a client."""
        known = (key.replace(".", "_") if key.strip(". ") else "", self.redactor.key_is_secret(key))
        if len(self._label_names) < 10_000:  # bounded: keys are the client's
            self._label_names[key] = known
        return known

    # ------------------------------------------------------------------ the three kinds

    def log(self, raw: Any, service: str) -> Record:
        rec, fields = self._common(raw, service)
        rec["event"] = self._event(fields, {"dataset": self.dataset(service)})
        self._rest(rec, fields)
        return rec

    def metric(self, raw: Any, service: str) -> Record:
        rec, fields = self._common(raw, service, default_message="")
        metric = fields.pop("metric", None)
        if type(metric) is not dict:
            raise Reject("metric: an object with name, type and values is required")
        rec["metric"] = _metric(metric)
        if not rec["message"]:
            rec["message"] = f"metric {rec['metric']['name']}"
        rec["event"] = self._event(fields, {"kind": "metric", "dataset": self.dataset(service)})
        self._rest(rec, fields)
        return rec

    def health(self, raw: Any, service: str) -> Record:
        if type(raw) is dict and type(raw.get("status")) is str and "health" not in raw:
            raw = dict(raw)  # the seed's /health body: {"status", "service", "timestamp", "uptime"}
            raw["health"] = {"body_status": raw.pop("status")}
        rec, fields = self._common(raw, service, default_message="")
        health = fields.pop("health", None)
        if type(health) is not dict:
            raise Reject("health.status (or the /health body's status) is required")
        health = dict(health)
        status = health.get("status", health.get("body_status"))
        if type(status) is not str:
            raise Reject(f"health.status: expected a string ({', '.join(PROBE_STATUSES)})")
        word = status_word(status)
        if word is None:
            raise Reject(f"health.status: {status[:32]!r} is not one of {', '.join(PROBE_STATUSES)}")
        health["status"] = probe_status(_http_ok(fields.get("http")), word)
        rec["health"] = {k: v for k, v in self.redactor.deep(health).items() if type(v) in _SCALARS}
        event = fields.get("event")
        duration = event.get("duration") if type(event) is dict else None
        rec["event"] = self._event(fields, {
            "kind": "state", "dataset": DATASET_HEALTH, "action": "health-check",
            "outcome": outcome(health["status"]),
        })
        if type(duration) is int:
            rec["event"]["duration"] = duration
        node = rec["service"].get("node", {}).get("name") or rec["service"]["name"]
        if not rec["message"]:
            rec["message"] = f"{node} {health['status']}"
        self._rest(rec, fields)
        return rec

    # ------------------------------------------------------------------ shared parts

    def _common(self, raw: Any, service: str, default_message: str | None = None) -> tuple[Record, Record]:
        """The four spec fields and `service`; returns (record so far, the caller's remaining fields)."""
        if type(raw) is not dict:
            raise Reject("not a JSON object")
        fields: Record = {}
        for key, value in raw.items():
            if "." in key and key not in _SPEC_TOP:
                _set_dotted(fields, key, value)
            elif key not in fields:
                fields[key] = value
            elif type(fields[key]) is dict and type(value) is dict:
                fields[key] = _merged(fields[key], value, key)
            else:
                raise Reject(f"{key}: given both as a value and as dotted fields")

        ts = fields.pop("@timestamp", None)
        if ts is None:
            ts = fields.pop("timestamp", None)
            if ts is None:
                ts = fields.pop("time", None)
        # None: no time stamped here, so a client's retry of the same body is the same bytes (and the
        # same document id, issue 20); the shipper takes the Kafka record's time, set as it is written
        timestamp = None if ts is None else parse_timestamp(ts)
        if timestamp is not None and not plausible_wire(timestamp):
            _mark_out_of_range(fields, ts)
            timestamp = None

        log = fields.pop("log", None)
        if log is not None and type(log) is not dict:
            raise Reject("log: expected an object")
        level_raw = fields.pop("log.level", None)
        if level_raw is None and log is not None:
            level_raw = log.get("level")
        if level_raw is None and "level" in fields:
            level_raw = fields.pop("level")
        level = INFO if level_raw is None else parse_level(level_raw)

        message = fields.pop("message", None)
        if message is None:
            message = fields.pop("msg", None)
        if message is None:
            if default_message is None:
                raise Reject("message: required (a string)")
            message = default_message
        elif type(message) is not str:
            if type(message) not in _SCALARS:
                raise Reject("message: expected a string")
            message = str(message)
        if len(message) > MAX_TEXT:
            message = message[:MAX_TEXT]
        red = self.redactor
        if red.enabled:
            message = red.text(message)
        fields.pop("ecs.version", None)
        fields.pop("ecs", None)

        rec: Record = {"@timestamp": timestamp, "log.level": level, "message": message, "ecs.version": ECS_VERSION}
        if timestamp is None:
            del rec["@timestamp"]
        if log is not None:
            log_out = red.copy_dict(log)
            log_out.pop("level", None)
            if log_out:
                rec["log"] = log_out
        rec["service"] = self._service(fields.pop("service", None), service)
        return rec, fields

    def _service(self, given: Any, service: str) -> Record:
        if given is None:
            given = {}
        elif type(given) is str:
            given = {"name": given}
        elif type(given) is not dict:
            raise Reject("service: expected an object (or a service name)")
        out: Record = {"name": service}
        name = given.get("name", service)
        node_name: Any = None
        if name != service:
            if type(name) is not str:
                raise Reject("service.name: expected a string")
            if not is_instance_of(name, service):
                raise OtherService(name)
            node_name = name
        for key in _SERVICE_TEXT:
            value = given.get(key)
            if type(value) is str:
                out[key] = value
        if "environment" not in out and self.default_environment:
            out["environment"] = self.default_environment
        node = given.get("node")
        if type(node) is dict and type(node.get("name")) is str:
            node_name = node["name"]
            if not is_instance_of(node_name, service) and \
                    other_service_named(node_name, service, self.known_services()) is not None:
                raise OtherService(node_name)  # a node of another service would file this record under it
        elif node is not None and type(node) is not dict:
            raise Reject("service.node: expected an object")
        if node_name is not None:
            out["node"] = {"name": node_name}
        return out

    def _event(self, fields: Record, forced: Record) -> Record:
        event = fields.pop("event", None)
        if event is None:
            return forced
        if type(event) is not dict:
            raise Reject("event: expected an object")
        out = self.redactor.copy_dict(event)  # event.original is text
        out.pop("dataset", None)
        duration = out.get("duration")
        if duration is not None and (type(duration) is not int or duration < 0):
            raise Reject("event.duration: expected a non-negative integer (nanoseconds)")
        out.update(forced)
        return out

    def _rest(self, rec: Record, fields: Record) -> None:
        """ECS objects are kept; labels stay scalar; anything else goes to labels/extra."""
        red = self.redactor
        fields.pop("data_stream", None)  # the shipper decides the stream; a caller may not pick one
        labels: Record | None = None
        extra: Record | None = None
        given_labels = fields.pop("labels", None)
        given_extra = fields.pop("extra", None)
        if given_extra is not None:
            extra = red.deep(given_extra) if type(given_extra) is dict else {"extra": red.deep(given_extra)}
        if given_labels is not None:
            if type(given_labels) is not dict:
                raise Reject("labels: expected an object")
            labels = {}
            names = self._label_names
            texts = red.text_cache
            for key, value in given_labels.items():
                known = names.get(key)
                if known is None:
                    known = self._label_name(key)
                name, secret = known
                vtype = type(value)
                if name and (vtype is str or vtype is int or vtype is float or vtype is bool):
                    if secret:
                        value = REDACTED
                    elif vtype is str:
                        done = texts.get(value)
                        value = done if done is not None else red.text(value)
                    labels[name] = value
                else:
                    if extra is None:
                        extra = {}
                    extra[key] = REDACTED if secret else red.deep(value)
        for key, value in fields.items():
            if key in ECS_OBJECTS:
                if type(value) is dict:
                    if key in ("trace", "span", "transaction"):
                        ident = value.get("id")
                        if ident is not None and type(ident) is not str:
                            raise Reject(f"{key}.id: expected a string")
                    # any ECS field can carry a secret (user.password, a DSN in process.command_line)
                    rec[key] = red.copy_dict(value)
                    continue
                if key == "error" and type(value) is str:  # the seed's {"error": error.message}
                    rec["error"] = {"message": red.text(value) if red.enabled else value}
                    continue
                raise Reject(f"{key}: expected an object")
            if key == "tags":
                if type(value) is not list or not all(type(v) is str for v in value):
                    raise Reject("tags: expected a list of strings")
                rec["tags"] = red.deep(value)
                continue
            secret = red.key_is_secret(key)
            if type(value) in _SCALARS and key.strip(". "):  # an empty label name would not index
                if secret:
                    value = REDACTED
                elif type(value) is str and red.enabled:
                    value = red.text(value)
                if labels is None:
                    labels = {}
                labels[key.replace(".", "_")] = value
            else:
                if extra is None:
                    extra = {}
                extra[key] = REDACTED if secret else red.deep(value)
        if labels:
            rec["labels"] = labels
        if extra:
            rec["extra"] = extra


def _set_dotted(fields: Record, key: str, value: Any) -> None:
    """`service.name` -> fields["service"]["name"], for ECS roots; other dotted keys stay as they are
    (they become labels with `_`, as the library does)."""
    root, _, rest = key.partition(".")
    if not rest or (root not in ECS_OBJECTS and root not in ("service", "event", "log", "labels", "metric",
                                                               "health", "extra")):
        if key in fields:
            raise Reject(f"{key}: given twice")
        fields[key] = value
        return
    target = fields.setdefault(root, {})
    if type(target) is not dict:
        raise Reject(f"{root}: given both as a value and as dotted fields")
    parts = rest.split(".")
    for part in parts[:-1]:
        nxt = target.setdefault(part, {})
        if type(nxt) is not dict:
            raise Reject(f"{key}: conflicts with a value at {part!r}")
        target = nxt
    last = parts[-1]
    if last in target and type(target[last]) is dict and type(value) is dict:
        target[last] = _merged(target[last], value, key)
    elif last in target:
        raise Reject(f"{key}: given twice")
    else:
        target[last] = value


def _merged(left: Record, right: Record, where: str) -> Record:
    out = dict(left)
    for k, v in right.items():
        if k in out:
            if type(out[k]) is dict and type(v) is dict:
                out[k] = _merged(out[k], v, f"{where}.{k}")
            else:
                raise Reject(f"{where}.{k}: given twice")
        else:
            out[k] = v
    return out


_METRIC_TYPES = ("counter", "gauge", "histogram")
_METRIC_NUMBERS = ("value", "delta", "count", "sum", "min", "max", "p50", "p95", "p99")


def _metric(metric: Record) -> Record:
    name = metric.get("name")
    if type(name) is not str or not name:
        raise Reject("metric.name: a non-empty string is required")
    mtype = metric.get("type", "gauge")
    if mtype not in _METRIC_TYPES:
        raise Reject(f"metric.type: expected one of {', '.join(_METRIC_TYPES)}")
    out: Record = {"name": name, "type": mtype}
    unit = metric.get("unit")
    if unit is not None:
        if type(unit) is not str:
            raise Reject("metric.unit: expected a string")
        out["unit"] = unit
    for key in _METRIC_NUMBERS:
        value = metric.get(key)
        if value is None:
            continue
        if type(value) not in (int, float):
            raise Reject(f"metric.{key}: expected a number")
        out[key] = value
    needed = "count" if mtype == "histogram" else "value"
    if needed not in out:
        raise Reject(f"metric.{needed}: required for a {mtype}")
    return out
