"""OTLP -> ECS, as pure functions over the generated protobuf classes (docs/otel.md has the table).

Sources of the mapping, where Elastic publishes one:
- Elastic's "ECS & OpenTelemetry alignment" reference (elastic.co/docs/reference/ecs/ecs-otel-alignment-details):
  `@timestamp` <- `time_unix_nano` (else `observed_time_unix_nano`), `message` <- `body`, `client.*`,
  `server.*`, `url.*`, `http.*`, `user_agent.original` match their semantic-convention names.
- Elasticsearch's OTel data plugin (x-pack/plugin/otel-data, component templates
  `semconv-resource-to-ecs@mappings` and `logs-otel@mappings`): `service.node.name` is
  `service.instance.id`, `service.environment` is `deployment.environment`, `host.architecture`
  is `host.arch`, `log.level` is `severity_text`, `trace.id`/`span.id` are `trace_id`/`span_id`.
- `exception.type|message|stacktrace` -> `error.type|message|stack_trace` (the alignment table's
  `error.*` rows; the OTel data plugin aliases `error.exception.*` to the same attributes).

Everything else: scalar attributes -> `labels` (dots as `_`, like the library), other values ->
`extra` (stored, not indexed), at most `max_attributes` per record; the count left out is in
`labels.otel_dropped_attributes`. Secrets are redacted with the library's rules.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from collector.contract.ecs import ECS_VERSION
from collector.contract.levels import CRITICAL, DEBUG, ERROR, INFO, WARNING, normalize_level
from collector.contract.names import is_instance_of, other_service_named, split_instance
from collector.contract.streams import sanitize_dataset
from collector.contract.timefmt import ORIGINAL_LABEL, OUT_OF_RANGE_LABEL, format_epoch_ms, now_iso, plausible_wire
from collector.redact import REDACTED, Redactor

Record = dict[str, Any]

# OTel log data model, SeverityNumber ranges of four: TRACE, DEBUG, INFO, WARN, ERROR, FATAL
_SEVERITY = (DEBUG, DEBUG, INFO, WARNING, ERROR, CRITICAL)
MAX_TEXT = 32_768  # the ingest API's cut for `message`
MAX_LABEL_CHARS = 1024  # keyword fields ignore longer values (ECS `ignore_above: 1024`)
MAX_KEY_CHARS = 256
# an array or kvlist attribute bigger than this (encoded) keeps its first entries up to it, and the
# record says so in `labels.otel_cut_attributes`: resource attributes are copied into every record
MAX_VALUE_BYTES = 16 * 1024
DEFAULT_MAX_ATTRIBUTES = 128
_UNKNOWN_SERVICE = "unknown_service"  # the SDKs' default service.name (`unknown_service:node`, ...)

_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # OTLP/JSON's spelling

# semantic-convention attribute -> (ECS path, expected type); old names (before semconv 1.21) too
_ATTRIBUTES: dict[str, tuple[tuple[str, ...], type]] = {
    "exception.type": (("error", "type"), str),
    "exception.message": (("error", "message"), str),
    "exception.stacktrace": (("error", "stack_trace"), str),
    "error.type": (("error", "type"), str),
    "http.request.method": (("http", "request", "method"), str),
    "http.method": (("http", "request", "method"), str),
    "http.response.status_code": (("http", "response", "status_code"), int),
    "http.status_code": (("http", "response", "status_code"), int),
    "http.request.body.size": (("http", "request", "body", "bytes"), int),
    "http.response.body.size": (("http", "response", "body", "bytes"), int),
    "url.full": (("url", "full"), str),
    "http.url": (("url", "full"), str),
    "url.path": (("url", "path"), str),
    "url.query": (("url", "query"), str),
    "url.scheme": (("url", "scheme"), str),
    "url.domain": (("url", "domain"), str),
    "user_agent.original": (("user_agent", "original"), str),
    "http.user_agent": (("user_agent", "original"), str),
    "client.address": (("client", "address"), str),
    "client.port": (("client", "port"), int),
    "server.address": (("server", "address"), str),
    "server.port": (("server", "port"), int),
    "enduser.id": (("user", "id"), str),
    "code.function": (("log", "origin", "function"), str),
    "code.function.name": (("log", "origin", "function"), str),
    "code.filepath": (("log", "origin", "file", "name"), str),
    "code.file.path": (("log", "origin", "file", "name"), str),
    "code.lineno": (("log", "origin", "file", "line"), int),
    "code.line.number": (("log", "origin", "file", "line"), int),
    # older HTTP names (semantic-conventions docs/non-normative/http-migration.md: what each became)
    "http.scheme": (("url", "scheme"), str),
    "http.client_ip": (("client", "address"), str),
    "net.peer.ip": (("client", "ip"), str),
    "net.host.name": (("server", "address"), str),
    "net.host.port": (("server", "port"), int),
    "http.flavor": (("http", "version"), str),
    "network.protocol.version": (("http", "version"), str),
    "http.request_content_length": (("http", "request", "body", "bytes"), int),
    "http.response_content_length": (("http", "response", "body", "bytes"), int),
    # resource attributes (they describe the process; mapped the same way wherever they appear):
    # Elasticsearch's otel-data plugin, semconv-resource-to-ecs@mappings, and the ECS alignment table
    "host.name": (("host", "name"), str),
    "host.arch": (("host", "architecture"), str),
    "os.type": (("host", "os", "platform"), str),
    "os.name": (("host", "os", "name"), str),
    "os.description": (("host", "os", "full"), str),
    "os.version": (("host", "os", "version"), str),
    "process.pid": (("process", "pid"), int),
    "process.executable.path": (("process", "executable"), str),
    "container.id": (("container", "id"), str),
    "container.name": (("container", "name"), str),
    "container.image.name": (("container", "image", "name"), str),
    "container.image.tags": (("container", "image", "tag"), list),
    "cloud.provider": (("cloud", "provider"), str),
    "cloud.region": (("cloud", "region"), str),
    "cloud.availability_zone": (("cloud", "availability_zone"), str),
    "cloud.account.id": (("cloud", "account", "id"), str),
    "cloud.platform": (("cloud", "service", "name"), str),
    "k8s.namespace.name": (("kubernetes", "namespace"), str),
    **{f"k8s.{kind}.{part}": (("kubernetes", kind, part), str) for kind, part in (
        ("pod", "name"), ("pod", "uid"), ("node", "name"), ("node", "uid"), ("node", "hostname"),
        ("deployment", "name"), ("container", "name"), ("cronjob", "name"), ("job", "name"),
        ("statefulset", "name"), ("daemonset", "name"), ("replicaset", "name"))},
    # `service.*` of the document: merged into the resource's `service` (Mapper.origin)
    "telemetry.sdk.language": (("service", "language", "name"), str),
    "process.runtime.name": (("service", "runtime", "name"), str),
    "process.runtime.version": (("service", "runtime", "version"), str),
}
# http.target is a path with its query: split into url.path and url.query (http-migration.md)
_TARGET = "http.target"
# resource attributes that make up `service` (handled by `service_of_resource`)
_SERVICE_KEYS = frozenset({"service.name", "service.version", "service.instance.id", "deployment.environment",
                           "deployment.environment.name"})


class OtherService(Exception):
    """A resource names a service the token may not write for (the request gets 403)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class Rejected(Exception):
    """One record or data point cannot be accepted; counted in partial_success with this reason."""


