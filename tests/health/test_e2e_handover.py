"""Issue 20 item 3 (c) and (e) on the real servers, the shipper as a subprocess, a proxy in front of
the engine: an alert made just before SIGTERM is written (and the next replica resolves that very
alert), and SIGTERM during the start-up restore stops the shipper at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fastapi.responses import JSONResponse

from tests.health.loopback import EngineProxy, WebhookReceiver, alert_docs, wait_for
from tests.health.test_e2e_alerts import Logger, log_line
from tests.shipper.harness import Run, create_topic, produce, stop

pytestmark = pytest.mark.stack

ALERT_WRITE_DELAY_S = 4.0  # an engine slow to take the alert documents (under the shutdown bound's share)


@pytest.fixture
def slow_alerts(search_url: str) -> Iterator[EngineProxy]:
    proxy = EngineProxy(search_url, lambda method, path, body: ALERT_WRITE_DELAY_S
                        if path.startswith("/_bulk") and b'"elk.alerts"' in body else None)
    proxy.start()
    yield proxy
    proxy.stop()


async def test_an_alert_made_just_before_sigterm_is_written_and_resolved_by_the_next_replica(
    world: Run, receiver: WebhookReceiver, slow_alerts: EngineProxy
) -> None:
    await create_topic(world.bootstrap, world.logs_topic)
    env = {"SHIPPER_SEARCH_URL": slow_alerts.url, "SHIPPER_HEALTH__WEBHOOK_URLS": receiver.url("hook"),
           "SHIPPER_HEALTH__SILENCE_S": "3", "SHIPPER_HEALTH__ERROR_RATE": "false",
           "SHIPPER_HEALTH__ERROR_RATIO": "false"}
    await produce(world.bootstrap, world.logs_topic, [log_line("oneoff", n) for n in range(3)], key=b"oneoff")
    first = world.start_shipper("a", **env)
    try:
        async def fired() -> bool:
            return any(r.body["event"]["action"] == "fired" for r in receiver.json_events("hook"))

        assert await wait_for(fired, 60) is not None
        assert stop(first) == 0  # SIGTERM while the alert document is still on its way to the engine
        docs = await alert_docs(world.search_url, world.namespace)
        assert [(d["rule"]["id"], d["event"]["action"]) for d in docs] == [("silence", "fired")], docs
        # the service logs again; the next replica restores the open alert and resolves that very alert
        again = Logger(world.bootstrap, world.logs_topic, "oneoff")
        again.start()
        second = world.start_shipper("b", **env)
        try:
            async def resolved() -> bool:
                return any(r.body["event"]["action"] == "resolved" for r in receiver.json_events("hook"))

            assert await wait_for(resolved, 60) is not None, (world.logdir / "b.log").read_text()[-3000:]
        finally:
            await again.stop()
            assert stop(second) == 0
    finally:
        stop(first)
    docs = await alert_docs(world.search_url, world.namespace)
    assert [d["event"]["action"] for d in docs] == ["fired", "resolved"], docs
    assert docs[0]["alert"]["id"] == docs[1]["alert"]["id"]
    assert docs[1]["alert"]["resolution"] == "recovered"


async def test_sigterm_during_the_start_up_restore_stops_at_once(world: Run, search_url: str) -> None:
    """The engine answers but its searches fail (shards starting): the restore retries for up to 30 s."""
    unavailable = JSONResponse({"error": {"type": "search_phase_execution_exception"}, "status": 503},
                               status_code=503)
    proxy = EngineProxy(search_url, lambda method, path, body: unavailable if "_search" in path else None)
    proxy.start()
    try:
        await create_topic(world.bootstrap, world.logs_topic)
        proc = world.start_shipper("a", SHIPPER_SEARCH_URL=proxy.url)
        log = world.logdir / "a.log"

        async def retrying() -> bool:
            return b"retrying" in log.read_bytes()

        assert await wait_for(retrying, 30) is not None, log.read_text()[-2000:]
        began = time.monotonic()
        assert stop(proc) == 0
        took = time.monotonic() - began
        assert took < 5, f"took {took:.1f}s to stop during the restore"
        assert b'"stopped while restoring health state"' in log.read_bytes()
    finally:
        proxy.stop()
        await asyncio.sleep(0)
