"""The FastAPI app: POST /v1/logs, /v1/metrics, /v1/health; GET /health, /metrics; docs at /docs.

Per request: token -> service (401), body within limits (413), gunzip, JSON array or NDJSON by
Content-Type (400/415), each record shaped (rejected ones listed by index with a reason; a
record of another service makes the request 403), then the accepted records are produced and
the answer, 202 {"accepted": n, "rejected": [{"index", "reason"}]}, is sent only once Kafka
acknowledged them all (503 + Retry-After otherwise).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from collector.contract.health import HEALTHY, UNHEALTHY, UNKNOWN
from collector.contract.timefmt import now_iso
from collector.ingest.auth import Authenticator
from collector.ingest.config import IngestSettings
from collector.ingest.metrics import IngestStats
from collector.ingest.producer import KafkaGate, Unavailable
from collector.ingest.validate import OtherService, Reject, Shaper
from collector.redact import Redactor

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
    "application/jsonlines", "text/plain",
})


class RejectedRecord(BaseModel):
    index: int = Field(description="0-based position of the record (array element, or non-empty NDJSON line).")
    reason: str


class IngestResult(BaseModel):
    accepted: int = Field(description="Records acknowledged by Kafka.")
    rejected: list[RejectedRecord] = Field(description="Records refused, by index, with the reason.")


class ErrorBody(BaseModel):
    error: str


class Problem(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.extra = extra


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


_RECORDS_SCHEMA = {"type": "array", "items": {"type": "object", "additionalProperties": True}}
_ERRORS = {
    "400": {"description": "The body cannot be used (not JSON/NDJSON, bad gzip, no records).", "model": ErrorBody},
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
    shaper = Shaper(Redactor(settings.redact), settings.default_environment)
    stats = IngestStats()
    busy = [0]  # request body bytes being parsed, shaped or produced right now (bounded memory)
    started = time.monotonic()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gate.start()
        try:
            yield
        finally:
            await gate.stop()

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

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise Problem(413, f"body of {length} bytes is over the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
        stats.body_bytes += size
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            body = _gunzip(body, limit)
        elif encoding not in ("", "identity"):
            raise Problem(415, f"Content-Encoding {encoding[:40]!r} is not supported (use gzip or none)")
        return body

    def parse(request: Request, body: bytes) -> tuple[list[Any], list[dict[str, Any]]]:
        """(records, rejected): records[i] is a parsed value or None when rejected[...] names i."""
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not ctype:
            ctype = "application/json" if body.lstrip()[:1] == b"[" else "application/x-ndjson"
        rejected: list[dict[str, Any]] = []
        if ctype in JSON_TYPES or ctype.endswith("+json"):
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise Problem(400, f"body is not valid JSON: {exc}") from None
            if type(doc) is dict:
                records: list[Any] = [doc]
            elif type(doc) is list:
                records = doc
            else:
                raise Problem(400, "a JSON array of record objects (or one object) is expected")
        elif ctype in NDJSON_TYPES:
            records = []
            loads = orjson.loads
            for line in body.split(b"\n"):
                if not line.strip():
                    continue
                try:
                    records.append(loads(line))
                except orjson.JSONDecodeError as exc:
                    rejected.append({"index": len(records), "reason": f"invalid JSON: {exc}"[:300]})
                    records.append(None)
            if records and len(rejected) == len(records):
                raise Problem(400, f"no line of the NDJSON body is valid JSON (first: {rejected[0]['reason']})")
        else:
            raise Problem(415, f"Content-Type {ctype[:60]!r} is not supported: use application/json "
                               "(an array of records) or application/x-ndjson (one record per line)")
        if not records:
            raise Problem(400, "the body holds no records")
        if len(records) > settings.max_records:
            raise Problem(413, f"{len(records)} records are over the limit of {settings.max_records} per request")
        return records, rejected

    def make_handler(endpoint: str, topic: str, shape: Callable[[Any, str], dict[str, Any]],
                     health: bool) -> Callable[[Request], Any]:
        max_record = settings.max_record_bytes

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
            declared = request.headers.get("content-length", "")
            held = min(int(declared), settings.max_body_bytes) if declared.isdigit() else 0
            if busy[0] > 0 and busy[0] + held > settings.max_in_flight_bytes:
                raise Problem(503, "too many bytes in process; retry later", {"Retry-After": "1"})
            busy[0] += held  # reserved before reading, so concurrent requests see each other
            try:
                body = await read_body(request)
                busy[0] += len(body) - held
                held = len(body)
                return await _process(request, body)
            finally:
                busy[0] -= held

        async def _process(request: Request, body: bytes) -> Response:
            service = request.state.service
            records, rejected = parse(request, body)
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
                if len(value) > max_record:
                    rejected.append({"index": index,
                                     "reason": f"record is {len(value)} bytes, over the limit of {max_record}"})
                    continue
                # keyed by service on every topic: one shipper replica owns all of a service's records
                out.append((key_service, value))
            if others:
                raise Problem(403, f"this token may write records of service {service!r} only; records "
                                   f"{others[:20]} name {sorted(other_names)[:5]}", indexes=others[:1000])
            rejected.sort(key=lambda r: r["index"])
            if out:
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

    @app.get("/health", summary="Liveness and Kafka state (503 while Kafka is known to be unavailable).")
    async def health() -> Response:
        await gate.check()
        down = gate.state == "down"
        body = {
            "status": UNHEALTHY if down else HEALTHY,
            "service": "elk-ingest",
            "timestamp": now_iso(),
            "uptime": round(time.monotonic() - started, 3),
            "checks": {"kafka": {"status": {"up": HEALTHY, "down": UNHEALTHY}.get(gate.state, UNKNOWN),
                                 **({"error": gate.last_error} if down else {})}},
            "in_flight_bytes": gate.in_flight_bytes,
        }
        return _json(503 if down else 200, body)

    @app.get("/metrics", summary="Prometheus text metrics.")
    async def metrics() -> Response:
        text = stats.prometheus(gate.state == "up", gate.in_flight_bytes, gate.in_flight_records, gate.failures,
                                busy[0])
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise Problem(400, "body is not valid gzip") from None
    if len(out) > limit:
        raise Problem(413, f"body is over the limit of {limit} bytes once decompressed")
    if not inflater.eof:
        raise Problem(400, "gzip body is truncated")
    return out
