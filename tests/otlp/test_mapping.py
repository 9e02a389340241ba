"""OTLP -> ECS mapping as pure functions: table tests (no servers)."""

from __future__ import annotations

import math

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from collector.otlp import bound, decode
from collector.otlp.mapping import Mapper, OtherService, Rejected, hex_id, level_of, service_of_resource, timestamp
from collector.otlp.metrics import points, quantile
from collector.redact import Redactor
from tests.otlp.conftest import any_value, kv, record


@pytest.mark.parametrize(("number", "text", "level"), [
    (1, "", "debug"), (4, "", "debug"), (5, "", "debug"), (8, "", "debug"), (9, "", "info"), (12, "", "info"),
    (13, "", "warning"), (16, "", "warning"), (17, "", "error"), (20, "", "error"), (21, "", "critical"),
    (24, "", "critical"),
    (0, "WARN", "warning"), (0, "fatal", "critical"), (0, "Information", "info"), (0, "", "info"),
    (0, "nonsense", "info"), (25, "ERROR", "error"),  # out of range: the text decides
    (17, "INFO", "error"),  # the number is the normalised severity
])
def test_severity(number: int, text: str, level: str) -> None:
    assert level_of(number, text) == level


def test_time_observed_time_or_now() -> None:
    assert timestamp(1_764_633_600_123_456_789) == "2025-12-02T00:00:00.123Z"
    assert timestamp(0, 1_764_633_601_000_000_000) == "2025-12-02T00:00:01.000Z"
    assert timestamp(0, 0)[:2] == "20"


def test_ids() -> None:
    assert hex_id(bytes.fromhex("5b8efff798038103d269b633813fc60c"), 16) == "5b8efff798038103d269b633813fc60c"
    assert hex_id(b"\0" * 16, 16) is None and hex_id(b"", 16) is None and hex_id(b"\1" * 8, 16) is None


@pytest.mark.parametrize(("attrs", "service"), [
    ({}, {"name": "api-service"}),
    ({"service.name": "unknown_service:node"}, {"name": "api-service"}),
    ({"service.name": "api-service"}, {"name": "api-service"}),
    ({"service.name": "api-service-3"}, {"name": "api-service", "node": {"name": "api-service-3"}}),
    ({"service.name": "api-service", "service.instance.id": "pod-7", "service.version": "1.2",
      "deployment.environment.name": "prod"},
     {"name": "api-service", "version": "1.2", "environment": "prod", "node": {"name": "pod-7"}}),
    ({"deployment.environment": "qa"}, {"name": "api-service", "environment": "qa"}),
])
def test_service_from_resource(attrs: dict[str, str], service: dict[str, object]) -> None:
    assert service_of_resource(attrs, "api-service") == service


@pytest.mark.parametrize("claimed", ["auth-service", "api-service-x", "api"])
def test_resource_of_another_service_is_refused(claimed: str) -> None:
    with pytest.raises(OtherService):
        service_of_resource({"service.name": claimed}, "api-service")


def mapped(lr: LogRecord, resource: dict[str, object] | None = None, max_attributes: int = 128) -> dict:
    mapper = Mapper(Redactor(), max_attributes=max_attributes)
    attrs = resource or {"service.name": "api-service"}
    origin = mapper.origin([kv(k, v) for k, v in attrs.items()], "api-service")
    return mapper.log(origin, "scope", lr)


