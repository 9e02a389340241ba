"""OTLP/gRPC (port 4317): the LogsService and MetricsService `Export` methods of `opentelemetry-proto`,
served by grpcio's asyncio server on the same event loop, Kafka producer and bounds as OTLP/HTTP.

The request arrives as bytes (no deserializer), so the record count is checked before the
generated class builds it, exactly as over HTTP; gzip is undone by gRPC itself and
`grpc.max_receive_message_length` is `INGEST_MAX_BODY_BYTES`. The bearer token comes from the
`authorization` metadata. Refusals are gRPC status codes as the OTLP specification lists them:
UNAVAILABLE (retryable: Kafka away, too many bytes in process; with a RetryInfo carrying the
Retry-After an HTTP client would get), INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED,
RESOURCE_EXHAUSTED (too many records or bytes, or too many calls at once; the specification lets
clients retry it only with a RetryInfo, but the Python OTLP exporter retries it anyway, with backoff:
docs/otel.md).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as Any_
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from grpc import aio
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from collector.ingest.body import Problem
from collector.otlp import decode
from collector.otlp.intake import LOGS, METRICS, Intake, Signal

STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
SERVICES = (
    (logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name, LOGS),
    (metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name, METRICS),
)


def retry_info(code: grpc.StatusCode, problem: Problem) -> tuple[tuple[str, bytes], ...]:
    """For UNAVAILABLE: the HTTP answer's Retry-After as a google.rpc.RetryInfo, in the two places
    clients read it: `grpc-status-details-bin` (a google.rpc.Status with the RetryInfo among its
    details: grpc-go, the OTel Collector, the Java and Go exporters) and `google.rpc.retryinfo-bin`
    (the RetryInfo alone: what the Python OTLP gRPC exporter reads)."""
    after = (problem.headers or {}).get("Retry-After", "")
    if code != grpc.StatusCode.UNAVAILABLE or not after.isdigit():
        return ()
    info = RetryInfo(retry_delay=Duration(seconds=int(after)))
    details = Any_()
    details.Pack(info)
    status = Status(code=code.value[0], message=problem.message, details=[details])
    return (("grpc-status-details-bin", status.SerializeToString()),
            ("google.rpc.retryinfo-bin", info.SerializeToString()))


def _export(intake: Intake, signal: Signal) -> Any:
    label = f"grpc {signal.endpoint}"

    async def export(request: bytes, context: aio.ServicerContext) -> bytes:
        status = 500
        try:
            metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
            service = intake.service(metadata.get("authorization"))
            intake.refuse_if_down()
            hold = intake.busy.hold()
            try:
                hold.grow(len(request))
                intake.stats.body_bytes += len(request)
                response = await intake.export(signal, request, decode.PROTOBUF, service, hold)
            finally:
                hold.release()
            status = 200
            return response.SerializeToString()
        except Problem as problem:
            status = problem.status
            code = STATUS.get(problem.status, grpc.StatusCode.INTERNAL)
            await context.abort(code, problem.message, retry_info(code, problem))
            raise AssertionError("abort returns by raising") from None
        finally:
            intake.stats.requests[(label, status)] += 1

    return grpc.unary_unary_rpc_method_handler(export)


async def start(intake: Intake, host: str, port: int) -> aio.Server:
    """The gRPC server, listening; `await server.stop(grace)` ends it."""
    # each call holds its whole message before the handler runs: the number of calls is the bound
    # (past it grpcio answers RESOURCE_EXHAUSTED, which OTLP exporters retry with backoff)
    server = aio.server(options=[("grpc.max_receive_message_length", intake.settings.max_body_bytes),
                                 ("grpc.so_reuseport", 0)],
                        maximum_concurrent_rpcs=intake.settings.otlp_grpc_max_calls)
    server.add_generic_rpc_handlers(tuple(
        grpc.method_handlers_generic_handler(name, {"Export": _export(intake, signal)}) for name, signal in SERVICES))
    try:
        bound_port = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound_port = 0
    if bound_port == 0:
        raise OSError(f"cannot listen on {host}:{port} for OTLP/gRPC")
    await server.start()
    return server