# ---------------------------------------------------------------------------------------- values


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as plain JSON data (bytes as base64, as OTLP/JSON writes them)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else _NON_FINITE[str(number)]  # JSON has no NaN: not null
    if kind == "bool_value":
        return value.bool_value
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def cut_value(value: Any) -> Any:
    """An array or kvlist AnyValue over MAX_VALUE_BYTES: its first entries that fit, as plain data
    (an entry too big on its own is left out); other kinds as `any_value`. Sizes are the encoded
    protobuf's, computed by the runtime without building anything."""
    kind = value.WhichOneof("value")
    if kind not in ("array_value", "kvlist_value"):
        return any_value(value)
    room = MAX_VALUE_BYTES
    if kind == "array_value":
        items: list[Any] = []
        for item in value.array_value.values:
            size = item.ByteSize()
            if size > room:
                break
            room -= size
            items.append(any_value(item))
        return items
    pairs: dict[str, Any] = {}
    for kv in value.kvlist_value.values:
        size = kv.ByteSize()
        if size > room:
            break
        room -= size
        pairs[kv.key] = any_value(kv.value)
    return pairs


def attributes(kvs: Any, keys: frozenset[str] | None = None) -> dict[str, Any]:
    """Attributes as plain data; only `keys` when given (the rest is not converted at all)."""
    return {kv.key: any_value(kv.value) for kv in kvs if keys is None or kv.key in keys}


