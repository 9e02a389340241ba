"""The prober's Docker source: pure units over the Engine API shapes, then the prober following a
stand-in Docker socket (tests/health/fake_docker.py) and publishing to the real broker."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from collector.probe.config import ProbeSettings
from collector.probe.docker import Container, apply_event, from_listing
from collector.probe.prober import run
from tests.health.fake_docker import FakeDocker


def event(cid: str, action: str, name: str = "proj-api-service-1", **attributes: Any) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": {"name": name, **attributes}}}


def test_listing_reads_health_from_the_field_or_the_status_text() -> None:
    new = from_listing({"Names": ["/proj-api-service-1"], "Labels": {"com.docker.compose.service": "api-service"},
                        "Health": {"Status": "unhealthy", "FailingStreak": 3}})
    assert new == Container("proj-api-service-1", "api-service", "unhealthy", "docker health check")
    old = from_listing({"Names": ["/auth-service-2"], "Labels": None, "Status": "Up 2 minutes (healthy)"})
    assert old == Container("auth-service-2", "auth-service", "healthy")
    starting = from_listing({"Names": ["/db"], "Status": "Up 1 second (health: starting)"})
    assert starting is not None and starting.status == "starting"
    assert from_listing({"Names": ["/redis"], "Status": "Up 3 minutes"}) is None  # no health check
    assert from_listing({"Names": ["/bad name; rm -rf"], "Status": "Up (healthy)"}) is None
    assert from_listing({"Names": "not-a-list", "Status": "Up (healthy)"}) is None


def test_events_update_what_is_known() -> None:
    known: dict[str, Container] = {}
    apply_event(known, event("c1", "health_status: healthy", **{"com.docker.compose.service": "api-service"}))
    assert known["c1"] == Container("proj-api-service-1", "api-service", "healthy")
    apply_event(known, event("c1", "health_status: unhealthy"))
    assert known["c1"].status == "unhealthy" and known["c1"].service == "proj-api-service"  # no label: from the name
    apply_event(known, event("c1", "die", exitCode="137"))
    assert known["c1"].status == "unhealthy" and known["c1"].reason == "container exited (code 137)"
    apply_event(known, event("c1", "start"))
    assert known["c1"].status == "starting"
    apply_event(known, event("c2", "die"))  # no health check known: not reported
    assert "c2" not in known
    for junk in ({"Type": "network", "Action": "connect"}, {"Type": "container"}, {"Type": "container",
                 "Action": "health_status: healthy", "Actor": {"ID": 5, "Attributes": {}}},
                 event("c3", "health_status: bogus"), event("c4", "health_status: healthy", name="../../etc")):
        apply_event(known, junk)
    assert set(known) == {"c1"}
    apply_event(known, event("c1", "destroy"))
    assert known == {}


def test_settings_name_the_problem() -> None:
    with pytest.raises(ValidationError, match="nothing to probe"):
        ProbeSettings(targets="")
    with pytest.raises(ValidationError, match="not instance=url"):
        ProbeSettings(targets="api-service-1 http://x/health")
    with pytest.raises(ValidationError, match="not an http"):
        ProbeSettings(targets="api=ftp://x/health")
    assert ProbeSettings(targets="", docker_socket=Path("/var/run/docker.sock")).docker_socket is not None


@pytest.fixture
async def docker() -> AsyncIterator[FakeDocker]:
    fake = FakeDocker(Path(tempfile.mkdtemp(prefix="fd-")) / "docker.sock")
    fake.container("c-auth", "proj-auth-service-1", "healthy", service="auth-service")
    fake.container("c-api", "proj-api-service-1", "health: starting", service="api-service")
    fake.container("c-redis", "proj-redis-1", "")
    await fake.start()
    yield fake
    if fake.server is not None and not fake.server.should_exit:
        await fake.stop()


class Results:
    """Probe results from the topic, newest per node, with the time each arrived."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.all: list[tuple[float, dict[str, Any]]] = []

    async def pull(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msgs in (await self.consumer.getmany(timeout_ms=200)).values():
                self.all += [(time.monotonic(), orjson.loads(m.value)) for m in msgs if m.value is not None]

    async def until(self, check: Any, within: float = 10.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if check():
                return True
            await self.pull(0.3)
        return bool(check())

    def since(self, t: float) -> list[dict[str, Any]]:
        return [doc for at, doc in self.all if at >= t]


@pytest.mark.stack
async def test_prober_follows_docker_health(docker: FakeDocker, kafka_bootstrap: str, topic: str) -> None:
    settings = ProbeSettings(kafka_bootstrap_servers=kafka_bootstrap, topic=topic, interval_s=0.5,
                             timeout_s=1.0, docker_socket=docker.socket_path)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    results = Results(consumer)

    def latest(node: str, t: float) -> dict[str, Any] | None:
        docs = [d for d in results.since(t) if d["service"]["node"]["name"] == node]
        return docs[-1] if docs else None

    try:
        # the listing: auth healthy is reported every round; api (starting) and redis (no check) are not
        t0 = time.monotonic()
        assert await results.until(lambda: len(results.since(t0)) >= 3)
        assert {d["service"]["node"]["name"] for d in results.since(t0)} == {"proj-auth-service-1"}
        first = results.since(t0)[0]
        assert first["service"] == {"name": "auth-service", "node": {"name": "proj-auth-service-1"}}
        assert first["health"] == {"status": "healthy"} and first["event"]["module"] == "docker"
        assert first["event"]["action"] == "health-check" and first["event"]["dataset"] == "elk.health"
        assert orjson.loads(docker.event_filters[0])["event"] == ["health_status", "die", "start", "destroy"]

        # events: auth turns unhealthy, api becomes healthy
        t1 = time.monotonic()
        docker.emit("c-auth", "proj-auth-service-1", "health_status: unhealthy",
                    **{"com.docker.compose.service": "auth-service"})
        docker.emit("c-api", "proj-api-service-1", "health_status: healthy",
                    **{"com.docker.compose.service": "api-service"})
        assert await results.until(lambda: (latest("proj-auth-service-1", t1) or {}).get("health") ==
                                   {"status": "unhealthy"} and latest("proj-api-service-1", t1) is not None)
        unhealthy = latest("proj-auth-service-1", t1)
        assert unhealthy is not None and unhealthy["event"]["outcome"] == "failure"

        # the auth container crashes: reported unhealthy with the exit code until removed
        docker.emit("c-auth", "proj-auth-service-1", "die", exitCode="137")
        t2 = time.monotonic()
        assert await results.until(lambda: ((latest("proj-auth-service-1", t2) or {}).get("error") or {})
                                   .get("message") == "container exited (code 137)")
        docker.emit("c-auth", "proj-auth-service-1", "destroy")
        await asyncio.sleep(0.6)
        t3 = time.monotonic()
        await results.pull(1.5)
        checks = [d for d in results.since(t3) if d["event"]["action"] == "health-check"]
        assert {d["service"]["node"]["name"] for d in checks} == {"proj-api-service-1"}
        # ... and its removal is announced once, so it leaves its service's state at once
        removed = [d for d in results.since(t2) if d["event"]["action"] == "health-removed"]
        assert [(d["service"], d["event"]["module"]) for d in removed] == [
            ({"name": "auth-service", "node": {"name": "proj-auth-service-1"}}, "docker")]

        # Docker goes away: the prober keeps running and reports nothing it cannot observe ...
        await docker.stop()
        await asyncio.sleep(0.6)
        t4 = time.monotonic()
        await results.pull(1.5)
        assert results.since(t4) == [] and not task.done()
        # ... and picks up again from a fresh listing when it is back
        docker.containers = []
        docker.container("c-auth2", "proj-auth-service-1", "healthy", service="auth-service")
        await docker.start()
        t5 = time.monotonic()
        assert await results.until(lambda: latest("proj-auth-service-1", t5) is not None, within=20)
        assert latest("proj-auth-service-1", t5)["health"] == {"status": "healthy"}  # type: ignore[index]
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await consumer.stop()
