"""Prober against real loopback HTTP services and the real broker: parallel, timeouts, shape."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from collector.contract.names import service_of
from collector.contract.timefmt import ISO_MS
from collector.probe.config import ProbeSettings, parse_targets
from collector.probe.prober import run, watch_target
from tests.health.loopback import FlipService, SwitchService


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

    @app.get("/degraded")
    async def degraded() -> dict[str, str]:
        return {"status": "degraded"}

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
                    doc = orjson.loads(m.value)
                    assert m.key == doc["service"]["name"].encode()  # keyed by service: one owner per service
                    got.setdefault(doc["service"]["node"]["name"], doc)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        await task
        await consumer.stop()
    assert set(got) == {"api-service-1", "api-service-2", "nginx"}
    assert elapsed < 5.0  # one round: 1 s timeout for the hang, not 30 s
    bad = got["api-service-1"]
    assert bad["health"] == {"status": "unhealthy", "body_status": "unhealthy"}
    assert bad["url"]["full"] == f"http://127.0.0.1:{port}/health"
    assert bad["http"]["response"]["status_code"] == 503
    assert bad["service"] == {"name": "api-service", "node": {"name": "api-service-1"}}
    assert bad["event"]["action"] == "health-check" and bad["event"]["outcome"] == "failure"
    assert "timeout" in got["api-service-2"]["error"]["message"]
    assert got["nginx"]["service"]["name"] == "nginx" and "error" in got["nginx"]


async def test_contract_names_degraded_and_no_credentials_in_documents(
    service: tuple[int, dict[str, bool]], kafka_bootstrap: str, topic: str
) -> None:
    """`api_service_1` is service `api_service` (the contract's rule, as in the shipper and the ingest
    API); a body saying `degraded` is degraded; the stored URL carries no user info (issue 14 item 10)."""
    port, _ = service
    settings = ProbeSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic=topic, interval_s=5.0, timeout_s=1.0,
        targets=f"api_service_1=http://admin:hunter2@127.0.0.1:{port}/degraded,"
        f"redis=http://:p%40ss@127.0.0.1:{_free_port()}/health")
    got = await _collect(settings, kafka_bootstrap, topic, lambda docs: len({d["service"]["node"]["name"]
                                                                              for _, d in docs}) >= 2)
    by_node = {d["service"]["node"]["name"]: (k, d) for k, d in got}
    key, doc = by_node["api_service_1"]
    assert key == b"api_service" and doc["service"] == {"name": "api_service", "node": {"name": "api_service_1"}}
    assert doc["health"] == {"status": "degraded", "body_status": "degraded"}
    assert doc["event"]["outcome"] == "failure"
    assert doc["url"]["full"] == f"http://127.0.0.1:{port}/degraded"
    assert ISO_MS.fullmatch(doc["@timestamp"])
    raw = b"".join(orjson.dumps(d) for _, d in got)
    assert b"hunter2" not in raw and b"admin" not in raw and b"p%40ss" not in raw
    assert by_node["redis"][1]["health"]["status"] == "unhealthy"


async def _collect(settings: ProbeSettings, bootstrap: str, topic: str, enough: Any,
                   within: float = 20.0) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Runs the prober until `enough(results so far)`, nothing new arrived for `within` seconds, or a
    minute passed (a prober that keeps publishing but never what is awaited)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[tuple[bytes | None, dict[str, Any]]] = []
    last_progress = started = time.monotonic()
    try:
        while not enough(got) and time.monotonic() - last_progress < within and time.monotonic() - started < 60:
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                got += [(m.key, orjson.loads(m.value)) for m in msgs]
                last_progress = time.monotonic()
    finally:
        stop.set()
        await task
        await consumer.stop()
    return got


async def test_confirmation_probes_confirm_an_outage_fast_and_let_a_blip_pass(
    kafka_bootstrap: str, topic: str
) -> None:
    """Issue 13 item 7: after a failed probe the target is re-probed every confirm_interval_s until it
    answers (a blip: one failure, then healthy) or fails confirm_failures times; then the normal
    interval again."""
    blip, down = FlipService(), FlipService()
    blip.start()
    down.start()
    try:
        blip.fail_next = 1
        down.healthy = False
        settings = ProbeSettings(kafka_bootstrap_servers=kafka_bootstrap, topic=topic, interval_s=3.0,
                                 timeout_s=1.0, confirm_interval_s=0.25, confirm_failures=3,
                                 targets=f"blip-1={blip.url},down-1={down.url}")
        started = time.monotonic()
        await _collect(settings, kafka_bootstrap, topic, lambda _: time.monotonic() - started > 4.0)
    finally:
        blip.stop()
        down.stop()
    t0 = down.probes[0][0]
    # three failures within about 2 x 0.25 s, then nothing until the normal interval
    assert [ok for _, ok in down.probes[:3]] == [False, False, False]
    assert down.probes[2][0] - t0 < 1.0, down.probes
    assert down.probes[3][0] - t0 >= 2.5, down.probes
    # the blip: one failure, one confirmation probe that answers, then the normal interval
    assert [ok for _, ok in blip.probes[:3]] == [False, True, True]
    assert blip.probes[1][0] - blip.probes[0][0] < 0.8
    assert blip.probes[2][0] - blip.probes[0][0] >= 2.5


async def test_a_removed_target_is_announced(tmp_path: Path, kafka_bootstrap: str, topic: str) -> None:
    """Issue 13 item 2: removing a target from the targets file announces the instance as removed."""
    svc = FlipService()
    svc.start()
    targets = tmp_path / "targets.json"
    targets.write_text(orjson.dumps({"targets": {"api-service-1": svc.url, "api-service-2": svc.url}}).decode())
    settings = ProbeSettings(kafka_bootstrap_servers=kafka_bootstrap, topic=topic, interval_s=0.5, timeout_s=1.0,
                             targets_file=targets)

    def removed(docs: list[tuple[bytes | None, dict[str, Any]]]) -> bool:
        if len(docs) >= 2 and "api-service-2" in targets.read_text():
            targets.write_text(orjson.dumps({"targets": {"api-service-1": svc.url}}).decode())
        return any(d["event"]["action"] == "health-removed" for _, d in docs)

    try:
        got = await _collect(settings, kafka_bootstrap, topic, removed)
    finally:
        svc.stop()
    gone = [(k, d) for k, d in got if d["event"]["action"] == "health-removed"]
    assert len(gone) == 1
    key, doc = gone[0]
    assert key == b"api-service" and doc["service"] == {"name": "api-service", "node": {"name": "api-service-2"}}
    assert doc["event"]["dataset"] == "elk.health"


async def test_prober_without_a_broker_waits_and_stops_cleanly() -> None:
    settings = ProbeSettings(kafka_bootstrap_servers=f"127.0.0.1:{_free_port()}", interval_s=0.5,
                             targets="api-service-1=http://127.0.0.1:9/health")
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    await asyncio.sleep(3)
    assert not task.done(), "the prober must keep trying, not die, while Kafka is away"
    stop.set()
    await asyncio.wait_for(task, 10)



async def _watch(svc: SwitchService, until: Any, limit_s: float) -> list[tuple[float, float, str]]:
    """Runs one target's watcher until `until(results)`; results are (started, answered, status) in
    monotonic seconds, in the order they were published."""
    results: list[tuple[float, float, str]] = []
    enough = asyncio.Event()

    async def publish(doc: dict[str, Any]) -> None:
        now = time.monotonic()
        results.append((now - doc["event"]["duration"] / 1e9, now, doc["health"]["status"]))
        if until(results):
            enough.set()

    settings = ProbeSettings(kafka_bootstrap_servers="127.0.0.1:9", interval_s=2.0, timeout_s=1.5,
                             confirm_interval_s=0.25, confirm_failures=3, targets=f"api-service-1={svc.url}")
    async with httpx.AsyncClient(timeout=settings.timeout_s) as client:
        task = asyncio.create_task(watch_target(client, "api-service-1", svc.url, settings, publish))
        waiter = asyncio.ensure_future(enough.wait())
        await asyncio.wait({task, waiter}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return results


def _confirmed_after(results: list[tuple[float, float, str]], flipped: float, failures: int = 3) -> float | None:
    """Seconds from the start of the first probe that began failing (started after the flip) to the
    answer that made `failures` failures in a row; None if that never happened."""
    first, run = None, 0
    for started, answered, status in results:
        if started < flipped:
            continue
        run = run + 1 if status == "unhealthy" else 0
        if status == "unhealthy" and first is None:
            first = started
        if run >= failures and first is not None:
            return answered - first
    return None


@pytest.mark.parametrize("kind", ["503", "refused", "hang"])
async def test_every_kind_of_failure_is_confirmed_within_one_timeout_plus_two_confirmation_intervals(
    kind: str,
) -> None:
    """Issue 20 item 12: with 2 s probes, a 1.5 s timeout, confirmation probes every 0.25 s and 3
    failures to go down, a hang used to be confirmed 4.5 s after the first failing probe (each
    confirmation probe waited for the previous one to time out), a 503 or a refused connection in
    0.5 s. Now every kind is confirmed by about 1.5 + 2 x 0.25 s, whatever the phase of the flip;
    the alert (1 failure -> fired in the shipper, well under 0.5 s) comes within 3 s."""
    svc = SwitchService()
    await svc.listen()
    try:
        for phase in (0.3, 1.1, 1.8):  # where in the 2 s cycle the service goes down
            flipped = time.monotonic() + phase

            async def flip(phase: float = phase) -> None:
                await asyncio.sleep(phase)
                await svc.set(kind)

            flipper = asyncio.create_task(flip())
            results = await _watch(svc, lambda r, f=flipped: _confirmed_after(r, f) is not None, 12.0)
            await flipper
            took = _confirmed_after(results, flipped)
            assert took is not None, results
            assert took <= 1.5 + 2 * 0.25 + 0.3, (kind, phase, took, results)
            await svc.set("ok")
    finally:
        await svc.close()


async def test_a_hang_keeps_at_most_confirm_failures_probes_out_and_a_hang_blip_raises_nothing() -> None:
    """Issue 20 item 12: confirmation probes that do not wait are bounded per target (never more than
    confirm_failures out at once, one per interval once the target is confirmed down); one hanging
    answer among good ones is never three failures in a row."""
    svc = SwitchService()
    await svc.listen()
    try:
        await svc.set("hang")
        started = time.monotonic()
        results = await _watch(svc, lambda _: time.monotonic() - started > 7.0, 10.0)
        assert svc.most_hanging <= 3, svc.most_hanging
        assert [s for _, _, s in results] and all(s == "unhealthy" for _, _, s in results)
        # 3 to confirm, then one per 2 s interval: not a probe every 0.25 s
        assert len(results) <= 3 + 3, results
        await svc.set("ok")
        svc.hang_next = 1
        started = time.monotonic()
        results = await _watch(svc, lambda _: time.monotonic() - started > 6.0, 8.0)
        statuses = [s for _, _, s in results]
        assert statuses.count("unhealthy") == 1, results
        assert _confirmed_after(results, started) is None
        assert _confirmed_after(results, started, failures=2) is None
    finally:
        await svc.close()
