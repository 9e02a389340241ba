"""The record-count limit before the generated classes build anything: counts agree with the
parsed message, floods of tiny entries are refused fast and small, truncation is malformed."""

from __future__ import annotations

import time
import tracemalloc

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics

from collector.otlp import bound, decode
from tests.otlp.conftest import kv, logs_request, record


def metrics_request() -> ExportMetricsServiceRequest:
    gauge = Metric(name="g")
    gauge.gauge.data_points.extend([NumberDataPoint(as_int=i) for i in range(3)])
    counter = Metric(name="c")
    counter.sum.data_points.extend([NumberDataPoint(as_double=1.5, attributes=[kv("k", "v")])] * 2)
    histogram = Metric(name="h")
    histogram.histogram.data_points.add(count=4, bucket_counts=[1, 3], explicit_bounds=[10])
    empty = Metric(name="nothing")
    scope = ScopeMetrics(metrics=[gauge, counter, histogram, empty])
    return ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(scope_metrics=[scope, scope])])


@pytest.mark.parametrize(("message", "path", "expected"), [
    (logs_request([record(f"m{i}", k=i) for i in range(7)]), bound.LOGS, 7),
    (ExportLogsServiceRequest(), bound.LOGS, 0),
    (metrics_request(), bound.METRICS, 12),
])
def test_counts_match_the_parsed_message(message: object, path: bound.Path, expected: int) -> None:
    body = message.SerializeToString()  # type: ignore[attr-defined]
    assert bound.count_protobuf(body, path, 1000) == expected
    doc = json_format.MessageToDict(message)  # type: ignore[arg-type]
    assert bound.count_json(doc, path, 1000) == expected
    assert bound.scan_json(orjson.dumps(doc), path, 1000) == expected
    with pytest.raises(bound.TooMany):
        bound.count_protobuf(body, path, expected - 1) if expected else bound.count_json(
            {"resourceLogs": [{}] * 100}, path, 0)


def _ld(tag: int, payload: bytes) -> bytes:
    """A length-delimited field, for building floods without building messages."""
    size, out = len(payload), bytearray([tag])
    while True:
        byte, size = size & 0x7F, size >> 7
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out) + payload


@pytest.mark.parametrize("body", [
    _ld(0x0A, _ld(0x12, b"\x12\x00" * 5_000_000)),  # 10 MB: five million empty log records in one scope
    b"\x0a\x00" * 5_000_000,  # five million empty resources
])
def test_a_flood_of_empty_entries_is_refused_before_parsing(body: bytes) -> None:
    t0 = time.perf_counter()
    with pytest.raises(bound.TooMany):
        decode.parse(body, decode.PROTOBUF, ExportLogsServiceRequest, bound.LOGS, 10_000)
    assert time.perf_counter() - t0 < 1.0  # parsing it takes seconds (and ~650 MB)
    tracemalloc.start()
    with pytest.raises(bound.TooMany):
        decode.parse(body, decode.PROTOBUF, ExportLogsServiceRequest, bound.LOGS, 10_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 << 20


def test_json_flood_is_refused_before_json_format() -> None:
    body = orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{}] * 200_000}]}]})
    t0 = time.perf_counter()
    with pytest.raises(bound.TooMany):
        decode.parse(body, decode.JSON, ExportLogsServiceRequest, bound.LOGS, 10_000)
    assert time.perf_counter() - t0 < 1.0  # json_format would need seconds for 200k records


@pytest.mark.parametrize("body", [
    b'{"resourceLogs":[' + b"{}," * 3_500_000 + b"{}]}",  # 10 MiB of empty resources
    b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + b"{}," * 3_500_000 + b"{}]}]}]}",  # of empty records
    b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[' + b"[[[[0]]]]," * 1_000_000 + b"{}]}]}]}",  # of lists
])
def test_a_json_flood_is_refused_before_orjson_parses_it(body: bytes) -> None:
    """orjson would build every `{}` first (10 MiB: ~300 MB, 0.8 s) for the count to say 413."""
    t0 = time.perf_counter()
    with pytest.raises(bound.TooMany):
        decode.parse(body, decode.JSON, ExportLogsServiceRequest, bound.LOGS, 10_000)
    assert time.perf_counter() - t0 < 1.0
    tracemalloc.start()
    with pytest.raises(bound.TooMany):
        decode.parse(body, decode.JSON, ExportLogsServiceRequest, bound.LOGS, 10_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("body", [b"\x0a\x05\x12", b"\x0a\xff", b"\x0a\x03\x12\x09\x00"])
def test_truncated_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(decode.Malformed):
        decode.parse(body, decode.PROTOBUF, ExportLogsServiceRequest, bound.LOGS, 100)


def _group(number: int, payload: bytes = b"") -> bytes:
    """An unknown group: start tag, fields, end tag (wire types 3 and 4)."""
    return bytes([number << 3 | 3]) + payload + bytes([number << 3 | 4])


def records_behind(prefix: bytes, count: int) -> bytes:
    """`prefix` (bytes the count must step over), then one resource of `count` empty log records."""
    return prefix + _ld(0x0A, _ld(0x12, b"\x12\x00" * count))


@pytest.mark.parametrize("prefix", [
    _group(15),  # an empty unknown group
    _group(15, b"\x08\x01" + _group(14, _ld(0x0A, b"")) + b"\x0d\x00\x00\x00\x00"),  # nested, with fields
    _group(1),  # a group under the number of resource_logs: still unknown to the parser
])
def test_a_group_does_not_hide_the_records_after_it(prefix: bytes) -> None:
    body = records_behind(prefix, 2_000)
    assert len(ExportLogsServiceRequest.FromString(body).resource_logs[0].scope_logs[0].log_records) == 2_000
    with pytest.raises(bound.TooMany):
        decode.parse(body, decode.PROTOBUF, ExportLogsServiceRequest, bound.LOGS, 1_000)
    assert bound.count_protobuf(records_behind(prefix, 7), bound.LOGS, 1_000) == 7


@pytest.mark.parametrize("body", [
    bytes([15 << 3 | 3]) + b"\x08\x01",  # no end
    bytes([15 << 3 | 4]),  # an end without its start
    _group(15, bytes([14 << 3 | 4])),  # the wrong end
    b"\x0e",  # wire type 6
])
def test_broken_groups_are_malformed(body: bytes) -> None:
    with pytest.raises(decode.Malformed):
        decode.parse(body + records_behind(b"", 3), decode.PROTOBUF, ExportLogsServiceRequest, bound.LOGS, 100)