def level_of(severity_number: int, severity_text: str) -> str:
    """The number's range decides (the data model's normalised severity); else the text; else info."""
    if 1 <= severity_number <= 24:
        return _SEVERITY[(severity_number - 1) >> 2]
    if severity_text:
        found = normalize_level(severity_text)
        if found is not None:
            return found
    return INFO


def timestamp(time_unix_nano: int, observed_unix_nano: int = 0, labels: Record | None = None) -> str:
    """`time_unix_nano`, else the observed time, else now (the data model's order). A time outside
    the plausible window (contract timefmt: 1 ns is 1970, 2^64-1 is 2554) becomes now, the sent
    nanoseconds kept in `labels` with the mark."""
    nanos = time_unix_nano or observed_unix_nano
    if not nanos:
        return now_iso()
    text = millis_text(nanos // 1_000_000)
    if plausible_wire(text):
        return text
    if labels is not None:
        labels[ORIGINAL_LABEL] = str(nanos)
        labels[OUT_OF_RANGE_LABEL] = True
    return now_iso()


_MS_TEXT: dict[int, str] = {}


def millis_text(ms: int) -> str:
    """format_epoch_ms, remembered: a request's records mostly share their milliseconds. Past
    what datetime can hold (year 9999), the last millisecond it can."""
    text = _MS_TEXT.get(ms)
    if text is None:
        if len(_MS_TEXT) >= 4096:
            _MS_TEXT.clear()
        try:
            text = format_epoch_ms(ms)
        except (OverflowError, OSError, ValueError):
            text = "9999-12-31T23:59:59.999Z"
        _MS_TEXT[ms] = text
    return text


def hex_id(raw: bytes, size: int) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as lower-case hex; absent, all-zero or mis-sized -> None."""
    if len(raw) != size or not raw.strip(b"\0"):
        return None
    return raw.hex()


# ---------------------------------------------------------------------------------------- resource


@dataclass
class Origin:
    """What a resource contributes to each of its records: `service` and other ECS fields, labels."""

    service: Record
    dataset: str
    fields: Record  # ECS objects from resource attributes (host, process, container, cloud)
    labels: Record
    extra: Record
    dropped: int


def service_of_resource(attrs: dict[str, Any], token_service: str, default_environment: str = "",
                        known: Iterable[str] = ()) -> Record:
    """`service` for a resource: the token decides the name. A resource naming another service is
    refused (OtherService); an instance name (`api-service-1`) or `service.instance.id` is the node,
    unless it names an instance of another of the `known` services (refused the same way)."""
    service: Record = {"name": token_service}
    claimed = attrs.get("service.name")
    node: Any = None
    if type(claimed) is str and claimed and not claimed.startswith(_UNKNOWN_SERVICE) and claimed != token_service:
        if not is_instance_of(claimed, token_service):
            raise OtherService(claimed)
        node = split_instance(claimed)[1]
    version = attrs.get("service.version")
    if type(version) is str and version:
        service["version"] = version[:MAX_LABEL_CHARS]
    environment = attrs.get("deployment.environment.name", attrs.get("deployment.environment"))
    if type(environment) is str and environment:
        service["environment"] = environment[:MAX_LABEL_CHARS]
    elif default_environment:
        service["environment"] = default_environment
    instance = attrs.get("service.instance.id")
    if type(instance) is str and instance:
        if not is_instance_of(instance, token_service) and other_service_named(instance, token_service, known):
            raise OtherService(instance)
        node = instance
    if node is not None:
        service["node"] = {"name": node[:MAX_LABEL_CHARS]}
    return service


class Mapper:
    """Builds ECS documents from OTLP messages for one token's service. Holds no request state."""

    def __init__(self, redactor: Redactor, default_environment: str = "",
                 max_attributes: int = DEFAULT_MAX_ATTRIBUTES, known_services: Callable[[], Iterable[str]] = tuple):
        self.red = redactor
        self.known_services = known_services  # every service a token exists for (the node-name rule)
        self.default_environment = default_environment
        self.max_attributes = max_attributes
        self._plans: dict[str, Any] = {}

    def origin(self, resource: Any, token_service: str) -> Origin:
        """What a Resource (its repeated KeyValue attributes) gives each of its records."""
        service = service_of_resource(attributes(resource, _SERVICE_KEYS), token_service, self.default_environment,
                                      self.known_services())
        fields: Record = {}
        labels: Record = {}
        extra: Record = {}
        dropped = self.spread(resource, fields, labels, extra, self.max_attributes, _SERVICE_KEYS)
        more = fields.pop("service", None)
        if more:  # language and runtime: beside the name the token decided
            service.update(more)
        return Origin(service, sanitize_dataset(token_service), fields, labels, extra, dropped)

    def _plan(self, key: str) -> tuple[tuple[str, ...] | None, type | None, str, bool] | None:
        """Per attribute key, once: its ECS path and type (or None), label name, whether it names a
        secret; None when the key is unusable. Bounded: keys come from clients."""
        if key in self._plans:
            return self._plans[key]
        found: tuple[tuple[str, ...] | None, type | None, str, bool] | None = None
        if len(key) <= MAX_KEY_CHARS and key.strip(". "):
            path, kind = _ATTRIBUTES.get(key, (None, None))
            found = (path, kind, key.replace(".", "_"), self.red.key_is_secret(key))
        if len(self._plans) < 10_000:
            self._plans[key] = found
        return found

    def spread(self, kvs: Any, fields: Record, labels: Record, extra: Record, room: int,
               skip: frozenset[str] = frozenset()) -> int:
        """Attributes (repeated KeyValue) into ECS fields (semantic conventions), labels (scalars)
        or extra (the rest); at most `room` of them; returns how many were left out."""
        red = self.red
        dropped = 0
        for kv in kvs:
            key = kv.key
            if key in skip:
                continue
            value = kv.value
            which = value.WhichOneof("value")
            if which == "string_value":
                value = value.string_value
            elif which == "int_value":
                value = value.int_value
            elif which == "double_value":
                value = value.double_value
                if not math.isfinite(value):  # JSON would write null: counted as left out instead
                    dropped += 1
                    continue
            elif which is None:
                continue
            plan = self._plans.get(key) or self._plan(key)
            if room <= 0 or plan is None:
                dropped += 1
                continue
            room -= 1
            path, kind, label, secret = plan
            if key == _TARGET and type(value) is str:
                url_path, _, query = red.text(value[:MAX_TEXT]).partition("?")
                _put(fields, ("url", "path"), url_path)
                if query:
                    _put(fields, ("url", "query"), query)
                continue
            if type(value) is not str and type(value) is not int and type(value) is not float:
                if value.ByteSize() > MAX_VALUE_BYTES:  # an array or kvlist: its first entries, marked
                    value = cut_value(value)
                    labels["otel_cut_attributes"] = labels.get("otel_cut_attributes", 0) + 1
                else:
                    value = any_value(value)
            vtype = type(value)
            if vtype is kind:
                assert path is not None
                if vtype is list:  # container.image.tags: keep the strings
                    value = [red.text(v[:MAX_LABEL_CHARS]) for v in value if type(v) is str]
                _put(fields, path, red.text(value[:MAX_TEXT]) if vtype is str else value)
            elif vtype is str:
                labels[label] = REDACTED if secret else red.text(value[:MAX_LABEL_CHARS])
            elif vtype is int or vtype is float or vtype is bool:
                labels[label] = REDACTED if secret else value
            else:
                extra[key] = REDACTED if secret else red.deep(value)
        return dropped

    # ------------------------------------------------------------------------------------ logs

    def log(self, origin: Origin, scope_name: str, lr: Any) -> Record:
        """One LogRecord as the library's log document."""
        red = self.red
        body = lr.body
        kind = body.WhichOneof("value")
        structured: Any = None
        if kind == "string_value":
            message = body.string_value
        elif kind is None:
            message = lr.event_name or ""
        elif kind in ("kvlist_value", "array_value", "bytes_value"):
            structured = red.deep(any_value(body))  # before it is written out: keys decide too
            message = orjson.dumps(structured).decode()
        else:
            message = str(any_value(body)).lower() if kind == "bool_value" else str(any_value(body))
        if len(message) > MAX_TEXT:
            message = message[:MAX_TEXT]
        number = lr.severity_number
        observed = lr.observed_time_unix_nano
        nanos = lr.time_unix_nano
        marks: Record = {}
        rec: Record = {
            "@timestamp": timestamp(nanos, observed, marks),
            "log.level": _SEVERITY[(number - 1) >> 2] if 0 < number <= 24 else level_of(0, lr.severity_text),
            "message": red.text(message) if red.enabled else message,
            "ecs.version": ECS_VERSION,
            "service": origin.service,
        }
        event: Record = {"dataset": origin.dataset}
        if nanos and observed:
            event["created"] = millis_text(observed // 1_000_000)
        event_name = lr.event_name
        if event_name:
            event["action"] = event_name[:MAX_LABEL_CHARS]
        rec["event"] = event
        flags = lr.flags
        raw = lr.trace_id
        if raw:
            trace_id = hex_id(raw, 16)
            if trace_id is not None:
                rec["trace"] = {"id": trace_id}
            span_id = hex_id(lr.span_id, 8)
            if span_id is not None:
                rec["span"] = {"id": span_id}
        fields = _copy(origin.fields) if origin.fields else {}
        labels = dict(origin.labels) if origin.labels else {}
        extra = dict(origin.extra) if origin.extra else {}
        dropped = origin.dropped
        kvs = lr.attributes
        if kvs:
            dropped += self.spread(kvs, fields, labels, extra, self.max_attributes - len(labels) - len(extra))
        if scope_name:
            _put(fields, ("log", "logger"), scope_name[:MAX_LABEL_CHARS])
        _merge_service(rec, fields)
        if structured is not None:
            extra["body"] = structured
        if fields:
            rec.update(fields)
        if dropped:
            labels["otel_dropped_attributes"] = dropped
        if marks:
            labels.update(marks)
        if flags:  # W3C trace flags (bit 0: sampled); ECS has no field for them
            labels["trace_flags"] = flags
        if labels:
            rec["labels"] = labels
        if extra:
            rec["extra"] = extra
        return rec

    # ------------------------------------------------------------------------------------ metrics

    def metric_doc(self, origin: Origin, time_unix_nano: int, metric: Record, point_attrs: Any,
                   start_unix_nano: int = 0) -> Record:
        """One data point as the library's metric document (`metric.*` from `collector.otlp.metrics`);
        `event.start` is where the interval of its per-interval values began, when known."""
        marks: Record = {}
        event: Record = {"kind": "metric", "dataset": origin.dataset}
        if start_unix_nano and start_unix_nano <= time_unix_nano:
            event["start"] = millis_text(start_unix_nano // 1_000_000)
        rec: Record = {
            "@timestamp": timestamp(time_unix_nano, 0, marks), "log.level": INFO,
            "message": f"metric {metric['name']}", "ecs.version": ECS_VERSION,
            "service": origin.service, "event": event,
        }
        fields = _copy(origin.fields) if origin.fields else {}
        labels = dict(origin.labels) if origin.labels else {}
        extra = dict(origin.extra) if origin.extra else {}
        dropped = origin.dropped
        if point_attrs:
            dropped += self.spread(point_attrs, fields, labels, extra, self.max_attributes - len(labels) - len(extra))
        _merge_service(rec, fields)
        rec.update(fields)
        rec["metric"] = metric
        if dropped:
            labels["otel_dropped_attributes"] = dropped
        if marks:
            labels.update(marks)
        if labels:
            rec["labels"] = labels
        if extra:
            rec["extra"] = extra
        return rec


def _merge_service(rec: Record, fields: Record) -> None:
    """`service.*` from a record's own attributes (language, runtime) join the resource's `service`
    instead of replacing it: the name and node stay the token's."""
    more = fields.pop("service", None)
    if more:
        rec["service"] = {**more, **rec["service"]}


def _copy(value: Record) -> Record:
    """The nested dicts of a resource's fields, copied: records may add to them."""
    return {k: _copy(v) if type(v) is dict else v for k, v in value.items()}


def _put(target: Record, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if type(nxt) is not dict:
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value
