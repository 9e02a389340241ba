"""The OTLP/HTTP app: POST /v1/logs and /v1/metrics (`application/x-protobuf` or `application/json`,
gzip or not); GET /health and /metrics.

Per request, with the ingest API's rules and its own classes (auth, Kafka gate, limits): bearer
token -> service (401); the resource may name that service or one of its instances, another
service is refused (403); body within `INGEST_MAX_BODY_BYTES` (413), gunzipped, decoded with the
generated classes (400 when it cannot be); at most `INGEST_MAX_RECORDS` log records or data
points (413); each mapped to the library's ECS document (collector.otlp.mapping), a record that
cannot be used is counted in `partial_success`; then every accepted document is produced with
acks=all and only then the 200 goes out. Kafka unavailable, or too many bytes in process: 503
with Retry-After (an OTLP exporter retries 429/502/503/504). Refusals carry a google.rpc.Status
body in the request's encoding, as the OTLP/HTTP specification asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from collector.ingest import body as bodies
from collector.ingest.auth import Authenticator
from collector.ingest.body import InFlight, Problem
from collector.ingest.metrics import IngestStats
from collector.ingest.ops import add_ops_routes, kafka_lifespan
from collector.ingest.producer import KafkaGate, Unavailable
from collector.otlp import bound, decode
from collector.otlp.config import OtlpSettings
from collector.otlp.mapping import Mapper, Origin, OtherService, Rejected, timestamp
from collector.otlp.metrics import points
from collector.redact import Redactor

# google.rpc.Code of each refusal (OTLP/HTTP answers carry a Status)
_GRPC_CODE = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 503: 14}
_SHAPE_ERRORS = (RecursionError, TypeError, ValueError, OverflowError, orjson.JSONEncodeError)
Pairs = list[tuple[bytes, bytes]]


class Outcome:
    """What one request's mapping produced: Kafka pairs, rejected count and first reason, other services."""

    def __init__(self) -> None:
        self.out: Pairs = []
        self.rejected = 0
        self.reason = ""
        self.others: set[str] = set()

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if not self.reason:
            self.reason = reason


