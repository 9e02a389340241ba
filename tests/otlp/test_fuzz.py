"""Whatever a client sends, the OTLP intake answers without a 5xx (a 503 only when Kafka is away,
which it is not here): arbitrary bytes as protobuf, arbitrary OTLP-shaped JSON (odd ids, kinds,
values, nesting), with and without gzip. Runs with the real broker; accepted records are produced."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.otlp.app import create_app
from tests.otlp.conftest import API_TOKEN, make_settings

pytestmark = pytest.mark.stack

scalar = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
          | st.sampled_from(["5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "zz", "", "NaN", "Infinity",
                             "api-service", "api-service-1", "auth-service", "1764633600000000000"]))
any_value = st.recursive(
    st.fixed_dictionaries({}, optional={"stringValue": scalar, "intValue": scalar, "doubleValue": scalar,
                                        "boolValue": scalar, "bytesValue": scalar}),
    lambda inner: st.fixed_dictionaries({}, optional={
        "arrayValue": st.fixed_dictionaries({"values": st.lists(inner, max_size=3)}),
        "kvlistValue": st.fixed_dictionaries({"values": st.lists(
            st.fixed_dictionaries({"key": scalar, "value": inner}), max_size=3)})}),
    max_leaves=10)
attributes = st.lists(st.fixed_dictionaries({"key": st.sampled_from(
    ["service.name", "service.instance.id", "exception.type", "http.response.status_code", "url.full", "password",
     "", "a.b", "x" * 300]) | st.text(max_size=10), "value": any_value}), max_size=4)
record = st.fixed_dictionaries({}, optional={
    "timeUnixNano": scalar, "observedTimeUnixNano": scalar, "severityNumber": scalar, "severityText": scalar,
    "body": any_value, "attributes": attributes, "traceId": scalar, "spanId": scalar, "eventName": scalar,
    "flags": scalar, "unknown": scalar})
point = st.fixed_dictionaries({}, optional={
    "timeUnixNano": scalar, "asInt": scalar, "asDouble": scalar, "attributes": attributes, "count": scalar,
    "sum": scalar, "min": scalar, "max": scalar, "bucketCounts": st.lists(scalar, max_size=4),
    "explicitBounds": st.lists(scalar, max_size=4), "scale": scalar, "zeroCount": scalar, "flags": scalar,
    "positive": st.fixed_dictionaries({"offset": scalar, "bucketCounts": st.lists(scalar, max_size=3)}),
    "quantileValues": st.lists(st.fixed_dictionaries({"quantile": scalar, "value": scalar}), max_size=3),
    "exemplars": st.lists(st.fixed_dictionaries({}, optional={"traceId": scalar, "spanId": scalar}), max_size=2)})
metric = st.fixed_dictionaries({"name": scalar}, optional={"unit": scalar, **{
    kind: st.fixed_dictionaries({"dataPoints": st.lists(point, max_size=3)}, optional={
        "aggregationTemporality": scalar, "isMonotonic": scalar})
    for kind in ("gauge", "sum", "histogram", "exponentialHistogram", "summary")}})
resource = st.fixed_dictionaries({"attributes": attributes})
logs_body = st.fixed_dictionaries({"resourceLogs": st.lists(st.fixed_dictionaries({
    "scopeLogs": st.lists(st.fixed_dictionaries({"logRecords": st.lists(record, max_size=3)}), max_size=2)},
    optional={"resource": resource}), max_size=2)})
metrics_body = st.fixed_dictionaries({"resourceMetrics": st.lists(st.fixed_dictionaries({
    "scopeMetrics": st.lists(st.fixed_dictionaries({"metrics": st.lists(metric, max_size=3)}), max_size=2)},
    optional={"resource": resource}), max_size=2)})


@pytest.fixture(scope="module")
def client(kafka_bootstrap: str) -> Any:
    loop = asyncio.new_event_loop()
    app = create_app(make_settings(kafka_bootstrap, "fuzz-otlp", max_body_bytes=64 * 1024, max_records=50))
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://otlp")
    yield lambda *a, **k: loop.run_until_complete(http.post(*a, **k))
    loop.run_until_complete(http.aclose())
    loop.run_until_complete(lifespan.__aexit__(None, None, None))
    loop.close()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert response.status_code in (200, 400, 403, 413), response.status_code


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=400), path=st.sampled_from(["/v1/logs", "/v1/metrics"]), zipped=st.booleans())
def test_arbitrary_protobuf_bytes(client: Any, body: bytes, path: str, zipped: bool) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/x-protobuf"}
    if zipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    check(client(path, content=body, headers=headers))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=st.one_of(logs_body.map(lambda d: ("/v1/logs", d)), metrics_body.map(lambda d: ("/v1/metrics", d))))
def test_arbitrary_otlp_json(client: Any, doc: tuple[str, dict[str, Any]]) -> None:
    path, body = doc
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    # integers beyond 64 bits go as strings (orjson writes none bigger), as OTLP/JSON writes int64
    check(client(path, content=orjson.dumps(_big_as_text(body)), headers=headers))


def _big_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _big_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_big_as_text(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


# hostile protobuf: the path's fields (resource_logs 1 > scope_logs 2 > log_records 2) mixed with
# unknown fields of every wire type, groups (nested, empty, or hiding path-numbered fields), records
# nested deeper than the parser allows and non-UTF-8 strings
def _tag(number: int, wire: int) -> bytes:
    return bytes([number << 3 | wire]) if number < 16 else bytes([(number << 3 | wire) & 0x7F | 0x80, number >> 4])


def _ld(number: int, payload: bytes) -> bytes:
    size, out = len(payload), bytearray(_tag(number, 2))
    while True:
        byte, size = size & 0x7F, size >> 7
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out) + payload


unknown_field = st.one_of(
    st.builds(lambda n, v: _tag(n, 0) + bytes([v & 0x7F]), st.integers(10, 30), st.integers(0, 127)),
    st.builds(lambda n: _tag(n, 1) + b"\0" * 8, st.integers(10, 30)),
    st.builds(lambda n: _tag(n, 5) + b"\0" * 4, st.integers(10, 30)),
    st.builds(lambda n, p: _ld(n, p), st.integers(10, 30), st.binary(max_size=8)),
)


def _with_groups(fields: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    group = st.builds(lambda n, inner: _tag(n, 3) + inner + _tag(n, 4), st.integers(1, 20),
                      st.lists(fields, max_size=3).map(b"".join))
    return st.lists(st.one_of(fields, group, unknown_field), max_size=6).map(b"".join)


hostile_record = st.one_of(
    st.just(b""),
    st.just(b"\x2a\x02\xff\xfe"),  # a non-UTF-8 string where severity_text is
    st.integers(1, 45).map(lambda depth: _deep(depth)),
    _with_groups(st.just(_ld(5, _ld(1, b"x")))),  # a body beside unknown fields and groups
)


def _deep(depth: int) -> bytes:
    value = _ld(1, b"bottom")
    for _ in range(depth):
        value = _ld(6, _ld(1, _ld(1, b"k") + _ld(2, value)))
    return _ld(6, _ld(1, b"nest") + _ld(2, value))


hostile_scope = _with_groups(hostile_record.map(lambda r: _ld(2, r)))
hostile_resource = _with_groups(hostile_scope.map(lambda s: _ld(2, s)))
hostile_logs = st.lists(_with_groups(hostile_resource.map(lambda r: _ld(1, r))), max_size=4).map(b"".join)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=hostile_logs, limit=st.integers(0, 12))
def test_hostile_protobuf_never_passes_the_record_limit(body: bytes, limit: int) -> None:
    """Whatever the bytes: the request handed on holds at most `limit` records, counted in
    `records` with the bad ones; or the body is refused (Malformed, TooMany). Nothing else raises."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from collector.otlp import bound, decode

    try:
        parsed = decode.parse(body, decode.PROTOBUF, ExportLogsServiceRequest, bound.LOGS, limit)
    except (decode.Malformed, bound.TooMany):
        return
    kept = sum(len(sl.log_records) for rl in parsed.message.resource_logs for sl in rl.scope_logs)
    assert kept + parsed.rejected <= parsed.records <= limit


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=hostile_logs)
def test_hostile_protobuf_at_the_app(client: Any, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/x-protobuf"}
    check(client("/v1/logs", content=body, headers=headers))


# hostile OTLP/JSON: the count is read from the bytes before orjson builds anything (bound.scan_json);
# whatever the layout (whitespace, escaped keys, snake_case names, unknown keys holding values nested
# up to and past orjson's depth limit, non-objects where objects belong), it must say what counting the
# parsed document says, and the request handed on never holds more than the limit
class _Raw(bytes):
    """Bytes written as they are (values no JSON encoder writes, like lists nested 1,000 deep)."""


def _dump(value: Any, rnd: Any) -> bytes:
    def space() -> bytes:
        return rnd.choice([b"", b"", b" ", b"\n\t ", b"\r\n"])

    if isinstance(value, _Raw):
        return bytes(value)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            name = orjson.dumps(key)
            if rnd.random() < 0.2:  # a key spelled with escapes: orjson reads the same name
                name = b'"' + b"".join(b"\\u%04x" % c if rnd.random() < 0.5 else bytes([c]) for c in name[1:-1]
                                       if c != 0x5C) + b'"' if b"\\" not in name else name
            items.append(space() + name + space() + b":" + space() + _dump(item, rnd) + space())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(space() + _dump(item, rnd) + space() for item in value) + b"]"
    return orjson.dumps(_big_as_text(value))


junk = st.one_of(scalar, st.integers(0, 1100).map(lambda d: _Raw(b"[" * d + b"1" + b"]" * d)),
                 st.integers(0, 300).map(lambda d: _Raw(b'{"a":' * d + b'"\\"]}["' + b"}" * d)),
                 st.just(_Raw(b'"logRecords\\":[{},{}]"')), st.lists(st.just({}), max_size=5))


def _spoil(strategy: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of the path given unknown keys with junk, and snake_case twins of their path keys."""
    def spoil(obj: dict[str, Any], extra: dict[str, Any], snake: bool) -> dict[str, Any]:
        out = {**extra, **obj}
        for key in list(obj):
            twin = "".join("_" + c.lower() if c.isupper() else c for c in key)
            if snake and twin != key and isinstance(obj[key], list):
                out[twin] = obj[key]
        return out
    return st.builds(spoil, strategy, st.dictionaries(st.sampled_from(["x", "attributes", "resource", "scope", "é"]),
                                                      junk, max_size=2), st.booleans())


hostile_json_logs = _spoil(st.fixed_dictionaries({"resourceLogs": st.lists(st.one_of(junk, _spoil(
    st.fixed_dictionaries({"scopeLogs": st.lists(st.one_of(junk, _spoil(st.fixed_dictionaries({"logRecords": st.lists(
        st.one_of(record, junk), max_size=4)}))), max_size=3)}))), max_size=3)}))
hostile_json_metrics = _spoil(st.fixed_dictionaries({"resourceMetrics": st.lists(_spoil(st.fixed_dictionaries({
    "scopeMetrics": st.lists(_spoil(st.fixed_dictionaries({"metrics": st.lists(st.one_of(junk, _spoil(metric)),
                                                                                max_size=3)})), max_size=2)})),
    max_size=2)}))


def _count(count: Any) -> Any:
    from collector.otlp import bound

    try:
        return count()
    except bound.TooMany as exc:
        return ("TooMany", str(exc))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=st.one_of(hostile_json_logs.map(lambda d: ("logs", d)), hostile_json_metrics.map(lambda d: ("metrics", d))),
       rnd=st.randoms(use_true_random=False), limit=st.integers(0, 12), cut=st.integers(0, 200))
def test_hostile_json_is_counted_from_the_bytes_as_after_parsing(doc: tuple[str, dict[str, Any]], rnd: Any,
                                                                 limit: int, cut: int) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from collector.otlp import bound, decode

    kind, value = doc
    path, cls = ((bound.LOGS, ExportLogsServiceRequest) if kind == "logs"
                 else (bound.METRICS, ExportMetricsServiceRequest))
    body = _dump(value, rnd)
    for attempt in (body, body[:-cut] if cut else body[:len(body) // 2]):  # whole, and cut short
        scanned = _count(lambda: bound.scan_json(attempt, path, limit))  # noqa: B023
        try:
            parsed_doc = orjson.loads(attempt)
        except orjson.JSONDecodeError:
            parsed_doc = None
        if type(parsed_doc) is dict:  # JSON orjson reads: the same count, or the same refusal
            assert scanned == _count(lambda: bound.count_json(parsed_doc, path, limit))  # noqa: B023
        try:
            parsed = decode.parse(attempt, decode.JSON, cls, path, limit)
        except (decode.Malformed, bound.TooMany):
            continue
        assert parsed.records <= limit


def test_a_repeated_path_key_counts_every_time() -> None:
    """The one place the scan is stricter than the parse: orjson keeps the last of a repeated key."""
    from collector.otlp import bound

    body = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{},{}],"logRecords":[{}]}]}]}'
    assert bound.count_json(orjson.loads(body), bound.LOGS, 10) == 1
    assert bound.scan_json(body, bound.LOGS, 10) == 4


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=hostile_json_logs, rnd=st.randoms(use_true_random=False))
def test_hostile_json_at_the_app(client: Any, body: dict[str, Any], rnd: Any) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    check(client("/v1/logs", content=_dump(body, rnd), headers=headers))
