"""The health Monitor the shipper plugs in (see shipper/monitor.py).

`observe` (hot path, per record) feeds probe results to the state machine and log records to the
stream signals; `tick` (once a second) turns state and signals into rule conditions, runs the alert
lifecycle, and hands each alert event to the webhooks and back to the shipper, which writes it
to logs-elk.alerts-<ns>. Everything but `start`/`stop` and the webhook queue is pure.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from collector.contract.promtext import metric, single
from collector.contract.streams import DATASET_ALERTS, DATASET_HEALTH, sanitize_namespace
from shipper.engines.base import EngineUnavailable, SearchEngine
from shipper.health import alerts
from shipper.health.alerts import AlertBook, Condition, Key
from shipper.health.config import SHIPPER_SERVICE, HealthSettings, RuleSettings
from shipper.health.restore import apply_hits, restore_query
from shipper.health.signals import Signals, last_seen_query, seed_from
from shipper.health.state import UNHEALTHY, HealthState
from shipper.health.webhooks import WebhookNotifier
from shipper.log import get_logger
from shipper.monitor import Doc, PipelineStatus
from shipper.provenance import Origin

log = get_logger("shipper.health")

# How long a starting shipper waits for the engine to answer the restore queries.
RESTORE_WITHIN_S = 30.0


def _when(record: dict[str, Any]) -> float:
    ts = record.get("@timestamp")
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return datetime.now(UTC).timestamp()


class HealthMonitor:
    def __init__(self, settings: HealthSettings, namespace: str = "default") -> None:
        self.settings = settings
        self.state = HealthState(settings.failures_to_down, settings.successes_to_up)
        self.namespace = sanitize_namespace(namespace)
        all_rules = [settings.rules, *(settings.rules_for(s) for s in settings.services)]
        self.signals = Signals(
            error_window_s=max(r.error_window_s for r in all_rules),
            history_windows=max(r.error_baseline_windows for r in all_rules),
            caught_up_max_lag=settings.caught_up_max_lag,
            max_event_delay_s=settings.max_event_delay_s,
        )
        self.book = AlertBook(settings.rules_for, self.namespace)
        self.notifier = WebhookNotifier(settings)

    async def start(self, engine: SearchEngine, restore_within_s: float = RESTORE_WITHIN_S) -> None:
        """Rebuild health state and open alerts from the index (a restart re-fires nothing).

        An engine that is briefly unavailable (shards still starting after its own restart) is
        waited for: starting fresh would re-fire every open alert."""
        deadline = time.monotonic() + restore_within_s
        pause = 0.5
        while True:
            try:
                await self._restore(engine)
                break
            except EngineUnavailable as exc:
                if time.monotonic() + pause > deadline:
                    log.warning("could not restore health state; starting fresh", error=str(exc)[:200])
                    break
                log.info("engine unavailable while restoring health state; retrying", retry_in_s=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            except Exception as exc:
                log.warning("could not restore health state; starting fresh", error=type(exc).__name__)
                break
        await self.notifier.start()

    async def _restore(self, engine: SearchEngine) -> None:
        result = await engine.search(f"logs-{DATASET_HEALTH}-{self.namespace}", restore_query())
        state = HealthState(self.settings.failures_to_down, self.settings.successes_to_up)
        apply_hits(state, list(reversed(result.get("hits", {}).get("hits", []))))
        result = await engine.search(f"logs-{DATASET_ALERTS}-{self.namespace}", alerts.restore_query())
        alert_hits = result.get("hits", {}).get("hits", [])
        result = await engine.search(f"logs-*-{self.namespace}", last_seen_query())
        # Applied only once all three answered, so a retry never restores half twice.
        self.state = state
        restored = self.book.restore(alert_hits)
        seeded = seed_from(self.signals, result)
        log.info("health state restored", services=len(self.state.services), open_alerts=restored,
                 streams=seeded)

    def state_of(self, service: str) -> str | None:
        return self.state.state_of(service)

    def observe(self, record: dict[str, Any], origin: Origin | None = None) -> list[Doc]:
        event = record.get("event")
        if not isinstance(event, dict) or event.get("dataset") != DATASET_HEALTH:
            self.signals.observe(record)
            return []
        if event.get("action") != "health-check":
            return []
        service = (record.get("service") or {}).get("name") or "unknown"
        node = ((record.get("service") or {}).get("node") or {}).get("name") or service
        ok = (record.get("health") or {}).get("status") == "healthy"
        # The trigger is the probe result's place in Kafka, so a redelivery derives the same transition ids
        # (the enriched record is no such key: it carries event.ingested).
        trigger = (f"{origin.topic}/{origin.partition}/{origin.offset}" if origin is not None
                   else orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
        docs: list[Doc] = []
        for t in self.state.observe_probe(service, node, ok, _when(record), trigger):
            doc_id, when = t.pop("_id"), t.pop("when")
            t["@timestamp"] = datetime.fromtimestamp(when, UTC).isoformat()
            t["data_stream"] = {**(record.get("data_stream") or {}), "type": "logs", "dataset": DATASET_HEALTH}
            docs.append((doc_id, t))
        return docs

    def unhealthy(self, service: str, now: float, rules: RuleSettings) -> Condition:
        entry = self.state.services.get(service)
        if entry is None:
            return None, "no probe results yet"
        state, since = entry
        lasted = max(0.0, now - since)
        if state != UNHEALTHY:
            return False, f"{state} for {lasted:.0f}s"
        return lasted >= rules.unhealthy_for_s, f"unhealthy for {lasted:.0f}s (all instances failing their probes)"

    def conditions(self, now: float, pipeline: PipelineStatus) -> dict[Key, Condition]:
        out: dict[Key, Condition] = {}
        services = set(self.state.services) | set(self.signals.streams) | {s for _, s in self.book.open}
        for service in sorted(services):
            rules = self.settings.rules_for(service)
            checks = (("unhealthy", rules.unhealthy, self.unhealthy),
                      ("error_rate", rules.error_rate, self.signals.error_spike),
                      ("silence", rules.silence, self.signals.silence))
            for rule, enabled, check in checks:
                if enabled:
                    out[(rule, service)] = check(service, now, rules)
                elif (rule, service) in self.book.open:
                    out[(rule, service)] = (False, "rule disabled")
        rules = self.settings.rules_for(SHIPPER_SERVICE)
        out[("dead_letter", SHIPPER_SERVICE)] = (
            self.signals.dead_letter_growth(now, rules) if rules.dead_letter else (False, "rule disabled"))
        out[("consumer_lag", SHIPPER_SERVICE)] = (
            self.signals.consumer_lag(now, pipeline.lag_total, rules) if rules.consumer_lag
            else (False, "rule disabled"))
        return out

    def evaluate(self, now: float, pipeline: PipelineStatus) -> list[Doc]:
        """Pure step of `tick`: signals update, conditions, alert lifecycle."""
        self.signals.pipeline(now, pipeline.lag_by_partition, pipeline.dead_lettered_total)
        return self.book.evaluate(now, self.conditions(now, pipeline))

    async def tick(self, now: float, pipeline: PipelineStatus) -> list[Doc]:
        docs = self.evaluate(now, pipeline)
        for _, doc in docs:
            log.warning("alert", action=doc["event"]["action"], rule=doc["rule"]["id"],
                        service=doc["service"]["name"], alert_id=doc["alert"]["id"], reason=doc["alert"]["reason"])
            self.notifier.submit(doc)
        return docs

    def metrics(self) -> list[str]:
        """Prometheus lines for the ops endpoint: what is wrong now, and whether anyone was told."""
        delivery = self.notifier.stats
        return [
            *metric("shipper_service_health", "gauge",
                    "1 for each service's current state (healthy, degraded, unhealthy) from its probes.",
                    [({"service": svc, "state": state}, 1) for svc, (state, _) in sorted(self.state.services.items())]),
            *metric("shipper_alerts_open", "gauge", "1 for each open alert, by rule and service.",
                    [({"rule": rule, "service": svc}, 1) for rule, svc in sorted(self.book.open)]),
            *metric("shipper_webhook_deliveries_total", "counter",
                    "Alert events handed to webhooks, by outcome (dropped: queue full, oldest first).",
                    [({"outcome": "delivered"}, delivery.delivered), ({"outcome": "failed"}, delivery.failed),
                     ({"outcome": "dropped"}, delivery.dropped)]),
            *single("shipper_webhook_retries_total", "counter", "Webhook calls retried after an error.",
                    delivery.retried),
        ]

    async def stop(self) -> None:
        await self.notifier.stop()
