"""End to end on loopback: a real HTTP service flipped unhealthy, the real prober, broker, shipper
(subprocess) and engine, and a real webhook receiver. Targets from issue 5: alert doc and webhook
within 10 s of failing (2 s probe interval, 3 failures to go down), resolution within 10 s of
recovery, a single failed probe raises nothing, silence reported within threshold + 5 s, a backlog
being drained raises no silence alert, and a restart re-fires nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from collector.contract.timefmt import format_epoch as iso
from tests.health.loopback import (
    FlipService,
    WebhookReceiver,
    alert_docs,
    free_port,
    transitions,
    wait_for,
    wait_progress,
)
from tests.shipper.harness import Run, count, create_topic, ops_metrics, produce, stop

pytestmark = pytest.mark.stack

SLACK_PATH = "slack/T000/B000/s3cr3t-token"


@pytest.fixture
def service() -> Iterator[FlipService]:
    svc = FlipService()
    svc.start()
    yield svc
    svc.stop()


def shipper_env(world: Run, receiver: WebhookReceiver, topics: str, **extra: str) -> dict[str, str]:
    return {"SHIPPER_TOPICS": topics, "SHIPPER_HEALTH_TOPICS": f"health-{world.unique}",
            "SHIPPER_HEALTH__WEBHOOK_URLS": receiver.url("hook"),
            "SHIPPER_HEALTH__SLACK_WEBHOOK_URLS": receiver.url(SLACK_PATH), **extra}


def log_line(service: str, n: int, when: float | None = None, level: str = "info") -> bytes:
    return orjson.dumps({"@timestamp": iso(time.time() if when is None else when), "log": {"level": level},
                         "message": f"line {n}", "service": {"name": service}})


class Logger:
    """A service that logs every `every` seconds to the logs topic until stopped."""

    def __init__(self, bootstrap: str, topic: str, service: str, every: float = 0.25) -> None:
        self.bootstrap, self.topic, self.service, self.every = bootstrap, topic, service, every
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        self.last_sent = 0.0

    async def _run(self) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            while True:
                await producer.send_and_wait(self.topic, log_line(self.service, self.sent),
                                             key=self.service.encode())
                self.sent += 1
                self.last_sent = time.time()
                await asyncio.sleep(self.every)
        finally:
            await producer.stop()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> float:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        return self.last_sent


async def test_unhealthy_alert_fires_and_resolves_within_10s(
    world: Run, receiver: WebhookReceiver, service: FlipService, prober_for: Any
) -> None:
    health_topic = f"health-{world.unique}"
    for topic in (world.logs_topic, health_topic):
        await create_topic(world.bootstrap, topic)
    ops_port = free_port()
    proc = world.start_shipper(**shipper_env(world, receiver, f"{world.logs_topic},{health_topic}",
                                             SHIPPER_HTTP_PORT=str(ops_port)))
    try:
        prober_for(health_topic, f"api-service-1={service.url}")

        async def healthy_seen() -> bool:
            return bool(await transitions(world.search_url, world.namespace, health__to="healthy"))

        assert await wait_for(healthy_seen, 60), "no healthy transition: shipper or prober not running"

        # one failed probe (a blip): nothing at all
        service.fail_next = 1
        await asyncio.sleep(8)
        assert [ok for _, ok in service.probes].count(False) == 1
        assert await alert_docs(world.search_url, world.namespace) == []
        assert receiver.received == []

        # failing for real: alert doc and both webhooks within 10 s
        failed_at = time.time()
        service.healthy = False

        async def fired_doc() -> bool:
            return bool(await alert_docs(world.search_url, world.namespace, event__action="fired"))

        doc_at = await wait_for(fired_doc, 20)
        assert doc_at is not None, "no fired alert document"
        hook_at = await wait_for(_arrived(receiver, "hook", "fired"), 10)
        slack_at = await wait_for(_arrived(receiver, "slack", "fired"), 10)
        assert hook_at is not None and slack_at is not None
        print(f"fail -> alert doc {doc_at - failed_at:.2f}s, webhook {hook_at - failed_at:.2f}s")
        assert doc_at - failed_at <= 10
        assert receiver.json_events("hook")[0].at - failed_at <= 10
        assert receiver.json_events("slack")[0].at - failed_at <= 10
        delivered = 'shipper_webhook_deliveries_total{outcome="delivered"}'

        async def both_counted() -> bool:  # the receiver sees a call before the shipper reads the answer
            return (await ops_metrics(ops_port))[delivered] == 2

        assert await wait_for(both_counted, 5) is not None
        metrics = await ops_metrics(ops_port)
        assert metrics['shipper_alerts_open{rule="unhealthy",service="api-service"}'] == 1
        assert metrics['shipper_service_health{service="api-service",state="unhealthy"}'] == 1

        # the health state is stamped on the service's log records
        await produce(world.bootstrap, world.logs_topic, [log_line("api-service", 1)], key=b"api-service")

        async def stamped() -> bool:
            return await count(world.search_url, f"logs-api_service-{world.namespace}") >= 1

        assert await wait_for(stamped, 15)
        body = {"query": {"term": {"health.state": "unhealthy"}}}
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{world.search_url}/logs-api_service-{world.namespace}/_search", json=body)
        assert r.json()["hits"]["total"]["value"] == 1

        # recovery: resolved within 10 s
        recovered_at = time.time()
        service.healthy = True

        async def resolved_doc() -> bool:
            return bool(await alert_docs(world.search_url, world.namespace, event__action="resolved"))

        resolved_at = await wait_for(resolved_doc, 20)
        assert resolved_at is not None, "no resolved alert document"
        assert await wait_for(_arrived(receiver, "hook", "resolved"), 10) is not None
        assert await wait_for(_arrived(receiver, "slack", "resolved"), 10) is not None
        print(f"recover -> resolved doc {resolved_at - recovered_at:.2f}s")
        assert resolved_at - recovered_at <= 10
        assert receiver.json_events("hook")[1].at - recovered_at <= 10
        await asyncio.sleep(3)  # nothing else trails in
        metrics = await ops_metrics(ops_port)
        assert not any(name.startswith("shipper_alerts_open{") for name in metrics)
        assert metrics[delivered] == 4
        assert metrics['shipper_webhook_deliveries_total{outcome="failed"}'] == 0
    finally:
        assert stop(proc) == 0

    docs = await alert_docs(world.search_url, world.namespace)
    assert [(d["rule"]["id"], d["event"]["action"]) for d in docs] == [("unhealthy", "fired"),
                                                                        ("unhealthy", "resolved")]
    assert docs[0]["alert"]["id"] == docs[1]["alert"]["id"] and docs[0]["service"]["name"] == "api-service"
    hooks = receiver.json_events("hook")
    assert [h.body["event"]["action"] for h in hooks] == ["fired", "resolved"]
    assert hooks[0].body["alert"]["id"] == docs[0]["alert"]["id"]
    slack = receiver.json_events("slack")
    assert [s.body["text"].split("]")[0] for s in slack] == ["[FIRED", "[RESOLVED"]
    shipper_log = (world.logdir / "shipper.log").read_text()
    assert "s3cr3t-token" not in shipper_log and "127.0.0.1" in shipper_log  # hosts only


async def test_silence_reported_and_restart_refires_nothing(
    world: Run, receiver: WebhookReceiver
) -> None:
    """`chatty` stops logging: reported within threshold + 5 s. A restart while it is silent fires
    nothing new; `dies` stops just before that restart and is still noticed (last-seen restored
    from the index). Logging again resolves `chatty`'s alert."""
    await create_topic(world.bootstrap, world.logs_topic)
    env = shipper_env(world, receiver, world.logs_topic, SHIPPER_HEALTH__SILENCE_S="5")
    proc = world.start_shipper(**env)
    logger = Logger(world.bootstrap, world.logs_topic, "chatty")
    dies = Logger(world.bootstrap, world.logs_topic, "dies")
    logger.start()
    dies.start()
    try:
        async def indexed() -> bool:
            return await count(world.search_url, f"logs-chatty-{world.namespace}") > 0

        assert await wait_for(indexed, 60)
        await asyncio.sleep(8)  # logging steadily for longer than the threshold: no alert
        assert await alert_docs(world.search_url, world.namespace) == []

        stopped_at = await logger.stop()
        fired_at = await wait_for(_arrived(receiver, "hook", "fired"), 20)
        assert fired_at is not None, "silence not reported"
        print(f"silence reported {fired_at - stopped_at:.2f}s after the last record (threshold 5 s)")
        assert fired_at - stopped_at <= 5 + 5
        assert receiver.json_events("hook")[0].body["rule"]["id"] == "silence"

        # `dies` stops, its last records are indexed, then the shipper restarts (chatty still silent)
        await dies.stop()
        await asyncio.sleep(2)
        assert stop(proc) == 0
        proc = world.start_shipper(**env)

        async def dies_reported() -> bool:
            return bool(await alert_docs(world.search_url, world.namespace, service__name="dies"))

        assert await wait_for(dies_reported, 30) is not None, "a service that died during a restart went unnoticed"
        await asyncio.sleep(3)
        fired = await alert_docs(world.search_url, world.namespace, event__action="fired")
        assert sorted(d["service"]["name"] for d in fired) == ["chatty", "dies"]
        assert sorted(h.body["service"]["name"] for h in receiver.json_events("hook")) == ["chatty", "dies"]

        # logging again resolves the same alert
        logger = Logger(world.bootstrap, world.logs_topic, "chatty")
        logger.start()
        assert await wait_for(_arrived(receiver, "hook", "resolved"), 20) is not None

        async def resolved_doc() -> bool:
            return bool(await alert_docs(world.search_url, world.namespace, event__action="resolved"))

        assert await wait_for(resolved_doc, 10) is not None
        await logger.stop()
    finally:
        for each in (logger, dies):
            if each.task and not each.task.done():
                await each.stop()
        assert stop(proc) == 0
    docs = await alert_docs(world.search_url, world.namespace, service__name="chatty")
    assert [(d["rule"]["id"], d["event"]["action"]) for d in docs] == [("silence", "fired"), ("silence", "resolved")]
    assert docs[0]["alert"]["id"] == docs[1]["alert"]["id"]


