"""The OTLP/HTTP app: POST /v1/logs and /v1/metrics (`application/x-protobuf` or `application/json`,
gzip or not); GET /health and /metrics; OTLP/gRPC beside it (`collector.otlp.grpc_server`).

The export itself is `collector.otlp.intake`; here: the token from `Authorization`, the body read
by the ingest API's reader (bytes counted as they arrive, every gzip member, the in-flight bound;
413 over `INGEST_MAX_BODY_BYTES`), 415 for other encodings, and the answer in the request's
encoding. Refusals carry a google.rpc.Status body, as the OTLP/HTTP specification asks; 503 has
Retry-After (an OTLP exporter retries 429/502/503/504).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from google.protobuf.message import Message

from collector.ingest import body as bodies
from collector.ingest.body import Problem
from collector.ingest.ops import add_ops_routes, kafka_lifespan
from collector.otlp import decode, grpc_server
from collector.otlp.config import OtlpSettings
from collector.otlp.intake import LOGS, METRICS, Intake, Signal

# google.rpc.Code of each refusal (OTLP/HTTP answers carry a Status)
GRPC_CODE = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 503: 14}


def create_app(settings: OtlpSettings | None = None) -> FastAPI:
    """The app; its lifespan also runs OTLP/gRPC on `INGEST_OTLP_GRPC_PORT` (same intake, same loop)."""
    settings = settings or OtlpSettings()
    intake = Intake(settings)
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kafka_lifespan(intake.gate)(app):
            grpc = await grpc_server.start(intake, settings.otlp_host, settings.otlp_grpc_port) \
                if settings.otlp_grpc_port else None
            try:
                yield
            finally:
                if grpc is not None:
                    await grpc.stop(5.0)  # requests under way get their answer, before the producer stops
                intake.pool.shutdown(wait=False)

    app = FastAPI(
        title="elk-pipeline OTLP intake", version="1", lifespan=lifespan,
        description="OTLP/HTTP logs and metrics (protobuf or JSON) mapped to ECS and written to Kafka (acks=all) "
                    "before the answer. See docs/otel.md.",
    )
    app.state.intake = intake
    stats = intake.stats

    def answer(kind: str, status: int, body: Message | bytes, headers: dict[str, str] | None = None) -> Response:
        content = body if isinstance(body, bytes) else decode.encode(body, kind)
        return Response(content, status_code=status, media_type=kind, headers=headers)

    def make_handler(signal: Signal) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            kind = decode.media_type(request.headers.get("content-type", "")) or decode.JSON
            status = 500
            try:
                response = await _handle(request, kind)
                status = response.status_code
                return response
            except Problem as problem:
                status = problem.status
                body = decode.status(GRPC_CODE.get(problem.status, 2), problem.message, kind)
                return answer(kind, problem.status, body, problem.headers)
            finally:
                stats.requests[(signal.endpoint, status)] += 1

        async def _handle(request: Request, kind: str) -> Response:
            service = intake.service(request.headers.get("authorization"))
            if decode.media_type(request.headers.get("content-type", "")) is None:
                raise Problem(415, "Content-Type must be application/x-protobuf or application/json (OTLP/HTTP)")
            intake.refuse_if_down()
            hold = intake.busy.hold()  # grows chunk by chunk: concurrent requests see each other's bytes
            try:
                body, wire = await bodies.read(request.stream(), hold, settings.max_body_bytes,
                                               request.headers.get("content-length"),
                                               request.headers.get("content-encoding", "").strip().lower())
                stats.body_bytes += wire
                return answer(kind, 200, await intake.export(signal, body, kind, service, hold))
            finally:
                hold.release()

        handler.__name__ = f"post_{signal.endpoint.rsplit('/', 1)[-1]}"
        return handler

    for signal, summary in ((LOGS, "OTLP logs (ExportLogsServiceRequest)."),
                            (METRICS, "OTLP metrics (ExportMetricsServiceRequest).")):
        app.add_api_route(signal.endpoint, make_handler(signal), methods=["POST"], summary=summary)
    add_ops_routes(app, "elk-otlp", intake.gate, stats, intake.busy)
    return app
