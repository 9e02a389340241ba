"""The OTLP/HTTP app in process against the real broker: both encodings, gzip, partial_success,
auth, the service rule and the limits. Hand-built requests use the generated classes; the SDK
clients are in test_sdk_clients.py."""

from __future__ import annotations

import gzip

import orjson
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from tests.otlp.conftest import OTHER_TOKEN, PROTOBUF, Otlp, logs_request, record

pytestmark = pytest.mark.stack

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


async def test_protobuf_logs_are_in_kafka_mapped_before_the_answer(otlp: Otlp) -> None:
    recs = [record(f"m{i}", id=f"r{i}") for i in range(5)]
    recs[0].trace_id = bytes.fromhex(TRACE)
    recs[0].span_id = bytes.fromhex(SPAN)
    resp = await otlp.post("/v1/logs", logs_request(recs, "api-service-2", **{"service.version": "1.4.0",
                                                                                "deployment.environment": "prod"}))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == PROTOBUF
    answer = ExportLogsServiceResponse.FromString(resp.content)
    assert not answer.HasField("partial_success")
    docs = await otlp.read(otlp.settings.topic_logs, 5)
    assert sorted(d["labels"]["id"] for d in docs) == [f"r{i}" for i in range(5)]
    first = next(d for d in docs if d["labels"]["id"] == "r0")
    assert first["trace"] == {"id": TRACE} and first["span"] == {"id": SPAN}
    assert first["service"] == {"name": "api-service", "version": "1.4.0", "environment": "prod",
                                "node": {"name": "api-service-2"}}
    assert first["@timestamp"] == "2025-12-02T00:00:00.123Z" and first["log.level"] == "info"
    assert first["message"] == "m0" and first["event"]["dataset"] == "api_service"
    assert list(first)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]


async def test_json_logs_with_hex_ids_string_int64_and_unknown_fields(otlp: Otlp) -> None:
    body = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "api-service"}}]},
        "scopeLogs": [{"scope": {"name": "checkout"}, "logRecords": [
            {"timeUnixNano": "1764633600123000000", "severityNumber": 17, "severityText": "ERROR",
             "traceId": TRACE, "spanId": SPAN, "somethingNew": {"x": 1},
             "body": {"kvlistValue": {"values": [{"key": "order", "value": {"intValue": "42"}}]}},
             "attributes": [{"key": "exception.type", "value": {"stringValue": "ValueError"}},
                            {"key": "http.response.status_code", "value": {"intValue": "502"}}]}]}]}]}
    resp = await otlp.post("/v1/logs", orjson.dumps(body), content_type="application/json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json" and resp.json() == {}
    [doc] = await otlp.read(otlp.settings.topic_logs, 1)
    assert doc["trace"]["id"] == TRACE and doc["span"]["id"] == SPAN
    assert doc["log.level"] == "error" and doc["log"]["logger"] == "checkout"
    assert doc["error"] == {"type": "ValueError"} and doc["http"] == {"response": {"status_code": 502}}
    assert doc["extra"]["body"] == {"order": 42} and orjson.loads(doc["message"]) == {"order": 42}


async def test_gzip_body(otlp: Otlp) -> None:
    body = logs_request([record("zipped", id="z1")]).SerializeToString()
    resp = await otlp.post("/v1/logs", gzip.compress(body), **{"Content-Encoding": "gzip"})
    assert resp.status_code == 200, resp.text
    [doc] = await otlp.read(otlp.settings.topic_logs, 1)
    assert doc["message"] == "zipped"


async def test_partial_success_counts_the_records_over_the_size_limit(otlp: Otlp) -> None:
    big = {f"k{i}": "x" * 1000 for i in range(otlp.settings.max_record_bytes // 1000 + 10)}  # labels, each kept
    recs = [record("ok", id="a"), record("big", id="b", **big), record("ok", id="c")]
    resp = await otlp.post("/v1/logs", logs_request(recs))
    assert resp.status_code == 200
    partial = ExportLogsServiceResponse.FromString(resp.content).partial_success
    assert partial.rejected_log_records == 1 and "over the limit" in partial.error_message
    docs = await otlp.read(otlp.settings.topic_logs, 2)
    assert sorted(d["labels"]["id"] for d in docs) == ["a", "c"]


async def test_metrics_partial_success_in_json(otlp: Otlp) -> None:
    body = {"resourceMetrics": [{"resource": {"attributes": []}, "scopeMetrics": [{"metrics": [
        {"name": "queue.depth", "unit": "1", "gauge": {"dataPoints": [
            {"timeUnixNano": "1764633600000000000", "asInt": "7", "attributes": [
                {"key": "queue", "value": {"stringValue": "orders"}}]},
            {"timeUnixNano": "1764633600000000000", "asDouble": "NaN"}]}}]}]}]}
    resp = await otlp.post("/v1/metrics", orjson.dumps(body), content_type="application/json")
    assert resp.status_code == 200, resp.text
    answer = json_format.ParseDict(resp.json(), ExportMetricsServiceResponse())
    assert answer.partial_success.rejected_data_points == 1
    assert "not a finite number" in answer.partial_success.error_message
    [doc] = await otlp.read(otlp.settings.topic_metrics, 1)
    assert doc["metric"] == {"name": "queue.depth", "unit": "1", "type": "gauge", "value": 7}
    assert doc["labels"] == {"queue": "orders"} and doc["event"]["kind"] == "metric"
    assert doc["message"] == "metric queue.depth"


async def test_every_record_rejected_is_400_never_success(otlp: Otlp) -> None:
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "m", "gauge": {"dataPoints": [{"asDouble": "Infinity"}]}}]}]}]}
    resp = await otlp.post("/v1/metrics", orjson.dumps(body), content_type="application/json")
    assert resp.status_code == 400
    assert "all 1 data points were rejected" in resp.json()["message"]