def create_app(settings: OtlpSettings | None = None) -> FastAPI:
    settings = settings or OtlpSettings()
    gate = KafkaGate(settings)
    auth = Authenticator(settings)
    mapper = Mapper(Redactor(settings.redact), settings.default_environment, settings.otlp_max_attributes)
    stats = IngestStats()
    busy = InFlight(settings.max_in_flight_bytes)  # request bytes read, mapped or produced right now
    max_record = settings.max_record_bytes
    dumps = orjson.dumps

    app = FastAPI(
        title="elk-pipeline OTLP intake", version="1", lifespan=kafka_lifespan(gate),
        description="OTLP/HTTP logs and metrics (protobuf or JSON) mapped to ECS and written to Kafka (acks=all) "
                    "before the answer. See docs/otel.md.",
    )
    app.state.gate = gate
    app.state.stats = stats

    def add(outcome: Outcome, key: bytes, rec: dict[str, Any]) -> None:
        value = dumps(rec)
        if len(value) > max_record:
            outcome.reject(f"a record is {len(value)} bytes once mapped, over the limit of {max_record}")
        else:
            outcome.out.append((key, value))

    def origin_of(outcome: Outcome, resource: Any, service: str) -> Origin | None:
        """The resource's contribution, or None (noted for the 403) when it names another service."""
        try:
            return mapper.origin(resource.attributes, service)
        except OtherService as exc:
            outcome.others.add(exc.name[:100])
            return None

    def map_logs(request: ExportLogsServiceRequest, service: str) -> Outcome:
        outcome = Outcome()
        key = service.encode()
        for rl in request.resource_logs:
            origin = origin_of(outcome, rl.resource, service)
            if origin is None:
                continue
            for sl in rl.scope_logs:
                scope_name = sl.scope.name
                for lr in sl.log_records:
                    try:
                        add(outcome, key, mapper.log(origin, scope_name, lr))
                    except _SHAPE_ERRORS:
                        outcome.reject("a log record could not be mapped (nested too deeply?)")
        return outcome

    def map_metrics(request: ExportMetricsServiceRequest, service: str) -> Outcome:
        outcome = Outcome()
        key = service.encode()
        for rm in request.resource_metrics:
            origin = origin_of(outcome, rm.resource, service)
            if origin is None:
                continue
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point, values in points(metric):
                        if isinstance(values, Rejected):
                            outcome.reject(str(values))
                            continue
                        try:
                            ts = timestamp(point.time_unix_nano)
                            add(outcome, key, mapper.metric_doc(origin, ts, values, point.attributes))
                        except _SHAPE_ERRORS:
                            outcome.reject(f"{metric.name}: a data point could not be mapped")
        return outcome

    def answer(kind: str, status: int, body: Message | bytes, headers: dict[str, str] | None = None) -> Response:
        content = body if isinstance(body, bytes) else decode.encode(body, kind)
        return Response(content, status_code=status, media_type=kind, headers=headers)

    def make_handler(endpoint: str, topic: str, request_cls: type[Message], response_cls: type[Message],
                     path: bound.Path, map_request: Callable[[Any, str], Outcome],
                     what: str, rejected_field: str) -> Callable[[Request], Any]:

        async def handler(request: Request) -> Response:
            kind = decode.media_type(request.headers.get("content-type", "")) or decode.JSON
            status = 500
            try:
                response = await _handle(request, kind)
                status = response.status_code
                return response
            except Problem as problem:
                status = problem.status
                body = decode.status(_GRPC_CODE.get(problem.status, 2), problem.message, kind)
                return answer(kind, problem.status, body, problem.headers)
            finally:
                stats.requests[(endpoint, status)] += 1

        async def _handle(request: Request, kind: str) -> Response:
            service = auth.service_for(request.headers.get("authorization"))
            if service is None:
                raise Problem(401, "a valid bearer token is required (Authorization: Bearer <token>)",
                              {"WWW-Authenticate": 'Bearer realm="otlp"'})
            if decode.media_type(request.headers.get("content-type", "")) is None:
                raise Problem(415, "Content-Type must be application/x-protobuf or application/json (OTLP/HTTP)")
            hold = busy.hold()  # grows chunk by chunk: concurrent requests see each other's bytes
            try:
                body, wire = await bodies.read(request.stream(), hold, settings.max_body_bytes,
                                               request.headers.get("content-length"),
                                               request.headers.get("content-encoding", "").strip().lower())
                stats.body_bytes += wire
                return await _process(body, kind, service)
            finally:
                hold.release()

        async def _process(body: bytes, kind: str, service: str) -> Response:
            try:
                message, _ = decode.parse(body, kind, request_cls, path, settings.max_records)
            except decode.Malformed as exc:
                raise Problem(400, str(exc)) from None
            except bound.TooMany as exc:
                raise Problem(413, f"{what}: {exc}, the limit per request is {settings.max_records}") from None
            outcome = map_request(message, service)
            if outcome.others:
                raise Problem(403, f"this token may write for service {service!r} only; the request's resources "
                                   f"name {sorted(outcome.others)[:5]}")
            if outcome.rejected and not outcome.out:
                stats.rejected[endpoint] += outcome.rejected
                raise Problem(400, f"all {outcome.rejected} {what} were rejected; first: {outcome.reason}")
            if outcome.out:
                t0 = time.perf_counter()
                try:
                    await gate.produce(topic, outcome.out)
                except Unavailable as exc:
                    raise Problem(503, exc.reason, {"Retry-After": str(exc.retry_after)}) from None
                stats.produce.observe(time.perf_counter() - t0)
                stats.accepted[endpoint] += len(outcome.out)
            response = response_cls()
            if outcome.rejected:
                stats.rejected[endpoint] += outcome.rejected
                partial = response.partial_success
                setattr(partial, rejected_field, outcome.rejected)
                partial.error_message = f"{outcome.rejected} {what} rejected; first: {outcome.reason}"[:1000]
            return answer(kind, 200, response)

        handler.__name__ = f"post_{endpoint.rsplit('/', 1)[-1]}"
        return handler

    routes = (
        ("/v1/logs", settings.topic_logs, ExportLogsServiceRequest, ExportLogsServiceResponse, bound.LOGS,
         map_logs, "log records", "rejected_log_records", "OTLP logs (ExportLogsServiceRequest)."),
        ("/v1/metrics", settings.topic_metrics, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
         bound.METRICS, map_metrics, "data points", "rejected_data_points",
         "OTLP metrics (ExportMetricsServiceRequest)."),
    )
    for endpoint, topic, request_cls, response_cls, path, map_request, what, field, summary in routes:
        handler = make_handler(endpoint, topic, request_cls, response_cls, path, map_request, what, field)
        app.add_api_route(endpoint, handler, methods=["POST"], summary=summary)

    add_ops_routes(app, "elk-otlp", gate, stats, busy)
    return app