def test_semantic_conventions_to_ecs_and_the_rest_to_labels_or_extra() -> None:
    doc = mapped(record("hi", **{
        "exception.type": "OSError", "exception.message": "disk full", "exception.stacktrace": "at x",
        "http.request.method": "GET", "http.response.status_code": 503, "url.full": "https://u:pw@h/p?q=1",
        "url.path": "/p", "client.address": "10.0.0.1", "user_agent.original": "curl/8",
        "http.route": "/p/{id}", "retries": 3, "tags": ["a", "b"], "api.token": "abc",
        "http.status_code": "not-a-number",
    }), {"service.name": "api-service", "host.name": "web-1", "process.pid": 12, "telemetry.sdk.language": "go"})
    assert doc["error"] == {"type": "OSError", "message": "disk full", "stack_trace": "at x"}
    assert doc["http"] == {"request": {"method": "GET"}, "response": {"status_code": 503}}
    assert doc["url"] == {"full": "https://u:[REDACTED]@h/p?q=1", "path": "/p"}
    assert doc["client"] == {"address": "10.0.0.1"} and doc["user_agent"] == {"original": "curl/8"}
    assert doc["host"] == {"name": "web-1"} and doc["process"] == {"pid": 12}
    assert doc["labels"] == {"http_route": "/p/{id}", "retries": 3, "api_token": "[REDACTED]",
                             "http_status_code": "not-a-number"}
    assert doc["service"]["language"] == {"name": "go"}  # Elastic's service.language.name
    assert doc["extra"] == {"tags": ["a", "b"]}
    assert doc["log"] == {"logger": "scope"}


def test_attributes_are_bounded_and_the_rest_counted() -> None:
    doc = mapped(record("x", **{f"a{i}": i for i in range(20)}), max_attributes=5)
    assert len(doc["labels"]) == 6 and doc["labels"]["otel_dropped_attributes"] == 15
    long_value = mapped(record("x", k="v" * 5000))["labels"]["k"]
    assert len(long_value) == 1024


@pytest.mark.parametrize(("body", "message", "extra"), [
    (AnyValue(string_value="plain"), "plain", None),
    (AnyValue(int_value=42), "42", None),
    (AnyValue(bool_value=True), "true", None),
    (any_value({"user": "ann", "password": "x"}), '{"user":"ann","password":"[REDACTED]"}',
     {"user": "ann", "password": "[REDACTED]"}),
    (any_value([1, "two"]), '[1,"two"]', [1, "two"]),
    (AnyValue(), "", None),
])
def test_body(body: AnyValue, message: str, extra: object) -> None:
    doc = mapped(LogRecord(body=body))
    assert doc["message"] == message
    assert doc.get("extra", {}).get("body") == extra


def test_message_is_redacted_and_cut() -> None:
    assert mapped(record("auth Bearer abc.def"))["message"] == "auth Bearer [REDACTED]"
    assert len(mapped(record("m" * 100_000))["message"]) == 32_768


def test_event_name_and_observed_time() -> None:
    doc = mapped(LogRecord(time_unix_nano=1_764_633_600_000_000_000, observed_time_unix_nano=1_764_633_601_000_000_000,
                           event_name="order.placed"))
    assert doc["event"] == {"dataset": "api_service", "created": "2025-12-02T00:00:01.000Z", "action": "order.placed"}
    assert doc["message"] == "order.placed"


def metric_from(json_metric: dict) -> Metric:
    request = decode.parse(orjson.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [json_metric]}]}]}),
                           decode.JSON, ExportMetricsServiceRequest, bound.METRICS, 100).message
    return request.resource_metrics[0].scope_metrics[0].metrics[0]  # type: ignore[attr-defined]


def values(json_metric: dict) -> list[object]:
    return [v if not isinstance(v, Rejected) else f"rejected: {v}" for _, v, _ in points(metric_from(json_metric))]


def test_gauge_and_sums() -> None:
    assert values({"name": "g", "unit": "By", "gauge": {"dataPoints": [{"asInt": "3"}, {"asDouble": 1.5}]}}) == [
        {"name": "g", "unit": "By", "type": "gauge", "value": 3}, {"name": "g", "unit": "By", "type": "gauge",
                                                                    "value": 1.5}]
    cumulative = {"name": "c", "sum": {"isMonotonic": True, "aggregationTemporality": 2, "dataPoints": [{"asInt": 9}]}}
    assert values(cumulative) == [{"name": "c", "type": "counter", "value": 9, "temporality": "cumulative"}]
    delta = {"name": "c", "sum": {"isMonotonic": True, "aggregationTemporality": 1, "dataPoints": [{"asInt": 2}]}}
    assert values(delta) == [{"name": "c", "type": "counter", "delta": 2, "value": 2, "temporality": "delta"}]
    updown = {"name": "u", "sum": {"aggregationTemporality": 2, "dataPoints": [{"asInt": -4}]}}
    assert values(updown) == [{"name": "u", "type": "gauge", "value": -4, "temporality": "cumulative"}]
    stale = {"name": "s", "gauge": {"dataPoints": [{"asInt": 1, "flags": 1}]}}
    assert values(stale) == []
    assert values({"name": "n", "gauge": {"dataPoints": [{}]}}) == ["rejected: n: data point without a value"]
    assert values({"name": "n"}) == ["rejected: n: a metric without data"]


