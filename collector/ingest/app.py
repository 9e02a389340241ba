"""The FastAPI app: POST /v1/logs, /v1/metrics, /v1/health; GET /health, /metrics; docs at /docs.

Per request: token -> service (401), body within limits (413), gunzip, JSON array or NDJSON by
Content-Type (400/415), each record shaped (rejected ones listed by index with a reason; a
record of another service makes the request 403), then the accepted records are produced and
the answer, 202 {"accepted": n, "rejected": [{"index", "reason"}]}, is sent only once Kafka
acknowledged them all (503 + Retry-After otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from collector.ingest import body as bodies
from collector.ingest.auth import Authenticator
from collector.ingest.body import InFlight, Problem
from collector.ingest.config import IngestSettings
from collector.ingest.metrics import IngestStats
from collector.ingest.ops import add_ops_routes, kafka_lifespan
from collector.ingest.producer import KafkaGate, Unavailable
from collector.ingest.validate import OtherService, Reject, Shaper
from collector.redact import Redactor


class RejectedRecord(BaseModel):
    index: int = Field(description="0-based position of the record (array element, or non-empty NDJSON line).")
    reason: str


class IngestResult(BaseModel):
    accepted: int = Field(description="Records acknowledged by Kafka.")
    rejected: list[RejectedRecord] = Field(description="Records refused, by index, with the reason.")


class ErrorBody(BaseModel):
    error: str


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


_log = logging.getLogger(__name__)
_RECORDS_SCHEMA = {"type": "array", "items": {"type": "object", "additionalProperties": True}}
_ERRORS = {
    "400": {"description": "The body cannot be used (not JSON/NDJSON, bad gzip or bytes after it, no "
                   "records, an OTLP body: use the OTLP intake), or every record was rejected (then "
                   "`accepted` 0 and `rejected` list them).", "model": ErrorBody},
    "401": {"description": "No bearer token, or an unknown one.", "model": ErrorBody},
    "403": {"description": "A record names a service this token may not write for.", "model": ErrorBody},
    "413": {"description": "Body (after gunzip) or record count over the limit.", "model": ErrorBody},
    "415": {"description": "Content-Type or Content-Encoding not supported.", "model": ErrorBody},
    "503": {"description": "Kafka unavailable or too much in flight; retry after `Retry-After` seconds.",
            "model": ErrorBody},
}


def _openapi_extra(example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _RECORDS_SCHEMA, "example": [example]},
                "application/x-ndjson": {"schema": {"type": "string"},
                                         "example": orjson.dumps(example).decode() + "\n"},
            },
        },
        "parameters": [{"name": "Content-Encoding", "in": "header", "required": False,
                        "schema": {"type": "string", "enum": ["gzip", "identity"]}}],
    }


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    gate = KafkaGate(settings)
    auth = Authenticator(settings)
    shaper = Shaper(Redactor(settings.redact), settings.default_environment, auth.services)
    stats = IngestStats()
    busy = InFlight(settings.max_in_flight_bytes)  # request bytes read, parsed, shaped or produced right now
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-shape")  # CPU-bound: two at a time

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kafka_lifespan(gate)(app):
            try:
                yield
            finally:
                pool.shutdown(wait=False)

    app = FastAPI(
        title="elk-pipeline ingest API",
        version="1",
        description="HTTP intake for services that cannot use the Python logging library. Records are validated "
                    "into the library's ECS shape and written to Kafka (acks=all) before the 202.",
        lifespan=lifespan,
    )
    app.state.gate = gate
    app.state.stats = stats
    app.state.settings = settings

    async def read_body(request: Request, hold: bodies.Hold) -> bytes:
        encoding = request.headers.get("content-encoding", "").strip().lower()
        body, wire = await bodies.read(request.stream(), hold, settings.max_body_bytes,
                                       request.headers.get("content-length"), encoding)
        stats.body_bytes += wire
        return body

    def make_handler(endpoint: str, topic: str, shape: Callable[[Any, str], dict[str, Any]],
                     health: bool) -> Callable[[Request], Any]:
        max_record = settings.max_record_bytes

        def shape_all(body: bytes, ctype: str, service: str) -> tuple[list[tuple[bytes, bytes]], list[dict[str, Any]]]:
            """(Kafka pairs, rejected records by index), in a worker thread; Problem 400/403/413."""
            records, rejected = bodies.parse(body, ctype, settings.max_records)
            failed = {r["index"] for r in rejected}
            out: list[tuple[bytes, bytes]] = []
            others: list[int] = []
            other_names: set[str] = set()
            key_service = service.encode()
            dumps = orjson.dumps
            for index, raw in enumerate(records):
                if index in failed:
                    continue
                try:
                    rec = shape(raw, service)
                    value = dumps(rec)
                except Reject as exc:
                    rejected.append({"index": index, "reason": str(exc)})
                    continue
                except OtherService as exc:
                    others.append(index)
                    other_names.add(exc.name[:100])
                    continue
                except (RecursionError, TypeError, ValueError, orjson.JSONEncodeError):
                    rejected.append({"index": index, "reason": "record could not be shaped (nested too deeply?)"})
                    continue
                except Exception:  # a bug of ours must cost this record, never the request (no 5xx)
                    _log.exception("shaping record %d failed", index)
                    rejected.append({"index": index, "reason": "record could not be shaped"})
                    continue
                if len(value) > max_record:
                    rejected.append({"index": index,
                                     "reason": f"record is {len(value)} bytes, over the limit of {max_record}"})
                    continue
                # keyed by service on every topic: one shipper replica owns all of a service's records
                out.append((key_service, value))
            if others:
                raise Problem(403, f"this token may write records of service {service!r} only; records "
                                   f"{others[:20]} name {sorted(other_names)[:5]}", extra={"indexes": others[:1000]})
            rejected.sort(key=lambda r: r["index"])
            return out, rejected

        async def handler(request: Request) -> Response:
            status = 500
            try:
                response = await _handle(request)
                status = response.status_code
                return response
            except Problem as problem:
                status = problem.status
                return _json(problem.status, {"error": problem.message, **problem.extra}, problem.headers)
            finally:
                stats.requests[(endpoint, status)] += 1

        async def _handle(request: Request) -> Response:
            service = auth.service_for(request.headers.get("authorization"))
            if service is None:
                raise Problem(401, "a valid bearer token is required (Authorization: Bearer <token>)",
                              {"WWW-Authenticate": 'Bearer realm="ingest"'})
            request.state.service = service
            try:
                gate.refuse_if_down()  # before the body is read: retries through an outage cost nothing
            except Unavailable as exc:
                raise Problem(503, exc.reason, {"Retry-After": str(exc.retry_after)}) from None
            hold = busy.hold()  # grows chunk by chunk: concurrent requests see each other's bytes as they arrive
            try:
                body = await read_body(request, hold)
                return await _process(request, body, hold)
            finally:
                hold.release()

        async def _process(request: Request, body: bytes, hold: bodies.Hold) -> Response:
            service = request.state.service
            ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            # parsing and shaping run in `pool`, off the event loop: /health and other clients go on
            out, rejected = await asyncio.get_running_loop().run_in_executor(pool, shape_all, body, ctype, service)
            hold.grow(sum(len(v) for _, v in out))  # the shaped records count in the in-flight bound
            if not out:  # nothing taken: a 2xx would tell the client its records were delivered
                stats.rejected[endpoint] += len(rejected)
                raise Problem(400, f"every record was rejected (first: {rejected[0]['reason']})"[:400],
                              extra={"accepted": 0, "rejected": rejected})
            t0 = time.perf_counter()
            try:
                await gate.produce(topic, out)
            except Unavailable as exc:
                raise Problem(503, exc.reason, {"Retry-After": str(exc.retry_after)}) from None
            stats.produce.observe(time.perf_counter() - t0)
            stats.accepted[endpoint] += len(out)
            if rejected:
                stats.rejected[endpoint] += len(rejected)
            return _json(202, {"accepted": len(out), "rejected": rejected})

        handler.__name__ = f"post_{endpoint.rsplit('/', 1)[-1]}"
        return handler

    examples: dict[str, dict[str, Any]] = {
        "/v1/logs": {"@timestamp": "2026-01-01T12:00:00.000Z", "log.level": "info", "message": "user logged in",
                     "service": {"name": "api-service", "node": {"name": "api-service-1"}},
                     "labels": {"user_id": 42}},
        "/v1/metrics": {"service": {"name": "api-service"},
                        "metric": {"name": "http.server.duration", "type": "histogram", "unit": "ms",
                                   "count": 10, "sum": 123.4, "p95": 30.1}},
        "/v1/health": {"status": "healthy", "service": "api-service-1", "timestamp": "2026-01-01T12:00:00.000Z",
                       "uptime": 12.5},
    }
    routes = (
        ("/v1/logs", settings.topic_logs, shaper.log, False, "Log records (ECS, or pino/winston JSON)."),
        ("/v1/metrics", settings.topic_metrics, shaper.metric, False, "Metric documents (metric.name/type/values)."),
        ("/v1/health", settings.topic_health, shaper.health, True, "Health results (health.status or a /health body)."),
    )
    for path, topic, shape, is_health, summary in routes:
        app.add_api_route(
            path, make_handler(path, topic, shape, is_health), methods=["POST"], status_code=202,
            summary=summary, response_model=IngestResult, responses=_ERRORS,  # type: ignore[arg-type]
            openapi_extra=_openapi_extra(examples[path]),
        )

    add_ops_routes(app, "elk-ingest", gate, stats, busy)
    return app

