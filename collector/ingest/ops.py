"""What every intake process serves besides its records (the ingest API, the OTLP intake): the
Kafka producer's lifespan, `GET /health` (503 while Kafka is known to be down) and `GET /metrics`."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import orjson
from fastapi import FastAPI
from fastapi.responses import Response

from collector.contract.health import HEALTHY, UNHEALTHY, UNKNOWN
from collector.contract.timefmt import now_iso
from collector.ingest.body import InFlight
from collector.ingest.metrics import IngestStats
from collector.ingest.producer import KafkaGate

SWITCH_INTERVAL_S = 0.001


def kafka_lifespan(gate: KafkaGate) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Connect at start (the app still starts, answering 503, when Kafka is not there); flush at stop."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # parsing runs in worker threads; the event loop waits for the GIL at every turn, up to the
        # switch interval each time (5 ms by default): 1 ms keeps /health answered within a second
        # while workers parse
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        await gate.start()
        try:
            yield
        finally:
            await gate.stop()

    return lifespan


def add_ops_routes(app: FastAPI, name: str, gate: KafkaGate, stats: IngestStats, busy: InFlight) -> None:
    """`/health` (seed-style body, `service` = `name`) and `/metrics` (Prometheus text)."""
    started = time.monotonic()

    @app.get("/health", summary="Liveness and Kafka state (503 while Kafka is known to be unavailable).")
    async def health() -> Response:
        await gate.check()
        down = gate.state == "down"
        body = {
            "status": UNHEALTHY if down else HEALTHY,
            "service": name,
            "timestamp": now_iso(),
            "uptime": round(time.monotonic() - started, 3),
            "checks": {"kafka": {"status": {"up": HEALTHY, "down": UNHEALTHY}.get(gate.state, UNKNOWN),
                                 **({"error": gate.last_error} if down else {})}},
            "in_flight_bytes": gate.in_flight_bytes,
        }
        return Response(orjson.dumps(body), status_code=503 if down else 200, media_type="application/json")

    @app.get("/metrics", summary="Prometheus text metrics.")
    async def metrics() -> Response:
        text = stats.prometheus(gate.state == "up", gate.in_flight_bytes, gate.in_flight_records, gate.failures,
                                busy.bytes)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