async def test_error_spike_and_dead_letter_growth_fire_and_resolve(world: Run, receiver: WebhookReceiver) -> None:
    """Windows shrunk to seconds: `spiky` logs an error every 2 s (its baseline), then 20 at once;
    3 poison records follow. Both rules fire once, and the spike resolves when errors calm down."""
    await create_topic(world.bootstrap, world.logs_topic)
    env = shipper_env(world, receiver, world.logs_topic, SHIPPER_HEALTH__SILENCE="false",
                      SHIPPER_HEALTH__ERROR_WINDOW_S="2", SHIPPER_HEALTH__ERROR_BASELINE_WINDOWS="3",
                      SHIPPER_HEALTH__ERROR_MIN_COUNT="5", SHIPPER_HEALTH__ERROR_RATE_FACTOR="3",
                      SHIPPER_HEALTH__DEAD_LETTER_MIN="3", SHIPPER_HEALTH__DEAD_LETTER_WINDOW_S="60")
    proc = world.start_shipper(**env)
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=world.bootstrap)
    await producer.start()
    sent = 0

    async def steady(seconds: float) -> None:
        nonlocal sent
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            level = "error" if sent % 10 == 0 else "info"  # one error every 2 s
            await producer.send_and_wait(world.logs_topic, log_line("spiky", sent, level=level), key=b"spiky")
            sent += 1
            await asyncio.sleep(0.2)

    try:
        await steady(12)  # more than one window plus the baseline windows of history
        assert await count(world.search_url, f"logs-spiky-{world.namespace}") > 0, "shipper not delivering"
        assert await alert_docs(world.search_url, world.namespace) == []  # the baseline alone raises nothing

        burst_at = time.time()
        for n in range(20):
            await producer.send(world.logs_topic, log_line("spiky", 10_000 + n, level="error"), key=b"spiky")
        await producer.flush()
        fired_at = await wait_for(_arrived(receiver, "hook", "fired"), 15)
        assert fired_at is not None, "error spike not reported"
        print(f"error spike reported {fired_at - burst_at:.2f}s after the burst")

        for poison in (b"not json", b"[1, 2]", b"\xff\xfe"):
            await producer.send_and_wait(world.logs_topic, poison)

        async def dead_letter_fired() -> bool:
            return bool(await alert_docs(world.search_url, world.namespace, rule__id="dead_letter"))

        assert await wait_for(dead_letter_fired, 15) is not None, "dead-letter growth not reported"

        async def spike_resolved() -> bool:
            return bool(await alert_docs(world.search_url, world.namespace, rule__id="error_rate",
                                         event__action="resolved"))

        calm = asyncio.create_task(steady(25))
        resolved_at = await wait_for(spike_resolved, 25)
        calm.cancel()
        await asyncio.gather(calm, return_exceptions=True)
        assert resolved_at is not None, "error spike never resolved"
    finally:
        await producer.stop()
        assert stop(proc) == 0
    spike = await alert_docs(world.search_url, world.namespace, rule__id="error_rate")
    assert [(d["event"]["action"], d["service"]["name"]) for d in spike] == [("fired", "spiky"), ("resolved", "spiky")]
    dead = await alert_docs(world.search_url, world.namespace, rule__id="dead_letter", event__action="fired")
    assert [d["service"]["name"] for d in dead] == ["elk-shipper"]
    assert await count(world.search_url, f"logs-elk.deadletter-{world.namespace}") == 3


