"""One simulated service of the seed stack (api-service-N, auth-service, or the nginx front).

The API and auth services are small FastAPI apps that log through the collector library to
Kafka, like a real Python service would. The nginx front proxies to the API services and, as
nginx with a JSON access log and a forwarder would, posts its access log to the ingest API.

    python -m demo.service --instance api-service-1 --port 3001
    python -m demo.service --instance nginx --port 8080 --upstream http://127.0.0.1:3001 ...
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import time
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

import collector
from collector.contract.timefmt import now_iso

STARTED = time.monotonic()


class Switch:
    healthy = True
    error_rate = 0.02


def service_name(instance: str) -> str:
    head, _, tail = instance.rpartition("-")
    return head if tail.isdigit() else instance


def app_service(instance: str) -> FastAPI:
    service = service_name(instance)
    collector.configure(service=service, environment="demo", node_name=instance)
    log = collector.get_logger(f"{service}.http")
    app = FastAPI(title=instance)
    app.add_middleware(collector.LoggingMiddleware)

    collector.add_health(app, checks={"database": lambda: Switch.healthy, "redis": lambda: True})

    @app.get("/api/users/{user_id}")
    async def user(user_id: int) -> dict[str, Any]:
        await asyncio.sleep(random.uniform(0.002, 0.03))
        if not Switch.healthy or random.random() < Switch.error_rate:
            try:
                raise ConnectionError("could not connect to postgresql://user:pass@db:5432/mydb")
            except ConnectionError:
                log.exception("query failed", user_id=user_id, query="SELECT * FROM users WHERE id = $1")
            return Response(status_code=503, content=b'{"error":"database unavailable"}')  # type: ignore[return-value]
        log.info("user loaded", user_id=user_id, cache="hit" if user_id % 3 else "miss")
        return {"id": user_id, "name": f"user-{user_id}"}

    @app.post("/auth/login")
    async def login(request: Request) -> dict[str, Any]:
        body = await request.json()
        await asyncio.sleep(random.uniform(0.005, 0.02))
        if not Switch.healthy:
            log.error("login failed: session store unavailable", user=body.get("user"),
                      dependency="redis://:s3cret@redis:6379/0")
            return Response(status_code=503, content=b'{"error":"service unavailable"}')  # type: ignore[return-value]
        if body.get("password") == "wrong":
            log.warning("login failed", user=body.get("user"), password=body.get("password"))
            return Response(status_code=401, content=b'{"error":"invalid credentials"}')  # type: ignore[return-value]
        log.info("user logged in", user=body.get("user"), password=body.get("password"),
                 token="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl")
        return {"token": "issued"}

    @app.post("/admin/health")
    async def flip(ok: bool) -> dict[str, Any]:
        Switch.healthy = ok
        log.warning("health switched", healthy=ok)
        return {"healthy": ok}

    @app.post("/admin/mark")
    async def mark(marker: str) -> dict[str, Any]:
        log.info("latency marker", marker=marker)
        return {"marker": marker}

    @app.get("/admin/stats")
    async def stats() -> dict[str, Any]:
        return collector.stats()

    @app.post("/admin/flush")
    async def flush() -> dict[str, Any]:
        collector.flush(timeout=10)
        return collector.stats()

    return app


def app_nginx(upstreams: list[str], ingest_url: str, token: str) -> FastAPI:
    """nginx: round-robin proxy, JSON access log shipped to the ingest API once a second."""
    app = FastAPI(title="nginx")
    targets = itertools.cycle(upstreams)
    pending: list[dict[str, Any]] = []
    counts = {"accepted": 0, "rejected": 0, "failed_posts": 0}
    client = httpx.AsyncClient(timeout=5)

    async def forward_logs() -> None:
        while True:
            await asyncio.sleep(1)
            if not pending:
                continue
            batch = pending[:]
            del pending[: len(batch)]
            body = b"".join(orjson.dumps(r) + b"\n" for r in batch)
            for attempt in range(5):
                try:
                    response = await client.post(f"{ingest_url}/v1/logs", content=body, headers={
                        "Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
                    if response.status_code == 202:
                        result = response.json()
                        counts["accepted"] += int(result.get("accepted", 0))
                        counts["rejected"] += len(result.get("rejected", []))
                        break
                except httpx.HTTPError:
                    pass
                counts["failed_posts"] += 1
                await asyncio.sleep(0.5 * (attempt + 1))

    @app.on_event("startup")
    async def start() -> None:
        app.state.forwarder = asyncio.create_task(forward_logs())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "healthy", "service": "nginx", "timestamp": now_iso(),
                "uptime": round(time.monotonic() - STARTED, 1)}

    @app.get("/admin/stats")
    async def stats() -> dict[str, Any]:
        return {**counts, "pending": len(pending)}

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def proxy(path: str, request: Request) -> Response:
        started = time.perf_counter()
        upstream = next(targets)
        try:
            answer = await client.request(request.method, f"{upstream}/{path}", content=await request.body(),
                                          headers={"content-type": request.headers.get("content-type", "")})
            status, content = answer.status_code, answer.content
        except httpx.HTTPError:
            status, content = 502, b'{"error":"bad gateway"}'
        elapsed = time.perf_counter() - started
        pending.append({
            "@timestamp": now_iso(),
            "message": f'{request.method} /{path} {status}',
            "log": {"level": "error" if status >= 500 else "info", "logger": "nginx.access"},
            "service": {"name": "nginx", "node": {"name": "nginx"}},
            "http": {"request": {"method": request.method}, "response": {"status_code": status}},
            "url": {"path": f"/{path}"},
            "event": {"duration": int(elapsed * 1e9)},
            "client": {"ip": request.client.host if request.client else "127.0.0.1"},
            "user_agent": {"original": request.headers.get("user-agent", "")},
        })
        return Response(status_code=status, content=content, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instance", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="append", default=[])
    args = parser.parse_args()
    if args.instance == "nginx":
        app = app_nginx(args.upstream, os.environ["DEMO_INGEST_URL"], os.environ["DEMO_INGEST_TOKEN"])
    else:
        app = app_service(args.instance)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