def test_histogram_quantiles_from_buckets() -> None:
    hist = {"name": "h", "unit": "ms", "histogram": {"aggregationTemporality": 1, "dataPoints": [{
        "count": "100", "sum": 2500, "min": 1, "max": 90, "explicitBounds": [10, 20, 50],
        "bucketCounts": ["50", "30", "15", "5"]}]}}
    [got] = values(hist)
    assert isinstance(got, dict)
    assert got["count"] == 100 and got["sum"] == 2500 and got["min"] == 1 and got["max"] == 90
    assert got["p50"] == pytest.approx(10.0)  # rank 50 ends the first bucket
    assert got["p95"] == pytest.approx(50.0)  # rank 95 ends the third
    assert got["p99"] == pytest.approx(50 + 40 * 4 / 5)  # inside (50, max=90]
    assert got["temporality"] == "delta"


def test_exponential_histogram_and_summary() -> None:
    # scale 0: base 2, bucket i covers (2**i, 2**(i+1)]
    exp = {"name": "e", "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [{
        "count": "10", "sum": 30, "scale": 0, "zeroCount": "0", "positive": {"offset": 1, "bucketCounts": ["5", "5"]},
        "min": 2.5, "max": 7}]}}
    [got] = values(exp)
    assert isinstance(got, dict)
    assert got["p50"] == pytest.approx(4.0) and 4 < got["p95"] <= 7
    summary = {"name": "s", "summary": {"dataPoints": [{"count": "4", "sum": 10, "quantileValues": [
        {"quantile": 0.5, "value": 2}, {"quantile": 0.99, "value": 4}, {"quantile": 1.0, "value": 4.5}]}]}}
    assert values(summary) == [{"name": "s", "type": "histogram", "count": 4, "sum": 10, "p50": 2, "p99": 4,
                                "max": 4.5}]


def test_quantile_edges() -> None:
    assert quantile([], 0.5) is None
    assert quantile([(-math.inf, 10, 4)], 0.5) == 10  # no min known: the finite edge
    assert quantile([(-math.inf, 10, 4)], 0.5, low=2) == pytest.approx(6)


def test_json_rules_of_otlp() -> None:
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "severityNumber": 13,
        "timeUnixNano": 1764633600000000000, "futureField": True, "body": {"stringValue": "x"}}]}]}]}
    request, count, _, _ = decode.parse(orjson.dumps(body), decode.JSON, ExportLogsServiceRequest, bound.LOGS, 100)
    assert count == 1
    lr = request.resource_logs[0].scope_logs[0].log_records[0]  # type: ignore[attr-defined]
    assert lr.trace_id.hex() == "5b8efff798038103d269b633813fc60c" and lr.span_id.hex() == "eee19b7ec3c1b174"
    assert lr.severity_number == 13 and lr.time_unix_nano == 1764633600000000000
    for bad in (b"[1]", b"{", b'{"resourceLogs": 3}'):
        with pytest.raises(decode.Malformed):
            decode.parse(bad, decode.JSON, ExportLogsServiceRequest, bound.LOGS, 100)
    assert decode.media_type("application/x-protobuf") == decode.PROTOBUF
    assert decode.media_type("application/json; charset=utf-8") == decode.JSON
    assert decode.media_type("text/plain") is None