BACKLOG_SECONDS = 300
BACKLOG_RATE = 300  # records per second of event time: a 5-minute backlog is 90,000 records


async def test_draining_a_backlog_raises_no_silence_alert(world: Run, receiver: WebhookReceiver) -> None:
    """A 5-minute backlog (event time) produced while the shipper is stopped, then drained.

    `live` keeps logging (its backlog runs up to now and it goes on): no alert. `gone` stopped
    logging 4 minutes ago, inside the backlog: it is reported once the shipper has caught up.
    """
    await create_topic(world.bootstrap, world.logs_topic)
    now = time.time()
    start = now - BACKLOG_SECONDS
    total = BACKLOG_SECONDS * BACKLOG_RATE
    backlog = [log_line("live", n, start + n / BACKLOG_RATE) for n in range(total)]
    gone = [log_line("gone", n, start + n) for n in range(60)]
    await produce(world.bootstrap, world.logs_topic, gone + backlog)
    env = shipper_env(world, receiver, world.logs_topic, SHIPPER_HEALTH__SILENCE_S="5",
                      SHIPPER_BATCH_MAX_RECORDS="2000")
    logger = Logger(world.bootstrap, world.logs_topic, "live")
    logger.start()
    proc = world.start_shipper(**env)
    started = time.time()
    try:
        async def indexed() -> int:
            return await count(world.search_url, f"logs-live-{world.namespace}")

        drained_at = await wait_progress(indexed, total, stall_s=30)
        assert drained_at is not None, f"backlog not drained: stuck at {await indexed()} of {total} for 30 s"
        print(f"backlog of {total + len(gone)} records drained in {drained_at - started:.1f}s")
        gone_at = await wait_for(_arrived(receiver, "hook", "fired"), 5 + 5 + 5)
        await asyncio.sleep(5)
    finally:
        await logger.stop()
        assert stop(proc) == 0
    docs = await alert_docs(world.search_url, world.namespace, rule__id="silence")
    assert [d["service"]["name"] for d in docs] == ["gone"], docs
    assert gone_at is not None
    assert [h.body["service"]["name"] for h in receiver.json_events("hook")] == ["gone"]


def _arrived(receiver: WebhookReceiver, path: str, action: str) -> Any:
    async def check() -> bool:
        return any(r.body.get("event", {}).get("action") == action or r.body.get("text", "").startswith(
            f"[{action.upper()}]") for r in receiver.json_events(path))
    return check

