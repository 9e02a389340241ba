"""Parallel /health polling; each target has its own timeout so one hang never delays the rest."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from collector.probe.config import ProbeSettings
from collector.schema import DATASET_HEALTH


def service_of(instance: str) -> str:
    """`api-service-1` -> `api-service`; a name without a numeric suffix is its own service."""
    return re.sub(r"-\d+$", "", instance)


async def probe_one(client: httpx.AsyncClient, instance: str, url: str, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    code: int | None = None
    body_status: str | None = None
    error: str | None = None
    try:
        resp = await asyncio.wait_for(client.get(url), timeout_s)
        code = resp.status_code
        try:
            body = resp.json()
            body_status = str(body.get("status")) if isinstance(body, dict) and "status" in body else None
        except ValueError:
            body_status = None
    except TimeoutError:
        error = f"timeout after {timeout_s}s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    healthy = code is not None and 200 <= code < 300 and body_status not in ("unhealthy", "down", "fail", "error")
    return result_doc(instance, url, healthy, code, body_status, error, time.perf_counter() - started)


def result_doc(
    instance: str, url: str, healthy: bool, code: int | None, body_status: str | None, error: str | None, took_s: float
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": datetime.now(UTC).isoformat(),
        "event": {"kind": "state", "dataset": DATASET_HEALTH, "action": "health-check",
                  "outcome": "success" if healthy else "failure", "duration": int(took_s * 1e9)},
        "service": {"name": service_of(instance), "node": {"name": instance}},
        "url": {"full": url},
        "health": {"status": "healthy" if healthy else "unhealthy"},
        "message": f"{instance} {'healthy' if healthy else 'unhealthy'}",
    }
    if code is not None:
        doc["http"] = {"response": {"status_code": code}}
    if body_status is not None:
        doc["health"]["body_status"] = body_status
    if error:
        doc["error"] = {"message": error}
    return doc


async def run(settings: ProbeSettings, stop: asyncio.Event | None = None) -> None:
    from aiokafka import AIOKafkaProducer

    targets = settings.target_map()
    stop = stop or asyncio.Event()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=settings.timeout_s) as client:
            while not stop.is_set():
                round_start = time.monotonic()
                docs = await asyncio.gather(
                    *(probe_one(client, name, url, settings.timeout_s) for name, url in targets.items())
                )
                for doc in docs:
                    key = doc["service"]["node"]["name"].encode()
                    await producer.send(settings.topic, orjson.dumps(doc), key=key)
                await producer.flush()
                wait = max(settings.interval_s - (time.monotonic() - round_start), 0.0)
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                except TimeoutError:
                    pass
    finally:
        await producer.stop()
