"""OTLP/gRPC in process against the real broker: the refusals as gRPC status codes, partial success
in the response, and gRPC's own message-size limit set to the body limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from collector.otlp.app import create_app
from tests.ingest.conftest import free_port
from tests.kafka_io import consume
from tests.otlp.conftest import API_TOKEN, OTHER_TOKEN, logs_request, make_settings, record

pytestmark = pytest.mark.stack
METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


@pytest.fixture
async def export(kafka_bootstrap: str, unique: str) -> AsyncIterator[Any]:
    port = free_port()
    settings = make_settings(kafka_bootstrap, unique, otlp_grpc_port=port, max_body_bytes=64 * 1024,
                             max_records=100, max_record_bytes=16 * 1024)
    app = create_app(settings)
    async with app.router.lifespan_context(app), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD, request_serializer=ExportLogsServiceRequest.SerializeToString,
                                   response_deserializer=ExportLogsServiceResponse.FromString)

        async def send(request: Any, token: str | None = API_TOKEN) -> ExportLogsServiceResponse:
            metadata = (("authorization", f"Bearer {token}"),) if token else ()
            return await call(request, metadata=metadata, timeout=30)

        raw = channel.unary_unary(METHOD)  # bytes as they are

        async def send_bytes(body: bytes) -> bytes:
            return await raw(body, metadata=(("authorization", f"Bearer {API_TOKEN}"),), timeout=30)

        send.topic = settings.topic_logs  # type: ignore[attr-defined]
        send.raw = send_bytes  # type: ignore[attr-defined]
        yield send


async def code_of(coro: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    return info.value.code()


async def test_accepted_and_partial_success(export: Any, kafka_bootstrap: str) -> None:
    big = {f"k{i}": "x" * 1000 for i in range(20)}
    answer = await export(logs_request([record("ok", id="a"), record("big", id="b", **big)]))
    assert answer.partial_success.rejected_log_records == 1
    [msg] = await consume(kafka_bootstrap, export.topic, 1)
    assert b'"id":"a"' in msg.value


async def test_refusals_are_status_codes(export: Any) -> None:
    assert await code_of(export(logs_request([record()]), token=None)) == grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(export(logs_request([record()]), token="wrong")) == grpc.StatusCode.UNAUTHENTICATED
    other = export(logs_request([record()], "api-service"), token=OTHER_TOKEN)
    assert await code_of(other) == grpc.StatusCode.PERMISSION_DENIED
    too_many = logs_request([record()] * 101)
    assert await code_of(export(too_many)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    huge = logs_request([record("x" * 70_000)])
    assert await code_of(export(huge)) == grpc.StatusCode.RESOURCE_EXHAUSTED  # gRPC's own size limit
    every_one_bad = logs_request([record("big", **{f"k{i}": "x" * 1000 for i in range(20)})])
    assert await code_of(export(every_one_bad)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(export.raw(b"\x0a\xff\xff\xff")) == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_group_before_the_records_does_not_skip_the_limit(export: Any) -> None:
    from tests.otlp.test_bound import _group, records_behind

    body = records_behind(_group(15), 101)
    assert await code_of(export.raw(body)) == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_unavailable_carries_retry_info(kafka_bootstrap: str, unique: str) -> None:
    """The HTTP 503's Retry-After, for gRPC clients: in grpc-status-details-bin (a Status with a
    RetryInfo) and google.rpc.retryinfo-bin (what the Python exporter reads)."""
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status

    port = free_port()
    app = create_app(make_settings(kafka_bootstrap, unique, otlp_grpc_port=port, retry_after_s=7))
    async with app.router.lifespan_context(app), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        app.state.intake.gate._trip("test: broker known to be down")
        call = channel.unary_unary(METHOD)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(logs_request([record()]).SerializeToString(),
                       metadata=(("authorization", f"Bearer {API_TOKEN}"),), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(info.value.trailing_metadata())
    assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.seconds == 7
    status = Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == 14
    [detail] = status.details
    unpacked = RetryInfo()
    assert detail.Unpack(unpacked) and unpacked.retry_delay.seconds == 7
