"""Issue 13 item 4 on the real servers: an nginx-like service whose requests start failing with 502.

The error-ratio rule counts HTTP 5xx as errors (nginx logs them at level info) and fires on their
share of the records; the error-rate rule keeps the incident's windows out of its baseline, so it
stays open for as long as the incident lasts (on main it resolved itself once the incident filled
the baseline: "321 errors in 60s (baseline 2042.0 per window)"), and both resolve when it ends."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from collector.contract.timefmt import now_iso
from tests.health.loopback import WebhookReceiver, alert_docs, wait_for
from tests.shipper.harness import Run, count, create_topic, stop

pytestmark = pytest.mark.stack


def access_line(n: int, status: int) -> bytes:
    return orjson.dumps({"@timestamp": now_iso(), "log": {"level": "info"}, "message": f"GET /api/{n} {status}",
                         "service": {"name": "nginx"}, "http": {"response": {"status_code": status}}})


async def test_a_502_incident_fires_the_ratio_rule_and_never_resolves_itself(
    world: Run, receiver: WebhookReceiver
) -> None:
    from aiokafka import AIOKafkaProducer

    await create_topic(world.bootstrap, world.logs_topic)
    proc = world.start_shipper(
        SHIPPER_HEALTH__WEBHOOK_URLS=receiver.url("hook"), SHIPPER_HEALTH__SILENCE="false",
        SHIPPER_HEALTH__DEAD_LETTER="false", SHIPPER_HEALTH__ERROR_WINDOW_S="4",
        SHIPPER_HEALTH__ERROR_BASELINE_WINDOWS="3", SHIPPER_HEALTH__ERROR_MIN_COUNT="5",
        SHIPPER_HEALTH__ERROR_RATE_FACTOR="3", SHIPPER_HEALTH__ERROR_RATIO_MAX="0.5",
        SHIPPER_HEALTH__ERROR_RATIO_MIN_RECORDS="10", SHIPPER_HEALTH__FLAP_CHANGES="1000")
    producer = AIOKafkaProducer(bootstrap_servers=world.bootstrap, linger_ms=5)
    await producer.start()
    sent = 0

    async def traffic(seconds: float, failing: float) -> None:
        """10 requests a second, `failing` of them answered 502."""
        nonlocal sent
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for _ in range(5):
                status = 502 if (sent % 10) < failing * 10 else 200
                await producer.send(world.logs_topic, access_line(sent, status), key=b"nginx")
                sent += 1
            await producer.flush()
            await asyncio.sleep(0.5)

    def hooks() -> list[tuple[str, str]]:
        return [(r.body["rule"]["id"], r.body["event"]["action"]) for r in receiver.json_events("hook")]

    try:
        await traffic(10, 0.0)  # more than two windows: a calm history to compare with
        assert await count(world.search_url, f"logs-nginx-{world.namespace}") > 0, "shipper not delivering"
        assert hooks() == []
        incident = asyncio.create_task(traffic(24, 0.8))  # 6 windows: more than the baseline holds

        async def both_fired() -> bool:
            return {("error_ratio", "fired"), ("error_rate", "fired")} <= set(hooks())

        assert await wait_for(both_fired, 20) is not None, hooks()
        await incident
        assert sorted(hooks()) == [("error_rate", "fired"), ("error_ratio", "fired")], hooks()
        calm = asyncio.create_task(traffic(40, 0.0))

        async def both_resolved() -> bool:
            return {("error_ratio", "resolved"), ("error_rate", "resolved")} <= set(hooks())

        resolved = await wait_for(both_resolved, 30)
        calm.cancel()
        await asyncio.gather(calm, return_exceptions=True)
        assert resolved is not None, hooks()
    finally:
        await producer.stop()
        assert stop(proc) == 0
    docs = await alert_docs(world.search_url, world.namespace)
    assert sorted((d["rule"]["id"], d["event"]["action"]) for d in docs) == [
        ("error_rate", "fired"), ("error_rate", "resolved"), ("error_ratio", "fired"), ("error_ratio", "resolved")]
    fired = next(d for d in docs if d["rule"]["id"] == "error_ratio")
    assert "of" in fired["alert"]["reason"] and "are errors" in fired["alert"]["reason"]