async def test_wrong_token_is_401_with_a_status_body(otlp: Otlp) -> None:
    resp = await otlp.post("/v1/logs", logs_request([record()]), token="nope")
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    assert Status.FromString(resp.content).code == 16
    assert (await otlp.post("/v1/logs", logs_request([record()]), token=None)).status_code == 401


async def test_resource_of_another_service_is_refused_whole(otlp: Otlp) -> None:
    resp = await otlp.post("/v1/logs", logs_request([record("x", id="o")], "api-service"), token=OTHER_TOKEN)
    assert resp.status_code == 403
    assert "auth-service" in Status.FromString(resp.content).message
    # the SDKs' default name is no claim: the token's service
    resp = await otlp.post("/v1/logs", logs_request([record("y", id="u")], "unknown_service:node"),
                           token=OTHER_TOKEN)
    assert resp.status_code == 200
    [doc] = await otlp.read(otlp.settings.topic_logs, 1)
    assert doc["service"] == {"name": "auth-service"} and doc["labels"]["id"] == "u"


async def test_malformed_bodies_are_400(otlp: Otlp) -> None:
    assert (await otlp.post("/v1/logs", b"\x0a\xff\xff\xff")).status_code == 400
    assert (await otlp.post("/v1/logs", b"{nope", content_type="application/json")).status_code == 400
    bad_id = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}
    resp = await otlp.post("/v1/logs", orjson.dumps(bad_id), content_type="application/json")
    assert resp.status_code == 400 and "not hex" in resp.json()["message"]
    assert (await otlp.post("/v1/logs", b"[]", content_type="application/json")).status_code == 400
    resp = await otlp.post("/v1/logs", gzip.compress(b"x") + b"junk", **{"Content-Encoding": "gzip"})
    assert resp.status_code == 400
    assert (await otlp.post("/v1/logs", b"x", content_type="text/plain")).status_code == 415


