"""The `/health` helper and the request-logging middleware on a FastAPI app."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

import collector
from collector.health import add_health
from collector.middleware import LoggingMiddleware
from tests.collector.conftest import assert_ecs

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _app(redis_ok: bool) -> FastAPI:
    app = FastAPI()
    app.add_middleware(LoggingMiddleware)

    async def database() -> bool:
        await asyncio.sleep(0)
        return True

    def redis() -> bool:
        if not redis_ok:
            raise ConnectionError("connect ECONNREFUSED cache:6379")
        return True

    async def slow() -> None:
        await asyncio.sleep(5)

    add_health(app, {"database": database, "redis": redis} if redis_ok else
               {"database": database, "redis": redis, "slow": slow}, timeout=0.2)

    @app.get("/users/{uid}")
    async def user(uid: int) -> dict:
        collector.get_logger("api").info("loading user", uid=uid)
        return {"id": uid}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("kaputt")

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://test")


def _recs(logger: str) -> list[dict]:
    recs = [assert_ecs(line) for line in collector.outputs()["memory"].records]
    return [r for r in recs if r["log"]["logger"] == logger]


async def test_health_healthy_and_unhealthy(memlog):
    async with _client(_app(True)) as client:
        resp = await client.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "healthy" and body["service"] == "api-service"
    assert body["timestamp"].endswith("Z") and body["uptime"] >= 0
    assert {n: c["status"] for n, c in body["checks"].items()} == {"database": "healthy", "redis": "healthy"}
    async with _client(_app(False)) as client:
        resp = await client.get("/health")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unhealthy"
    redis = body["checks"]["redis"]
    assert redis == {"status": "unhealthy", "error": "ConnectionError: connect ECONNREFUSED cache:6379",
                     "duration_ms": redis["duration_ms"]}
    assert body["checks"]["slow"]["error"] == "timed out after 0.2s"
    assert body["checks"]["database"]["status"] == "healthy"


async def test_middleware_logs_requests_with_ids_and_latency(memlog):
    async with _client(_app(True)) as client:
        resp = await client.get("/users/7?x=1", headers={"X-Request-ID": "req-1", "traceparent": TP,
                                                         "User-Agent": "pytest"})
        generated = await client.get("/users/8")
        failed = await client.get("/boom")
    assert resp.headers["x-request-id"] == "req-1"
    echoed = collector.parse_traceparent(resp.headers["traceparent"])
    assert echoed is not None and echoed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert generated.headers["x-request-id"] and failed.status_code == 500

    inner = _recs("api")[0]
    access = _recs("collector.http")
    assert len(access) == 3
    first = access[0]
    assert first["message"] == "GET /users/7 200"
    assert first["http"]["request"] == {"id": "req-1", "method": "GET"}
    assert first["http"]["response"] == {"status_code": 200}
    assert first["url"] == {"path": "/users/7", "query": "x=1"}
    assert first["user_agent"] == {"original": "pytest"}
    assert isinstance(first["event"]["duration"], int) and first["event"]["duration"] > 0
    assert first["event"]["outcome"] == "success"
    for rec in (inner, first):
        assert rec["trace"]["id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert rec["transaction"]["id"] == echoed.parent_id
    assert inner["http"]["request"]["id"] == "req-1"
    assert access[1]["http"]["request"]["id"] == generated.headers["x-request-id"]
    boom = access[2]
    assert boom["log.level"] == "error" and boom["http"]["response"]["status_code"] == 500
    assert boom["error"]["type"] == "RuntimeError" and boom["error"]["message"] == "kaputt"

    collector.emit_metrics()
    hist = [assert_ecs(r) for r in collector.outputs()["memory"].records if b"http.server.duration" in r]
    routes = {(h["labels"]["route"], h["labels"]["status_code"]): h["metric"] for h in hist}
    assert routes[("/users/{uid}", 200)]["count"] == 2
    assert routes[("/boom", 500)]["count"] == 1
    assert routes[("/users/{uid}", 200)]["unit"] == "ms"
