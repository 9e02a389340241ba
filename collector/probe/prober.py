"""Parallel /health polling; each target has its own schedule and timeout, so one hang never
delays the rest.

A target that fails, or whose probe is still out after the short confirmation interval (a hang), is
re-probed at that interval, without waiting for the probes still out, until it answers again or has
failed `confirm_failures` times in a row; then it returns to the normal interval. A real outage is
confirmed within about a second of the first failing probe (a hang: one timeout plus two
confirmation intervals) instead of two more probe intervals, and a single blip is answered by the
next confirmation probe and raises nothing.

Every result is keyed by its service (collector.contract.names), so all of a service's results
land in one partition and one shipper replica owns the service's health. A target removed from the
targets file, or a container removed, is announced (`health-removed`) so it leaves its service's
state at once instead of expiring.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

import collector
from collector.contract.health import HEALTHY, outcome, probe_status
from collector.contract.names import split_instance
from collector.contract.streams import DATASET_HEALTH
from collector.contract.timefmt import now_iso
from collector.probe.config import ProbeSettings
from collector.probe.docker import Container, DockerHealth

log = collector.get_logger("collector.probe")

REMOVED = "health-removed"
Publish = Callable[[dict[str, Any]], Awaitable[None]]


def strip_userinfo(url: str) -> str:
    """The URL without `user:password@` (a probe target may carry credentials; documents never do)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


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
            body_status = str(body.get("status"))[:64] if isinstance(body, dict) and "status" in body else None
        except ValueError:
            body_status = None
    except TimeoutError:
        error = f"timeout after {timeout_s}s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}".replace(url, strip_userinfo(url))
    status = probe_status(code is not None and 200 <= code < 300, body_status)
    return result_doc(instance, url, status, code, body_status, error, time.perf_counter() - started)


def _identity(instance: str) -> dict[str, Any]:
    service, node = split_instance(instance)
    return {"name": service, "node": {"name": node}}