async def test_limits_as_the_ingest_api(otlp: Otlp) -> None:
    too_many = logs_request([LogRecord(body=AnyValue(string_value="x"))] * (otlp.settings.max_records + 1))
    resp = await otlp.post("/v1/logs", too_many)
    assert resp.status_code == 413 and "the limit per request is" in Status.FromString(resp.content).message
    huge = b"\x00" * (otlp.settings.max_body_bytes + 1)
    assert (await otlp.post("/v1/logs", huge)).status_code == 413
    bomb = gzip.compress(b"\x00" * (otlp.settings.max_body_bytes * 4))
    assert (await otlp.post("/v1/logs", bomb, **{"Content-Encoding": "gzip"})).status_code == 413


async def test_empty_request_is_success_with_nothing_produced(otlp: Otlp) -> None:
    resp = await otlp.post("/v1/logs", b"")
    assert resp.status_code == 200
    assert ExportLogsServiceResponse.FromString(resp.content) == ExportLogsServiceResponse()


async def test_a_group_before_the_records_does_not_skip_the_limit(otlp: Otlp) -> None:
    """The parser steps over an unknown group and reads on: so does the count (413, nothing produced)."""
    from tests.otlp.test_bound import _group, records_behind

    body = records_behind(_group(15), otlp.settings.max_records + 1)
    resp = await otlp.post("/v1/logs", body)
    assert resp.status_code == 413
    resp = await otlp.post("/v1/logs", gzip.compress(body), **{"Content-Encoding": "gzip"})
    assert resp.status_code == 413


def deep_kvlist_attribute(depth: int) -> bytes:
    """A LogRecord `attributes` field holding kvlists nested `depth` deep, encoded by hand (the
    generated classes refuse to build what they could not parse)."""
    from tests.otlp.test_bound import _ld

    value = _ld(0x0A, b"bottom")  # AnyValue.string_value
    for _ in range(depth):
        value = _ld(0x32, _ld(0x0A, _ld(0x0A, b"k") + _ld(0x12, value)))  # kvlist_value.values[KeyValue]
    return _ld(0x32, _ld(0x0A, b"nest") + _ld(0x12, value))  # LogRecord.attributes (field 6)


def deep_json(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"stringValue": "bottom"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


async def test_one_record_nested_too_deeply_costs_that_record_only(otlp: Otlp) -> None:
    from tests.otlp.test_bound import _ld

    bad = record("deep", id="bad").SerializeToString() + deep_kvlist_attribute(33)  # past the parser's limit
    recs = [record("ok", id="a").SerializeToString(), bad, record("ok", id="c").SerializeToString()]
    body = _ld(0x0A, _ld(0x12, b"".join(_ld(0x12, r) for r in recs)))  # resource_logs[scope_logs[log_records]]
    resp = await otlp.post("/v1/logs", body)
    assert resp.status_code == 200, resp.content
    partial = ExportLogsServiceResponse.FromString(resp.content).partial_success
    assert partial.rejected_log_records == 1 and "could not be decoded" in partial.error_message
    docs = await otlp.read(otlp.settings.topic_logs, 2)
    assert sorted(d["labels"]["id"] for d in docs) == ["a", "c"]


@pytest.mark.parametrize("bad", [
    {"traceId": "not-hex", "body": {"stringValue": "x"}},
    {"body": deep_json(40)},  # past json_format's depth, even for the record alone
])
async def test_one_bad_json_record_costs_that_record_only(otlp: Otlp, bad: dict[str, object]) -> None:
    good = [{"body": {"stringValue": "ok"}, "attributes": [{"key": "id", "value": {"stringValue": i}}]}
            for i in ("a", "c")]
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [good[0], bad, good[1]]}]}]}
    resp = await otlp.post("/v1/logs", orjson.dumps(body), content_type="application/json")
    assert resp.status_code == 200, resp.text
    answer = json_format.ParseDict(resp.json(), ExportLogsServiceResponse())
    assert answer.partial_success.rejected_log_records == 1
    docs = await otlp.read(otlp.settings.topic_logs, 2)
    assert sorted(d["labels"]["id"] for d in docs) == ["a", "c"]
