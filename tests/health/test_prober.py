"""Prober against real loopback HTTP services and the real broker: parallel, timeouts, shape."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from collector.probe.config import ProbeSettings, parse_targets
from collector.probe.prober import run, service_of


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def service() -> Iterator[tuple[int, dict[str, bool]]]:
    flags = {"healthy": True}
    app = FastAPI()

    @app.get("/health")
    async def health() -> JSONResponse:
        ok = flags["healthy"]
        return JSONResponse({"status": "ok" if ok else "unhealthy"}, status_code=200 if ok else 503)

    @app.get("/hang")
    async def hang() -> dict[str, str]:
        await asyncio.sleep(30)
        return {"status": "ok"}

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield port, flags
    server.should_exit = True
    thread.join(5)


def test_names() -> None:
    assert service_of("api-service-1") == "api-service"
    assert service_of("auth-service") == "auth-service"
    assert parse_targets("a-1=http://x/health, b=http://y") == [("a-1", "http://x/health"), ("b", "http://y")]


async def test_probe_publishes_results_and_a_hang_never_delays_others(
    service: tuple[int, dict[str, bool]], kafka_bootstrap: str, topic: str
) -> None:
    port, flags = service
    flags["healthy"] = False
    dead = _free_port()
    settings = ProbeSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic=topic, interval_s=5.0, timeout_s=1.0,
        targets=f"api-service-1=http://127.0.0.1:{port}/health,api-service-2=http://127.0.0.1:{port}/hang,"
        f"nginx=http://127.0.0.1:{dead}/health",
    )
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(run(settings, stop))
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: dict[str, dict] = {}
    try:
        while len(got) < 3 and time.monotonic() - started < 20:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    assert m.key is not None
                    got.setdefault(m.key.decode(), orjson.loads(m.value))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        await task
        await consumer.stop()
    assert set(got) == {"api-service-1", "api-service-2", "nginx"}
    assert elapsed < 5.0  # one round: 1 s timeout for the hang, not 30 s
    bad = got["api-service-1"]
    assert bad["health"] == {"status": "unhealthy", "body_status": "unhealthy"}
    assert bad["http"]["response"]["status_code"] == 503
    assert bad["service"] == {"name": "api-service", "node": {"name": "api-service-1"}}
    assert bad["event"]["action"] == "health-check" and bad["event"]["outcome"] == "failure"
    assert "timeout" in got["api-service-2"]["error"]["message"]
    assert got["nginx"]["service"]["name"] == "nginx" and "error" in got["nginx"]


async def test_prober_without_a_broker_waits_and_stops_cleanly() -> None:
    settings = ProbeSettings(kafka_bootstrap_servers=f"127.0.0.1:{_free_port()}", interval_s=0.5,
                             targets="api-service-1=http://127.0.0.1:9/health")
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    await asyncio.sleep(3)
    assert not task.done(), "the prober must keep trying, not die, while Kafka is away"
    stop.set()
    await asyncio.wait_for(task, 10)