def result_doc(
    instance: str, url: str, status: str, code: int | None, body_status: str | None, error: str | None, took_s: float
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": now_iso(),
        "event": {"kind": "state", "dataset": DATASET_HEALTH, "action": "health-check", "module": "http",
                  "outcome": outcome(status), "duration": int(took_s * 1e9)},
        "service": _identity(instance),
        "url": {"full": strip_userinfo(url)},
        "health": {"status": status},
        "message": f"{instance} {status}",
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
    status = HEALTHY if container.status == "healthy" else "unhealthy"
    doc: dict[str, Any] = {
        "@timestamp": now_iso(),
        "event": {"kind": "state", "dataset": DATASET_HEALTH, "action": "health-check", "module": "docker",
                  "outcome": outcome(status)},
        "service": {"name": container.service, "node": {"name": container.name}},
        "container": {"name": container.name},
        "health": {"status": status},
        "message": f"{container.name} {status} (docker)",
    }
    if container.reason:
        doc["error"] = {"message": container.reason}
    return doc


def removed_doc(service: dict[str, Any], why: str, module: str) -> dict[str, Any]:
    """The announcement that an instance is gone for good (its state leaves at once)."""
    return {
        "@timestamp": now_iso(),
        "event": {"kind": "state", "dataset": DATASET_HEALTH, "action": REMOVED, "module": module},
        "service": service,
        "message": f"{service['node']['name']} removed: {why}",
    }


async def _probe_and_publish(client: httpx.AsyncClient, instance: str, url: str, timeout_s: float,
                             publish: Publish) -> str:
    doc = await probe_one(client, instance, url, timeout_s)
    await publish(doc)
    return str(doc["health"]["status"])


async def watch_target(client: httpx.AsyncClient, instance: str, url: str, settings: ProbeSettings,
                       publish: Publish) -> None:
    """Probes one target until cancelled: the normal interval, or the confirmation interval while
    a failure is not yet confirmed.

    A target is suspect when its last answer failed, or when a probe newer than the last answer has
    been out for a confirmation interval (it may be hanging). While suspect, a confirmation probe
    starts every confirm_interval_s without waiting for the ones still out, as long as the failures
    so far plus the probes out stay under confirm_failures: a hang is confirmed in one timeout plus
    two confirmation intervals, like a 503 in two, and no target ever has more than confirm_failures
    probes out."""
    ci, limit = settings.confirm_interval_s, settings.confirm_failures
    fails = 0  # failed answers in a row, in the order they came
    out: dict[asyncio.Task[str], float] = {}  # probes out -> when each started
    answered = -math.inf  # start of the newest probe that answered: older probes out are superseded
    last_start, next_normal = -math.inf, time.monotonic()
    try:
        while True:
            now = time.monotonic()
            hanging = [s for s in out.values() if s > answered]
            suspect = ci > 0 and fails < limit and (fails > 0 or any(now - s >= ci for s in hanging))
            if suspect:
                can_start = fails + len(out) < limit
                wake = last_start + ci if can_start else math.inf
            else:
                can_start = not out
                wake = next_normal if can_start else math.inf
                if ci > 0 and fails < limit and hanging:  # when the oldest probe out turns suspect
                    wake = min(wake, min(hanging) + ci)
            if can_start and now >= wake:
                out[asyncio.create_task(_probe_and_publish(client, instance, url, settings.timeout_s, publish))] = now
                last_start = now
                if not suspect:  # on the normal grid, unless a long outage left it behind
                    next_normal += settings.interval_s
                    if next_normal <= now:
                        next_normal = now + settings.interval_s
                continue
            timeout = None if wake == math.inf else max(wake - now, 0.0)
            if not out:
                await asyncio.sleep(timeout or 0.0)
                continue
            done, _ = await asyncio.wait(out, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=out.__getitem__):
                started = out.pop(task)
                fails = 0 if task.result() != "unhealthy" else fails + 1
                answered = max(answered, started)
    finally:
        for task in out:
            task.cancel()
        await asyncio.gather(*out, return_exceptions=True)


class Publisher:
    """Sends one result at a time, keyed by service; the broker being away loses results (stale by the
    next probe anyway) and is logged once per outage, never ends the prober."""

    def __init__(self, producer: Any, topic: str, bound_s: float) -> None:
        self.producer, self.topic, self.bound_s = producer, topic, bound_s
        self.ok = True

    async def __call__(self, doc: dict[str, Any]) -> None:
        from aiokafka.errors import KafkaError

        try:
            sent = await self.producer.send(self.topic, orjson.dumps(doc), key=doc["service"]["name"].encode())
            await asyncio.wait_for(sent, self.bound_s)
            if not self.ok:
                log.info("kafka reachable again; probe results are delivered")
            self.ok = True
        except (KafkaError, TimeoutError) as exc:
            if self.ok:
                log.error("probe results not delivered: kafka unavailable", error=type(exc).__name__)
            self.ok = False


async def run(settings: ProbeSettings, stop: asyncio.Event | None = None) -> None:
    """Probe until `stop`."""
    stop = stop or asyncio.Event()
    docker = DockerHealth(settings.docker_socket, settings.timeout_s) if settings.docker_socket else None
    follower = asyncio.create_task(docker.run()) if docker else None
    producer = await _connect(settings, stop)
    watchers: dict[tuple[str, str], asyncio.Task[None]] = {}
    try:
        if producer is None:
            return
        publish = Publisher(producer, settings.topic, max(settings.interval_s * 3, 5.0))
        # no pool limit of its own: probes out are bounded per target (confirm_failures), and a pool
        # shared by all targets would let a few hanging ones hold up the rest
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=settings.timeout_s, limits=limits) as client:
            containers: dict[str, dict[str, Any]] = {}
            while not stop.is_set():
                round_start = time.monotonic()
                targets = _targets(settings, {name: url for name, url in watchers})
                for name, url in targets.items():
                    if (name, url) not in watchers:
                        watchers[(name, url)] = asyncio.create_task(watch_target(client, name, url, settings, publish))
                for (name, url), task in list(watchers.items()):
                    if targets.get(name) != url:
                        task.cancel()
                        del watchers[(name, url)]
                        if name not in targets:
                            await publish(removed_doc(_identity(name), "no longer a probe target", "http"))
                if docker is not None:
                    current = docker.results()
                    for c in current:
                        await publish(docker_doc(c))
                    seen = {c.name: {"name": c.service, "node": {"name": c.name}} for c in docker.known.values()}
                    if docker.connected:  # a lost socket forgets everything: that is not a removal
                        for name in set(containers) - set(seen):
                            await publish(removed_doc(containers[name], "container removed", "docker"))
                        containers = seen
                wait = max(settings.interval_s - (time.monotonic() - round_start), 0.0)
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                except TimeoutError:
                    pass
    finally:
        for task in watchers.values():
            task.cancel()
        await asyncio.gather(*watchers.values(), return_exceptions=True)
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        if producer is not None:
            await producer.stop()


def _targets(settings: ProbeSettings, current: dict[str, str]) -> dict[str, str]:
    """The targets now: a targets file is read again every round (removing a line removes the
    target); a file that became unreadable keeps the targets as they were."""
    try:
        return settings.target_map()
    except ValueError as exc:
        log.error("targets file unreadable; keeping the current targets", error=str(exc)[:200])
        return current


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
                pass
            pause = min(pause * 2, 10.0)
    return None