@pytest.mark.parametrize("nanos", [2**64 - 1, 1])
def test_an_implausible_time_becomes_the_receive_time_with_the_original_kept(nanos: int) -> None:
    from collector.contract.timefmt import now_iso

    lr = record("t")
    lr.time_unix_nano = nanos
    before = now_iso()
    doc = mapped(lr)
    assert before <= doc["@timestamp"] <= now_iso()
    assert doc["labels"]["original_timestamp"] == str(nanos) and doc["labels"]["timestamp_out_of_range"] is True
    point = Mapper(Redactor()).metric_doc(Mapper(Redactor()).origin([], "api-service"), nanos,
                                          {"name": "m", "type": "gauge", "value": 1}, [])
    assert before <= point["@timestamp"] and point["labels"]["original_timestamp"] == str(nanos)
    assert "labels" not in mapped(record("fine")) or "original_timestamp" not in mapped(record("fine"))["labels"]


def test_a_non_finite_attribute_is_counted_not_nulled() -> None:
    doc = mapped(record("n", ratio=float("nan"), big=float("inf"), ok=1.5, nested=[1.0, float("nan")]))
    assert doc["labels"]["ok"] == 1.5 and "ratio" not in doc["labels"] and "big" not in doc["labels"]
    assert doc["labels"]["otel_dropped_attributes"] == 2
    assert doc["extra"]["nested"] == [1.0, "NaN"]


def test_a_node_name_of_another_known_service_is_refused() -> None:
    known = ["api-service", "auth-service"]
    with pytest.raises(OtherService):
        service_of_resource({"service.instance.id": "auth-service-1"}, "api-service", known=known)
    assert service_of_resource({"service.instance.id": "pod-7f9c"}, "api-service", known=known)["node"] == \
        {"name": "pod-7f9c"}
    assert service_of_resource({"service.instance.id": "api-service-3"}, "api-service", known=known)["node"] == \
        {"name": "api-service-3"}


def test_resource_and_older_http_names_map_as_elastic_maps_them() -> None:
    """Elasticsearch's otel-data plugin (semconv-resource-to-ecs@mappings) for the resource; the
    semantic conventions' HTTP migration guide for the older attribute names."""
    resource = {
        "service.name": "api-service", "os.type": "linux", "os.name": "Debian", "os.version": "12",
        "os.description": "Debian GNU/Linux 12", "process.executable.path": "/usr/bin/python3",
        "k8s.pod.name": "api-7f9c", "k8s.pod.uid": "u-1", "k8s.namespace.name": "shop", "k8s.node.name": "n1",
        "k8s.deployment.name": "api", "cloud.platform": "aws_eks", "container.image.tags": ["1.4", "latest"],
        "telemetry.sdk.language": "python", "process.runtime.name": "cpython",
    }
    lr = record("r", **{"http.target": "/orders?id=7", "http.scheme": "https", "net.peer.ip": "10.0.0.9",
                        "http.client_ip": "203.0.113.5", "net.host.name": "shop.example", "http.flavor": "1.1",
                        "http.request_content_length": 42})
    lr.flags = 1
    doc = mapped(lr, resource)
    assert doc["host"]["os"] == {"platform": "linux", "name": "Debian", "version": "12", "full": "Debian GNU/Linux 12"}
    assert doc["process"] == {"executable": "/usr/bin/python3"}
    assert doc["kubernetes"] == {"pod": {"name": "api-7f9c", "uid": "u-1"}, "namespace": "shop",
                                 "node": {"name": "n1"}, "deployment": {"name": "api"}}
    assert doc["cloud"] == {"service": {"name": "aws_eks"}}
    assert doc["container"] == {"image": {"tag": ["1.4", "latest"]}}
    assert doc["service"] == {"name": "api-service", "language": {"name": "python"}, "runtime": {"name": "cpython"}}
    assert doc["url"] == {"path": "/orders", "query": "id=7", "scheme": "https"}
    assert doc["client"] == {"ip": "10.0.0.9", "address": "203.0.113.5"}
    assert doc["server"] == {"address": "shop.example"}
    assert doc["http"] == {"version": "1.1", "request": {"body": {"bytes": 42}}}
    assert doc["labels"] == {"trace_flags": 1}


def test_a_record_attribute_cannot_replace_the_service() -> None:
    doc = mapped(record("r", **{"telemetry.sdk.language": "go"}))
    assert doc["service"] == {"name": "api-service", "language": {"name": "go"}}


