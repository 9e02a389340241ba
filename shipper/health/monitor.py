"""The health Monitor the shipper plugs in (see shipper/monitor.py).

`observe` (hot path, per record) feeds probe results to the state machine and log records to the
stream signals; `tick` (once a second) expires silent instances, turns state and signals into rule
conditions, runs the alert lifecycle, and hands each alert event to the webhooks and back to the
shipper, which writes it to logs-elk.alerts-<ns>. A service's own health transition is judged at
once (its alert goes with the batch that caused it) rather than at the next tick.

With several shipper replicas each service is computed by one of them (shipper/health/ownership.py):
`partitions_revoked` hands services over, `partitions_assigned` takes them over.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from collector.contract.health import UNHEALTHY, UNKNOWN, status_word
from collector.contract.promtext import metric, single
from collector.contract.streams import (
    DATASET_ALERTS,
    DATASET_HEALTH,
    LOGS,
    OWN_WRITER,
    TOPIC_HEALTH,
    TOPIC_LOGS,
    TOPIC_METRICS,
    data_stream_name,
    data_stream_pattern,
    sanitize_namespace,
)
from collector.contract.timefmt import format_epoch, parse_epoch
from shipper.engines.base import EngineRejected, EngineUnavailable, SearchEngine
from shipper.health import alerts
from shipper.health.alerts import AlertBook, Condition, Key
from shipper.health.config import SHIPPER_SERVICE, HealthSettings, RuleSettings
from shipper.health.ownership import HEALTH, STREAM, TP, Ownership
from shipper.health.restore import apply_hits, restore_query
from shipper.health.signals import Signals, last_seen_query, seed_from
from shipper.health.state import HealthState
from shipper.health.webhooks import WebhookNotifier
from shipper.log import get_logger
from shipper.monitor import Doc, PipelineStatus
from shipper.provenance import Origin

log = get_logger("shipper.health")

# How long a starting shipper waits for the engine to answer the restore queries.
RESTORE_WITHIN_S = 30.0
# Bounds on the handover work inside a rebalance (Kafka waits for it, up to its rebalance timeout).
HANDOVER_WITHIN_S = 10.0
HANDOVER_KEEP_S = 300.0  # resolved alerts whose event is re-written on a handover
PIPELINE_RULES = ("dead_letter", "consumer_lag")
# an instance announced as gone by its prober (target removed, container removed)
REMOVED = "health-removed"


class HealthMonitor:
    def __init__(self, settings: HealthSettings, namespace: str = "default", topics: list[str] | None = None,
                 health_topics: frozenset[str] = frozenset({TOPIC_HEALTH}),
                 metrics_topics: frozenset[str] = frozenset({TOPIC_METRICS})) -> None:
        self.settings = settings
        self.state = self._new_state()
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
        # A monitor of a consumer-group member owns nothing until Kafka assigns it partitions (it
        # would otherwise judge every service from the index before knowing its share); one used
        # without Kafka (`topics` None) owns everything.
        self.owner = Ownership(topics or [TOPIC_LOGS, TOPIC_METRICS, TOPIC_HEALTH], health_topics, metrics_topics,
                               everything=topics is None)
        self.engine: SearchEngine | None = None
        self.capped_logged: set[str] = set()

    def _new_state(self) -> HealthState:
        return HealthState(self.settings.failures_to_down, self.settings.successes_to_up,
                           self.settings.max_instances_per_service)

    # ------------------------------------------------------------------ ownership

    def part_of(self, key: Key) -> str | None:
        """What of its service an alert belongs to; None for the pipeline-scoped rules."""
        rule = key[0]
        return HEALTH if rule == "unhealthy" else None if rule in PIPELINE_RULES else STREAM

    def owns_key(self, key: Key) -> bool:
        part = self.part_of(key)
        return self.owner.leader() if part is None else self.owner.owns(part, key[1])

    def _not_owned(self) -> tuple[set[str], set[str], set[Key]]:
        return ({s for s in self.state.services if not self.owner.owns(HEALTH, s)},
                {s for s in self.signals.streams if not self.owner.owns(STREAM, s)},
                {k for k in self.book.keys() if not self.owns_key(k)})

    async def partitions_revoked(self, revoked: list[TP]) -> None:
        """Services on `revoked` stop being evaluated here. Their alerts' newest events are written
        (and made searchable) before the partitions move, so the next owner restores them as they
        are: an open alert stays open, a resolved one is not resolved again, nothing re-fires.
        Their state is kept until the assignment: an eager rebalance revokes everything and
        usually gives most of it back."""
        self.owner.revoke(revoked)
        _, _, keys = self._not_owned()
        handed = [self.book.last_event[k] for k in keys if k in self.book.last_event]
        if handed and self.engine is not None:
            try:
                await asyncio.wait_for(self._write(self.engine, handed), HANDOVER_WITHIN_S)
            except (TimeoutError, EngineUnavailable, EngineRejected) as exc:
                log.warning("could not hand over alert events; the next owner may repeat them",
                            alerts=len(handed), error=type(exc).__name__)

    async def partitions_assigned(self, assigned: list[TP], counts: dict[str, int]) -> None:
        """Drop what another replica owns now; restore from the index the services gained."""
        before = (set(self.state.services), set(self.signals.streams), self.book.keys())
        self.owner.assign(assigned, counts)
        health, streams, keys = self._not_owned()
        self.state.drop(health)
        self.signals.drop(streams)
        self.book.drop(keys)
        self.signals.rebalanced()
        if self.engine is None:
            return
        kept_health, kept_streams, kept_keys = (before[0] - health, before[1] - streams, before[2] - keys)
        try:
            await asyncio.wait_for(self._restore(
                self.engine,
                lambda s: self.owner.owns(HEALTH, s) and s not in kept_health,
                lambda s: self.owner.owns(STREAM, s) and s not in kept_streams,
                lambda k: self.owns_key(k) and k not in kept_keys), HANDOVER_WITHIN_S)
        except Exception as exc:  # the services start fresh: better than holding up the group
            log.warning("could not restore the services taken over", error=type(exc).__name__)
        log.info("health ownership", partitions=len(self.owner.owned), services=len(self.state.services),
                 streams=len(self.signals.streams), open_alerts=len(self.book.open))

    async def _write(self, engine: SearchEngine, docs: list[Doc]) -> None:
        lines = bytearray()
        index = data_stream_name(LOGS, DATASET_ALERTS, self.namespace)
        for doc_id, doc in docs:
            doc["event"]["provider"] = OWN_WRITER  # what the restore queries ask for
            lines += orjson.dumps({"create": {"_index": index, "_id": doc_id}})
            lines += b"\n" + orjson.dumps(doc) + b"\n"
        await engine.bulk(bytes(lines))  # an event already there (409) is what we wanted
        await engine.request("POST", f"/logs-{DATASET_ALERTS}-{self.namespace},logs-{DATASET_HEALTH}-"
                                     f"{self.namespace}/_refresh?ignore_unavailable=true")

    # ------------------------------------------------------------------ restore

    async def start(self, engine: SearchEngine, restore_within_s: float = RESTORE_WITHIN_S) -> None:
        """Rebuild health state and open alerts from the index (a restart re-fires nothing).

        An engine that is briefly unavailable (shards still starting after its own restart) is
        waited for: starting fresh would re-fire every open alert."""
        self.engine = engine
        deadline = time.monotonic() + restore_within_s
        pause = 0.5
        while True:
            try:
                await self._restore(engine, self._owned_health, self._owned_stream, self.owns_key)
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

    def _owned_health(self, service: str) -> bool:
        return self.owner.owns(HEALTH, service)

    def _owned_stream(self, service: str) -> bool:
        return self.owner.owns(STREAM, service)

    async def _restore(self, engine: SearchEngine, health: Any, streams: Any, keys: Any) -> None:
        await engine.request("POST", f"/logs-{DATASET_ALERTS}-{self.namespace},logs-{DATASET_HEALTH}-"
                                     f"{self.namespace}/_refresh?ignore_unavailable=true")
        result = await engine.search(data_stream_name(LOGS, DATASET_HEALTH, self.namespace), restore_query())
        transitions = list(reversed(result.get("hits", {}).get("hits", [])))
        result = await engine.search(data_stream_name(LOGS, DATASET_ALERTS, self.namespace), alerts.restore_query())
        alert_hits = result.get("hits", {}).get("hits", [])
        result = await engine.search(data_stream_pattern(LOGS, "*", self.namespace), last_seen_query())
        # Applied only once all three answered, so a retry never restores half twice.
        apply_hits(self.state, transitions, time.time(), health)
        restored = self.book.restore(alert_hits, keys)
        seeded = seed_from(self.signals, result, streams)
        log.info("health state restored", services=len(self.state.services), open_alerts=restored,
                 streams=seeded)

    # ------------------------------------------------------------------ per record

    def state_of(self, service: str) -> str | None:
        return self.state.state_of(service)

    def observe(self, record: dict[str, Any], origin: Origin | None = None) -> list[Doc]:
        event = record.get("event")
        if not isinstance(event, dict) or event.get("dataset") != DATASET_HEALTH:
            service = record.get("service")
            name = service.get("name") if type(service) is dict else None
            if self.owner.everything or (type(name) is str and self.owner.owns(STREAM, name)):
                self.signals.observe(record)
            return []
        action = event.get("action")
        if action not in ("health-check", REMOVED):
            return []
        service = (record.get("service") or {}).get("name") or "unknown"
        if not self.owner.owns(HEALTH, service):
            return []
        node = ((record.get("service") or {}).get("node") or {}).get("name") or service
        when = parse_epoch(record.get("@timestamp")) or time.time()
        # The trigger is the probe result's place in Kafka, so a redelivery derives the same transition ids
        # (the enriched record is no such key: it carries event.ingested).
        trigger = (f"{origin.topic}/{origin.partition}/{origin.offset}" if origin is not None
                   else orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
        now = time.time()
        if action == REMOVED:
            moves = self.state.remove(service, node, when, "removed by its prober", trigger)
        else:
            status = status_word((record.get("health") or {}).get("status")) or UNHEALTHY
            moves = self.state.observe_probe(service, node, status, when, trigger, seen=now)
        docs = self._transition_docs(moves, record.get("data_stream"))
        if any(t["health"]["scope"] == "service" for _, t in docs) and now - when <= self.settings.max_event_delay_s:
            docs += self._judge(service, now)
        return docs

    def _transition_docs(self, moves: list[dict[str, Any]], stream: Any = None) -> list[Doc]:
        docs: list[Doc] = []
        for t in moves:
            doc_id, when = t.pop("_id"), t.pop("when")
            t["@timestamp"] = format_epoch(when)
            t["data_stream"] = {"namespace": self.namespace, **(stream if isinstance(stream, dict) else {}),
                                "type": "logs", "dataset": DATASET_HEALTH}
            docs.append((doc_id, t))
        return docs

    def _judge(self, service: str, now: float) -> list[Doc]:
        """The unhealthy rule of one service, right after its health changed."""
        rules = self.settings.rules_for(service)
        if not rules.unhealthy and ("unhealthy", service) not in self.book.open:
            return []
        cond = self.unhealthy(service, now, rules) if rules.unhealthy else (False, "rule disabled")
        return self._announce(self.book.evaluate(now, {("unhealthy", service): cond}))

    def _announce(self, docs: list[Doc]) -> list[Doc]:
        for _, doc in docs:
            log.warning("alert", action=doc["event"]["action"], rule=doc["rule"]["id"],
                        service=doc["service"]["name"], alert_id=doc["alert"]["id"], reason=doc["alert"]["reason"])
            self.notifier.submit(doc)
        return docs

    # ------------------------------------------------------------------ once a second

    def unhealthy(self, service: str, now: float, rules: RuleSettings) -> Condition:
        svc = self.state.services.get(service)
        if svc is None:
            return None, "no probe results yet"
        lasted = max(0.0, now - svc.since)
        if svc.state == UNKNOWN:  # nobody reports: an open alert stays open, none fires
            return None, "no instance reporting"
        if svc.state != UNHEALTHY:
            return False, f"{svc.state} for {lasted:.0f}s"
        return lasted >= rules.unhealthy_for_s, f"unhealthy for {lasted:.0f}s (no instance answering its probes)"

    def conditions(self, now: float, pipeline: PipelineStatus) -> dict[Key, Condition]:
        out: dict[Key, Condition] = {}
        services = set(self.state.services) | set(self.signals.streams) | {s for _, s in self.book.open}
        for service in sorted(services):
            rules = self.settings.rules_for(service)
            checks = (("unhealthy", rules.unhealthy, self.unhealthy),
                      ("error_rate", rules.error_rate, self.signals.error_spike),
                      ("error_ratio", rules.error_ratio, self.signals.error_ratio),
                      ("silence", rules.silence, self.signals.silence))
            for rule, enabled, check in checks:
                key = (rule, service)
                if not self.owns_key(key):
                    continue
                if enabled:
                    out[key] = check(service, now, rules)
                elif key in self.book.open:
                    out[key] = (False, "rule disabled")
        if self.owner.leader():
            rules = self.settings.rules_for(SHIPPER_SERVICE)
            out[("dead_letter", SHIPPER_SERVICE)] = (
                self.signals.dead_letter_growth(now, rules) if rules.dead_letter else (False, "rule disabled"))
            out[("consumer_lag", SHIPPER_SERVICE)] = (
                self.signals.consumer_lag(now, pipeline.lag_total, rules) if rules.consumer_lag
                else (False, "rule disabled"))
        return out

    def evaluate(self, now: float, pipeline: PipelineStatus) -> list[Doc]:
        """Pure step of `tick`: instance expiry, signals update, conditions, alert lifecycle."""
        owned = None if self.owner.everything else [f"{t}/{p}" for t, p in self.owner.owned]
        self.signals.pipeline(now, pipeline.lag_by_partition, pipeline.dead_lettered_total, owned)
        listening = self.signals.caught_up_since
        docs = [] if listening is None else self._transition_docs(self.state.expire(
            now, self.settings.unknown_after_s, self.settings.forget_after_s, listening))
        docs += self.book.evaluate(now, self.conditions(now, pipeline))
        for key in [k for k, (_, d) in self.book.last_event.items()
                    if k not in self.book.open and now - (parse_epoch(d["@timestamp"]) or 0.0) > HANDOVER_KEEP_S]:
            del self.book.last_event[key]  # only recent resolutions can be missing from the index
        for rule, service in self.book.open:
            if rule in ("error_rate", "error_ratio"):
                self.signals.mark_alerting(service, now, self.settings.rules_for(service).error_window_s)
        for service in sorted(self.state.capped - self.capped_logged):
            self.capped_logged.add(service)
            log.warning("instances over the per-service limit refused (logged once per service)", service=service,
                        limit=self.settings.max_instances_per_service)
        return docs

    async def tick(self, now: float, pipeline: PipelineStatus) -> list[Doc]:
        docs = self.evaluate(now, pipeline)
        self._announce([d for d in docs if d[1]["event"].get("kind") == "alert"])
        return docs

    def metrics(self) -> list[str]:
        """Prometheus lines for the ops endpoint: what is wrong now, and whether anyone was told."""
        delivery = self.notifier.stats
        return [
            *metric("shipper_service_health", "gauge",
                    "1 for each service's current state (healthy, degraded, unhealthy) from its probes.",
                    [({"service": svc, "state": s.state}, 1) for svc, s in sorted(self.state.services.items())
                     if s.state != "unknown"]),
            *metric("shipper_alerts_open", "gauge", "1 for each open alert, by rule and service.",
                    [({"rule": rule, "service": svc}, 1) for rule, svc in sorted(self.book.open)]),
            *single("shipper_health_instances", "gauge", "Instances tracked (services this replica owns).",
                    sum(len(s.instances) for s in self.state.services.values())),
            *single("shipper_health_instances_refused_total", "counter",
                    "Health results refused: their service already has max_instances_per_service instances.",
                    self.state.refused),
            *metric("shipper_webhook_deliveries_total", "counter",
                    "Alert events handed to webhooks, by outcome (dropped: queue full, oldest first).",
                    [({"outcome": "delivered"}, delivery.delivered), ({"outcome": "failed"}, delivery.failed),
                     ({"outcome": "dropped"}, delivery.dropped)]),
            *single("shipper_webhook_retries_total", "counter", "Webhook calls retried after an error.",
                    delivery.retried),
        ]

    async def stop(self) -> None:
        await self.notifier.stop()
