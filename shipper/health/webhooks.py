"""Alert delivery to webhooks: generic JSON and Slack-compatible, with retries, never blocking.

Each webhook has its own bounded queue and worker task, so a slow or failing endpoint delays
only itself; `submit` never waits (when a queue is full the oldest alert is dropped and
counted). Webhook URLs often carry tokens (Slack's do): only their host is ever logged, and
httpx's per-request INFO log (which prints the full URL) is silenced. httpx (with its command-line
extras, ~25 ms of start-up CPU) is imported only when a webhook is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from shipper.health.config import HealthSettings
from shipper.log import get_logger

if TYPE_CHECKING:
    import httpx

log = get_logger("shipper.health.webhooks")

COLORS = {"fired": "#d62728", "renotified": "#ff7f0e", "resolved": "#2ca02c"}


def host_of(url: str) -> str:
    return urlsplit(url).hostname or "?"


def json_payload(event: dict[str, Any]) -> dict[str, Any]:
    """The generic webhook body: the alert event itself (as written to logs-elk.alerts-*)."""
    return {k: v for k, v in event.items() if k != "data_stream"}


def slack_payload(event: dict[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook body (`text` plus one attachment); Mattermost and others accept it too."""
    action = event["event"]["action"]
    alert, rule, service = event["alert"], event["rule"], event["service"]["name"]
    fields = [{"title": "Service", "value": service, "short": True},
              {"title": "Severity", "value": alert["severity"], "short": True},
              {"title": "Started", "value": alert["started"], "short": True}]
    if "resolved" in alert:
        fields.append({"title": "Resolved", "value": alert["resolved"], "short": True})
    return {
        "text": f"[{action.upper()}] {rule['name']}: {service}",
        "attachments": [{"color": COLORS.get(action, "#999999"), "title": rule["name"],
                         "text": alert.get("reason", ""), "fields": fields,
                         "footer": f"alert {alert['id']}"}],
    }


@dataclass
class Target:
    kind: str  # json | slack
    url: str
    queue: asyncio.Queue[dict[str, Any]]
    task: asyncio.Task[None] | None = None
    overflowing: bool = False  # its queue overflowed and has not had room since

    @property
    def host(self) -> str:
        return host_of(self.url)


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    last_delivery_s: float = 0.0
    by_host: dict[str, int] = field(default_factory=dict)


class WebhookNotifier:
    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self.targets = [Target(kind, url, asyncio.Queue(settings.webhook_queue)) for kind, url in settings.urls()]
        self.stats = DeliveryStats()
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if not self.targets:
            return
        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs full URLs (tokens) at INFO
        self.client = httpx.AsyncClient(timeout=self.settings.webhook_timeout_s)
        for target in self.targets:
            target.task = asyncio.create_task(self._worker(target))
        log.info("alert webhooks", targets=[f"{t.kind}:{t.host}" for t in self.targets])

    def submit(self, event: dict[str, Any]) -> None:
        """Never blocks: queue the alert for every webhook, dropping the oldest when a queue is full."""
        for target in self.targets:
            if not target.queue.full():
                target.overflowing = False
            while True:
                try:
                    target.queue.put_nowait(event)
                    break
                except asyncio.QueueFull:
                    with contextlib.suppress(asyncio.QueueEmpty):
                        target.queue.get_nowait()
                        target.queue.task_done()
                    self.stats.dropped += 1
                    if not target.overflowing:  # once per overflow: an alert storm must not flood the logs
                        target.overflowing = True
                        log.warning("webhook queue full; dropping the oldest alerts (counted in "
                                    "shipper_webhook_deliveries_total{outcome=\"dropped\"})", host=target.host)

    async def _worker(self, target: Target) -> None:
        while True:
            event = await target.queue.get()
            try:
                await self.deliver(target, event)
            except Exception as exc:  # never let one bad payload end the worker
                log.error("webhook delivery crashed", host=target.host, error=type(exc).__name__)
            finally:
                target.queue.task_done()

    async def deliver(self, target: Target, event: dict[str, Any]) -> bool:
        import httpx  # in sys.modules already (start() made the client)

        assert self.client is not None
        body = orjson.dumps(slack_payload(event) if target.kind == "slack" else json_payload(event))
        delay = self.settings.webhook_backoff_s
        attempts = self.settings.webhook_retries + 1
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            problem: str
            give_up = attempt >= attempts
            retry_after: float | None = None
            try:
                response = await self.client.post(target.url, content=body,
                                                  headers={"content-type": "application/json"})
                if response.status_code < 300:
                    self.stats.delivered += 1
                    self.stats.last_delivery_s = time.monotonic() - started
                    self.stats.by_host[target.host] = self.stats.by_host.get(target.host, 0) + 1
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in (408, 429):
                    give_up = True  # a 4xx will not get better by retrying
                with contextlib.suppress(ValueError):
                    retry_after = float(response.headers.get("retry-after", ""))
            except httpx.HTTPError as exc:
                problem = type(exc).__name__  # not str(exc): some carry the URL
            if give_up:
                self.stats.failed += 1
                log.error("webhook delivery failed", host=target.host, kind=target.kind, error=problem,
                          attempts=attempt, alert=event["alert"]["id"], action=event["event"]["action"])
                return False
            wait = min(self.settings.webhook_backoff_max_s, retry_after if retry_after is not None else delay)
            self.stats.retried += 1
            log.warning("webhook delivery failed; retrying", host=target.host, error=problem, retry_in_s=wait)
            await asyncio.sleep(wait)
            delay = min(self.settings.webhook_backoff_max_s, delay * 2)
        return False

    async def stop(self, drain_s: float = 5.0) -> None:
        """Give queued alerts up to drain_s to go out, then stop the workers."""
        if not self.targets:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(t.queue.join() for t in self.targets)), drain_s)
        for target in self.targets:
            if target.task is not None:
                target.task.cancel()
        await asyncio.gather(*(t.task for t in self.targets if t.task is not None), return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()
