"""Webhook delivery against a real loopback receiver: payloads, retries, never blocking, no secrets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import SecretStr

from shipper.health.alerts import AlertBook
from shipper.health.config import HealthSettings
from shipper.health.webhooks import WebhookNotifier, host_of, slack_payload
from tests.health.loopback import WebhookReceiver, free_port, wait_for


def fired_event() -> dict:
    book = AlertBook(HealthSettings().rules_for, "t")
    return book.evaluate(1_800_000_000.0, {("unhealthy", "api"): (True, "all instances down")})[0][1]


def test_payloads() -> None:
    event = fired_event()
    slack = slack_payload(event)
    assert slack["text"] == "[FIRED] Service unhealthy: api"
    assert slack["attachments"][0]["text"] == "all instances down"
    assert host_of("https://hooks.slack.com/services/T0/B0/xyz") == "hooks.slack.com"


async def test_delivers_json_and_slack_with_retries(receiver: WebhookReceiver, capfd: pytest.CaptureFixture) -> None:
    receiver.fail_first = 2
    settings = HealthSettings(webhook_urls=SecretStr(f"{receiver.url('hook')},{receiver.url('flaky/tok3n')}"),
                              slack_webhook_urls=SecretStr(receiver.url("slack/T0/B0/s3cr3t")),
                              webhook_backoff_s=0.1)
    notifier = WebhookNotifier(settings)
    await notifier.start()
    event = fired_event()
    notifier.submit(event)
    await notifier.stop(drain_s=10)
    paths = sorted(r.path for r in receiver.received)
    assert paths == ["flaky/tok3n", "hook", "slack/T0/B0/s3cr3t"]
    assert receiver.fail_first == 0 and notifier.stats.retried == 2 and notifier.stats.delivered == 3
    hook = next(r for r in receiver.received if r.path == "hook")
    assert hook.body["alert"]["id"] == event["alert"]["id"] and "data_stream" not in hook.body
    out = capfd.readouterr()
    assert "retrying" in out.out + out.err and "tok3n" not in out.out + out.err and "s3cr3t" not in out.out + out.err


async def test_failing_or_hanging_webhook_never_blocks(receiver: WebhookReceiver) -> None:
    dead = f"http://127.0.0.1:{free_port()}/refused"
    settings = HealthSettings(webhook_urls=SecretStr(f"{dead},{receiver.url('hang')},{receiver.url('hook')}"),
                              webhook_backoff_s=0.2, webhook_retries=3, webhook_timeout_s=1.0, webhook_queue=5)
    notifier = WebhookNotifier(settings)
    await notifier.start()
    started = time.monotonic()
    for _ in range(50):
        notifier.submit(fired_event())
    assert time.monotonic() - started < 0.1  # submit never waits
    # the healthy hook gets its (bounded) queue promptly while the others retry
    async def five_arrived() -> bool:
        return len(receiver.json_events("hook")) >= 5

    assert await wait_for(five_arrived, 5) is not None
    assert notifier.stats.dropped == 3 * 45  # 5 kept per webhook
    stop_started = time.monotonic()
    await notifier.stop(drain_s=1.0)
    assert time.monotonic() - stop_started < 3
    assert not any(r.path == "refused" for r in receiver.received)


async def test_queue_drains_in_order(receiver: WebhookReceiver) -> None:
    settings = HealthSettings(webhook_urls=SecretStr(receiver.url("hook")))
    notifier = WebhookNotifier(settings)
    await notifier.start()
    events = [fired_event() for _ in range(3)]
    for i, e in enumerate(events):
        e["message"] = f"n{i}"
        notifier.submit(e)
    await notifier.stop(drain_s=5)
    await asyncio.sleep(0)
    assert [r.body["message"] for r in receiver.json_events("hook")] == ["n0", "n1", "n2"]


class _Said:
    """The notifier's logger, keeping what it was told."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.lines.append((level, event, kw))


async def test_a_full_queue_is_logged_once_per_overflow_not_per_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    """An alert storm into a webhook that does not answer: each dropped alert is counted, and the
    overflow is logged once per webhook until its queue has room again (one line per dropped alert
    flooded the shipper's logs and made `submit` slow)."""
    from shipper.health import webhooks

    said = _Said()
    monkeypatch.setattr(webhooks, "log", said)
    dead = f"http://127.0.0.1:{free_port()}/refused"
    notifier = WebhookNotifier(HealthSettings(webhook_urls=SecretStr(f"{dead},{dead}/2"), webhook_queue=5,
                                              webhook_retries=0, webhook_timeout_s=0.5))
    for _ in range(50):  # no worker started: nothing takes from the queues
        notifier.submit(fired_event())
    assert notifier.stats.dropped == 2 * 45
    full = [kw["host"] for level, event, kw in said.lines if level == "warning" and "queue full" in event]
    assert full == ["127.0.0.1", "127.0.0.1"]
    for target in notifier.targets:  # room again, then a new overflow: logged again
        target.queue.get_nowait()
        target.queue.task_done()
    notifier.submit(fired_event())
    notifier.submit(fired_event())
    assert notifier.stats.dropped == 2 * 46
    assert len([1 for level, event, _ in said.lines if level == "warning" and "queue full" in event]) == 4
