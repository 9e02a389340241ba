"""Parallel /health polling; each target has its own timeout so one hang never delays the rest."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

import collector
from collector.contract.streams import DATASET_HEALTH
from collector.probe.config import ProbeSettings
from collector.probe.docker import Container, DockerHealth
from collector.probe.names import service_of

log = collector.get_logger("collector.probe")


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
        "event": {"kind": "state", "dataset": DATASET_HEALTH, "action": "health-check", "module": "http",
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


def docker_doc(container: Container) -> dict[str, Any]:
    """A Docker HEALTHCHECK result in the shape of an HTTP probe result."""
    healthy = container.status == "healthy"
    doc: dict[str, Any] = {
        "@timestamp": datetime.now(UTC).isoformat(),
        "event": {"kind": "state", "dataset": DATASET_HEALTH, "action": "health-check", "module": "docker",
                  "outcome": "success" if healthy else "failure"},
        "service": {"name": container.service, "node": {"name": container.name}},
        "container": {"name": container.name},
        "health": {"status": "healthy" if healthy else "unhealthy"},
        "message": f"{container.name} {'healthy' if healthy else 'unhealthy'} (docker)",
    }
    if container.reason:
        doc["error"] = {"message": container.reason}
    return doc


async def run(settings: ProbeSettings, stop: asyncio.Event | None = None) -> None:
    """Probe rounds until `stop`. The broker being away loses that round's results (they are
    stale by the next one) and is logged; it never ends the prober."""
    from aiokafka.errors import KafkaError

    targets = settings.target_map()
    stop = stop or asyncio.Event()
    docker = DockerHealth(settings.docker_socket, settings.timeout_s) if settings.docker_socket else None
    follower = asyncio.create_task(docker.run()) if docker else None
    producer = await _connect(settings, stop)
    kafka_ok = True
    try:
        async with httpx.AsyncClient(timeout=settings.timeout_s) as client:
            while producer is not None and not stop.is_set():
                round_start = time.monotonic()
                docs = list(await asyncio.gather(
                    *(probe_one(client, name, url, settings.timeout_s) for name, url in targets.items())
                ))
                if docker is not None:
                    docs += [docker_doc(c) for c in docker.results()]
                try:
                    for doc in docs:
                        key = doc["service"]["node"]["name"].encode()
                        await producer.send(settings.topic, orjson.dumps(doc), key=key)
                    await asyncio.wait_for(producer.flush(), max(settings.interval_s * 3, 5.0))
                    if not kafka_ok:
                        log.info("kafka reachable again; probe results are delivered")
                    kafka_ok = True
                except (KafkaError, TimeoutError) as exc:
                    if kafka_ok:
                        log.error("probe results not delivered: kafka unavailable", error=type(exc).__name__)
                    kafka_ok = False
                wait = max(settings.interval_s - (time.monotonic() - round_start), 0.0)
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                except TimeoutError:
                    pass
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        if producer is not None:
            await producer.stop()


async def _connect(settings: ProbeSettings, stop: asyncio.Event) -> Any:
    """A started producer, retrying until the broker answers (a prober may start before Kafka);
    None if stopped first."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    pause = 1.0
    while not stop.is_set():
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                    request_timeout_ms=max(int(settings.interval_s * 3000), 5000))
        try:
            await producer.start()
            return producer
        except KafkaError as exc:
            await producer.stop()
            log.warning("kafka unavailable; retrying", error=type(exc).__name__, retry_in_s=pause)
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pause = min(pause * 2, 10.0)
    return None