def _series_values(json_metrics: list[dict], series: object) -> list[tuple[object, int]]:
    from collector.otlp.metrics import Series

    assert isinstance(series, Series)
    return [(v if not isinstance(v, Rejected) else f"rejected: {v}", start)
            for m in json_metrics for _, v, start in points(metric_from(m), series, ("api-service",))]


def _sum(temporality: int, value: int, start: str = "1000", time: str = "2000", monotonic: bool = True) -> dict:
    return {"name": "c", "sum": {"isMonotonic": monotonic, "aggregationTemporality": temporality, "dataPoints": [
        {"asInt": value, "startTimeUnixNano": start, "timeUnixNano": time}]}}


def test_every_counter_has_value_and_delta_as_the_library_writes_them() -> None:
    """Delta sums get `value` (the running total, which dashboards read) besides `delta`; cumulative
    sums get `delta` since their previous point; a restart (new start time) is seen."""
    from collector.otlp.metrics import Series

    series = Series()
    got = _series_values([_sum(1, 2, "1000", "2000"), _sum(1, 3, "2000", "3000")], series)
    assert [(v["value"], v["delta"], start) for v, start in got] == [(2, 2, 1000), (5, 3, 2000)]  # type: ignore[index]
    got = _series_values([_sum(2, 10, "1000", "2000"), _sum(2, 14, "1000", "3000"), _sum(2, 4, "2500", "4000")],
                         Series())
    assert [(v.get("value"), v.get("delta"), v.get("reset"), start) for v, start in got] == [  # type: ignore[union-attr]
        (10, 10, None, 1000), (14, 4, None, 2000), (4, 4, True, 2500)]


def test_unspecified_temporality_is_rejected() -> None:
    from collector.otlp.metrics import Series

    [(got, _)] = _series_values([_sum(0, 1)], Series())
    assert isinstance(got, str) and "temporality unspecified" in got
    hist = {"name": "h", "histogram": {"dataPoints": [{"count": "1", "bucketCounts": ["1"]}]}}
    [(got, _)] = _series_values([hist], Series())
    assert isinstance(got, str) and "temporality unspecified" in got


def test_a_cumulative_histogram_gives_per_interval_values() -> None:
    """Its second point's count, sum and quantiles are the new observations only (before, they were
    over the process's whole life, in the fields the library uses for one interval)."""
    from collector.otlp.metrics import Series

    def point(time: str, counts: list[int], total: float) -> dict:
        return {"name": "h", "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "startTimeUnixNano": "1000", "timeUnixNano": time, "count": str(sum(counts)), "sum": total,
            "min": 1, "max": 90, "explicitBounds": [10, 20, 50], "bucketCounts": [str(c) for c in counts]}]}}

    series = Series()
    [(first, s1), (second, s2)] = _series_values([point("2000", [100, 0, 0, 0], 500.0),
                                                  point("3000", [100, 0, 0, 10], 1300.0)], series)
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["count"] == 100 and s1 == 1000  # its whole life, from its start time
    assert second["count"] == 10 and second["sum"] == 800.0 and s2 == 2000
    assert 50 <= second["p50"] <= 90 and "min" not in second and "max" not in second
    assert len(series) == 1


def test_series_memory_is_bounded() -> None:
    from collector.otlp.metrics import Series

    series = Series(limit=3)
    for i in range(10):
        series.step(("s", i), 0, 0, i)
    assert len(series) == 3 and series.step(("s", 9), 0, 0, 0) == (0, 0, 9) and series.step(("s", 0), 0, 0, 0) is None


def test_metric_documents_carry_the_interval_start() -> None:
    mapper = Mapper(Redactor())
    doc = mapper.metric_doc(mapper.origin([], "api-service"), 1_764_633_600_000_000_000,
                            {"name": "m", "type": "counter", "value": 1, "delta": 1}, [], 1_764_633_540_000_000_000)
    assert doc["event"]["start"] == "2025-12-01T23:59:00.000Z" and doc["@timestamp"] == "2025-12-02T00:00:00.000Z"
