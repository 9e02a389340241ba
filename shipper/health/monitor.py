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
import heapq
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
from shipper.health.shares import decode, encode
from shipper.health.signals import Signals, Stream, last_seen_query, seed_from
from shipper.health.state import HealthState
from shipper.health.webhooks import WebhookNotifier
from shipper.log import get_logger
from shipper.monitor import Doc, PipelineStatus
from shipper.provenance import Message, Origin

log = get_logger("shipper.health")

# How long a starting shipper waits for the engine to answer the restore queries.
RESTORE_WITHIN_S = 30.0
# Bounds on the handover work inside a rebalance (Kafka waits for it, up to its rebalance timeout).
HANDOVER_WITHIN_S = 10.0
HANDOVER_KEEP_S = 300.0  # resolved alerts whose event is re-written on a handover
PIPELINE_RULES = ("dead_letter", "consumer_lag", "tracking_cap", "stream_cap")
SERVICE_RULES = ("unhealthy", "error_rate", "error_ratio", "silence")
CAP_QUIET_S = 300.0  # the tracking_cap and stream_cap alerts resolve this long after the last refusal
LOOK_AFTER_S = 0.001  # a due look lands just after the deadline it waits for
# probe results whose documents are kept for a redelivery (a batch's worth of transitions, many times over)
MAX_PRODUCED = 10_000
# an instance announced as gone by its prober (target removed, container removed)
REMOVED = "health-removed"
FORWARD_WITHIN_S = 5.0  # producing one tick's stream shares (also inside a rebalance); past it they are lost (counted)
Forward = Callable[[list[tuple[str, int, bytes]]], Awaitable[None]]


class Recent:
    """Whether a counter moved within the last CAP_QUIET_S (a cap alert's condition)."""

    def __init__(self) -> None:
        self.seen = 0
        self.at: float | None = None

    def moved(self, total: int, now: float) -> bool:
        if total != self.seen:
            self.seen, self.at = total, now
        return self.at is not None and now - self.at <= CAP_QUIET_S


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
            max_streams=settings.max_services,
        )
        self.book = AlertBook(settings.rules_for, self.namespace)
        self.notifier = WebhookNotifier(settings)
        # A monitor of a consumer-group member owns nothing until Kafka assigns it partitions (it
        # would otherwise judge every service from the index before knowing its share); one used
        # without Kafka (`topics` None) owns everything.
        self.owner = Ownership(topics or [TOPIC_LOGS, TOPIC_METRICS, TOPIC_HEALTH], health_topics, metrics_topics,
                               everything=topics is None)
        self.signals.owns = lambda service: self.owner.owns(STREAM, service)
        self.engine: SearchEngine | None = None
        # Produces stream shares to Kafka ((topic, partition, value) each; set by the shipper): the
        # counts of services whose stream another replica owns, sent on once a tick (shares.py).
        self.forward: Forward | None = None
        self.group = ""  # the consumer group (set by the shipper): only its own shares count
        self.forwarding: asyncio.Task[None] | None = None
        self.forwarded = self.lost = self.misrouted = 0  # records sent on, lost on the way, sent here wrongly
        self.share_offsets: dict[TP, int] = {}  # the newest share merged per partition (redelivery)
        self.capped_logged: set[str] = set()
        # The newest offset observed per owned partition: a partition kept across a rebalance is
        # redelivered from its committed offset, and what was observed already must not count twice.
        self.offsets: dict[tuple[str, int], int] = {}
        # The documents a probe result produced, by its place in Kafka, so a redelivery writes them
        # again (its first batch may have been dropped unfinished) without judging it again.
        self.produced: dict[tuple[str, int, int], list[Doc]] = {}
        # What a tick looks at (evaluate): services touched since the last one, and a heap of
        # (when, service) for those whose conditions can change with time alone.
        self.touched: set[str] = set()
        self.restoring = 0  # takeover restores in progress
        self.due: list[tuple[float, str]] = []
        self.scheduled: dict[str, float] = {}
        self.waiting: set[str] = set()  # quiet services whose silence waits for the shipper to catch up
        self.looked = 0  # services the last tick looked at
        self.refused = Recent()
        self.overflowed = Recent()

    def _new_state(self) -> HealthState:
        return HealthState(self.settings.failures_to_down, self.settings.successes_to_up,
                           self.settings.max_instances_per_service, max_services=self.settings.max_services,
                           max_instances_total=self.settings.max_instances,
                           unknown_after_s=self.settings.unknown_after_s, forget_after_s=self.settings.forget_after_s)

    # ------------------------------------------------------------------ ownership

    def part_of(self, key: Key) -> str | None:
        """What of its service an alert belongs to; None for the pipeline-scoped rules."""
        rule = key[0]
        return HEALTH if rule == "unhealthy" else None if rule in PIPELINE_RULES else STREAM

    def owns_key(self, key: Key) -> bool:
        part = self.part_of(key)
        if part is None:
            return self.owner.leader()
        return self.owner.owns(part, key[1])

    def owns_stream(self, service: str) -> bool:
        """A service's stream signals belong to the owner of its name's partition of the first logs
        topic, whatever partition its records arrive on (their Kafka key decides that, and
        SHIPPER_SERVICE_MAP renames the key): the replicas that read them send their counts there."""
        return self.owner.owns(STREAM, service)

    def _not_owned(self) -> tuple[set[str], set[str], set[Key]]:
        return ({s for s in self.state.services if not self.owner.owns(HEALTH, s)},
                {s for s in self.signals.streams if not self.owns_stream(s)},
                {k for k in self.book.keys() if not self.owns_key(k)})

    async def partitions_revoked(self, revoked: list[TP]) -> None:
        """Services on `revoked` stop being evaluated here. Their alerts' newest events are written
        (and made searchable) before the partitions move, so the next owner restores them as they
        are: an open alert stays open, a resolved one is not resolved again, nothing re-fires.
        Their state is kept until the assignment: an eager rebalance revokes everything and
        usually gives most of it back."""
        self.owner.revoke(revoked)
        await self.flush_shares(time.time())  # counts of this tenure go on before the partitions move
        _, _, keys = self._not_owned()
        handed = [self.book.last_event[k] for k in keys if k in self.book.last_event]
        if handed and self.engine is not None:
            try:
                await asyncio.wait_for(self._write(self.engine, handed), HANDOVER_WITHIN_S)
            except (TimeoutError, EngineUnavailable, EngineRejected) as exc:
                log.warning("could not hand over alert events; the next owner may repeat them",
                            alerts=len(handed), error=type(exc).__name__)

    async def partitions_assigned(self, assigned: list[TP], counts: dict[str, int]) -> None:
        """Drop what another replica owns now; restore from the index the services gained.

        The index only fills in what memory does not hold when the answers are applied: a service
        kept across the rebalance, or one whose records were read meanwhile, keeps its newer state."""
        self.owner.assign(assigned, counts)
        for offsets in (self.offsets, self.share_offsets):
            for tp in [tp for tp in offsets if tp not in self.owner.owned]:
                del offsets[tp]  # a partition regained later starts a new tenure from its committed offset
        health, streams, keys = self._not_owned()
        self.state.drop(health)
        self.signals.drop(streams)
        self.book.drop(keys)
        self.signals.rebalanced()
        if self.engine is None:
            return
        self.restoring += 1  # the new partitions' records are held meanwhile: nothing is caught up
        try:
            await asyncio.wait_for(self._restore(
                self.engine,
                lambda s: self.owner.owns(HEALTH, s) and s not in self.state.services,
                lambda s: self.owns_stream(s) and s not in self.signals.streams,
                lambda k: self.owns_key(k) and k not in self.book.keys()), HANDOVER_WITHIN_S)
        except Exception as exc:  # the services start fresh: better than holding up the group
            log.warning("could not restore the services taken over", error=type(exc).__name__)
        finally:
            self.restoring -= 1
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
        return self.owns_stream(service)

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
        # a restore is rare (start, takeover): everything it may have brought is looked at next tick
        self.touched.update(self.state.services, self.signals.streams, (s for _, s in self.book.open))
        log.info("health state restored", services=len(self.state.services), open_alerts=restored,
                 streams=seeded)

    # ------------------------------------------------------------------ per record

    def state_of(self, service: str) -> str | None:
        return self.state.state_of(service)

    def observe(self, record: dict[str, Any], origin: Origin | None = None) -> list[Doc]:
        if origin is not None:
            tp = (origin.topic, origin.partition)
            if origin.offset <= self.offsets.get(tp, -1):  # redelivered: observed already
                return self.produced.get((*tp, origin.offset), [])
            self.offsets[tp] = origin.offset
        event = record.get("event")
        if not isinstance(event, dict) or event.get("dataset") != DATASET_HEALTH:
            self.signals.observe(record)  # a stream owned elsewhere is counted to be sent on
            return []
        action = event.get("action")
        if action not in ("health-check", REMOVED):
            return []
        service = (record.get("service") or {}).get("name") or "unknown"
        if not self.owner.owns(HEALTH, service):
            return []
        self.touched.add(service)
        node = ((record.get("service") or {}).get("node") or {}).get("name") or service
        when = parse_epoch(record.get("@timestamp")) or time.time()
        # The trigger is the probe result's place in Kafka, so a redelivery derives the same transition ids
        # (the enriched record is no such key: it carries event.ingested); with its Kafka time, because
        # a topic deleted and created again reuses the offsets (issue 20).
        trigger = (f"{origin.topic}/{origin.partition}/{origin.offset}/{origin.timestamp}" if origin is not None
                   else orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode())
        now = time.time()
        if action == REMOVED:
            moves = self.state.remove(service, node, when, "removed by its prober", trigger)
        else:
            status = status_word((record.get("health") or {}).get("status")) or UNHEALTHY
            moves = self.state.observe_probe(service, node, status, when, trigger, seen=now)
        docs = self._transition_docs(moves, record.get("data_stream"))
        if action == REMOVED and service not in self.state.services:
            docs += self._removed(service, now)
        elif any(t["health"]["scope"] == "service" for _, t in docs) and now - when <= self.settings.max_event_delay_s:
            docs += self._judge(service, now)
        if docs and origin is not None:
            if len(self.produced) >= MAX_PRODUCED:
                del self.produced[next(iter(self.produced))]  # the oldest: long committed
            self.produced[(origin.topic, origin.partition, origin.offset)] = docs
        return docs

    def observed_upto(self, topic: str, partition: int) -> int:
        """The newest offset of the partition observed already (-1: none): `observe_counts` takes only later ones."""
        return self.offsets.get((topic, partition), -1)

    def count_prefix(self) -> int:
        return self.signals.count_prefix()

    def observe_counts(self, uptos: Mapping[TP, int], counts: Mapping[tuple[str, str], list[Any]],
                       maybe: Mapping[tuple[str, str, Any, Any], int]) -> None:
        """`observe` of the log records (no probe results) of one batch, counted by the transform's fast
        path (see Signals.observe_counts): those of each partition up to offset `uptos[partition]`."""
        for tp, upto in uptos.items():
            if upto > self.offsets.get(tp, -1):
                self.offsets[tp] = upto
        self.signals.observe_counts(counts, maybe)

    # ------------------------------------------------------------------ stream shares

    def receive_shares(self, messages: Sequence[Message]) -> list[tuple[Message, str]]:
        """Counts another replica read of services whose stream this one owns: merged as if read
        here. Returns the messages that are no valid share, with why (dead-lettered)."""
        refused: list[tuple[Message, str]] = []
        now = time.time()
        for message in messages:
            share = decode(message.value)
            if isinstance(share, str):
                refused.append((message, share))
                continue
            tp = (message.topic, message.partition)
            if share.group != self.group:
                continue  # another consumer group shipping the same topics: its owners are not ours
            if message.offset <= self.share_offsets.get(tp, -1):
                continue  # redelivered: merged already
            self.share_offsets[tp] = message.offset
            for service in share.services:
                part, scale = share.stream(service, self.signals.bucket_s)
                records = sum(part.records.values())
                if not self.owns_stream(service.name):  # the sender's idea of the partitions differs
                    self.misrouted += records
                elif self.signals.merge(service.name, part, now, share.caught_up, scale):
                    self.signals.merged += records
        return refused

    def _outgoing(self, now: float) -> tuple[list[tuple[str, int, bytes]], int]:
        """The counts of services owned elsewhere since the last call, as share messages for their
        owners' partitions, and how many records they hold. A service this replica has come to own
        meanwhile is merged here instead."""
        by_home: dict[TP, dict[str, Stream]] = {}
        lost = 0
        for service, part in self.signals.take_partial().items():
            home = self.owner.home(service)
            if self.owns_stream(service):
                if self.signals.merge(service, part, now):
                    self.signals.counted += sum(part.records.values())
            elif home is None or self.forward is None:
                lost += sum(part.records.values())
            else:
                by_home.setdefault(home, {})[service] = part
        self.lost += lost
        caught_up = self.signals.caught_up_since is not None and not self.restoring
        messages = [(topic, partition, value) for (topic, partition), parts in by_home.items()
                    for value in encode(parts, self.group, self.signals.bucket_s, caught_up, now)]
        return messages, sum(sum(p.records.values()) for parts in by_home.values() for p in parts.values())

    async def _forward(self, messages: list[tuple[str, int, bytes]], records: int) -> None:
        assert self.forward is not None
        try:
            await asyncio.wait_for(self.forward(messages), FORWARD_WITHIN_S)
            self.forwarded += records
        except Exception as exc:  # Kafka refused or did not answer: these counts are lost, not resent twice
            self.lost += records
            log.warning("could not send stream counts to their owners", records=records, error=repr(exc))

    def send_shares(self, now: float) -> None:
        """Once a tick: the counts of services owned elsewhere go to their owners, one send at a time
        (while one is out, the counts wait in the bounded partial map)."""
        if self.forwarding is not None and not self.forwarding.done():
            return
        messages, records = self._outgoing(now)
        if messages:
            self.forwarding = asyncio.create_task(self._forward(messages, records))

    async def flush_shares(self, now: float) -> None:
        """Everything counted for other owners, sent now (a rebalance, a stop), within FORWARD_WITHIN_S."""
        if self.forwarding is not None:
            await asyncio.wait({self.forwarding}, timeout=FORWARD_WITHIN_S)
        messages, records = self._outgoing(now)
        if messages:
            await self._forward(messages, records)

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

    def _removed(self, service: str, now: float) -> list[Doc]:
        """Its last instance was removed by its prober: the service's alerts owned here end now and
        its stream is forgotten (nothing of it fires again until it reports again)."""
        ended = [self.book.end(key, now, alerts.REMOVED, "service removed: its prober removed its last instance")
                 for key in sorted(self.book.open) if key[1] == service]
        self.signals.drop([service])
        return self._announce(ended)

    def no_data_after(self, key: Key) -> float:
        """How long an open alert's rule may be unable to tell before the alert ends (no data)."""
        rule, service = key
        rules = self.settings.rules_for(service)
        if rule == "unhealthy":  # its instances are unknown, then forgotten: nobody reports any more
            return self.settings.forget_after_s
        if rule == "silence":
            return rules.silence_forget_s
        window = {"dead_letter": rules.dead_letter_window_s, "consumer_lag": max(rules.lag_for_s, 60.0)}.get(
            rule, rules.error_window_s)
        return rules.no_data_windows * window

    def _forget_silent(self, service: str, now: float) -> list[Doc]:
        """A service silent for longer than its silence_forget_s: the silence alert ends, the stream
        is dropped (a one-off job is not re-notified every hour for ever)."""
        stream = self.signals.streams.get(service)
        forget = self.settings.rules_for(service).silence_forget_s
        if stream is None or not stream.last_event or now - stream.last_event <= forget:
            return []
        self.signals.drop([service])
        key = ("silence", service)
        if key not in self.book.open:
            return []
        return [self.book.end(key, now, alerts.NO_DATA, f"no data since {format_epoch(stream.last_event)}; "
                                                      f"forgotten after {forget:g}s of silence")]

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

    def service_conditions(self, service: str, now: float) -> dict[Key, Condition]:
        """The per-service rules of one service (those this replica owns)."""
        out: dict[Key, Condition] = {}
        rules = self.settings.rules_for(service)
        checks = (("unhealthy", rules.unhealthy, self.unhealthy),
                  ("error_rate", rules.error_rate, self.signals.error_spike),
                  ("error_ratio", rules.error_ratio, self.signals.error_ratio),
                  ("silence", rules.silence, self.signals.silence))
        for rule, enabled, check in checks:
            key = (rule, service)
            if not self.owns_key(key):
                continue
            if enabled and rule == "error_ratio":
                out[key] = self.signals.error_ratio(service, now, rules, key in self.book.open)
            elif enabled:
                out[key] = check(service, now, rules)
            elif key in self.book.open:
                out[key] = (False, "rule disabled")
        return out

    def pipeline_conditions(self, now: float, pipeline: PipelineStatus) -> dict[Key, Condition]:
        if not self.owner.leader():
            return {}
        rules = self.settings.rules_for(SHIPPER_SERVICE)
        return {
            ("dead_letter", SHIPPER_SERVICE):
                self.signals.dead_letter_growth(now, rules) if rules.dead_letter else (False, "rule disabled"),
            ("consumer_lag", SHIPPER_SERVICE):
                self.signals.consumer_lag(now, pipeline.lag_total, rules) if rules.consumer_lag
                else (False, "rule disabled"),
            ("tracking_cap", SHIPPER_SERVICE):
                self.tracking_cap(now) if rules.tracking_cap else (False, "rule disabled"),
            ("stream_cap", SHIPPER_SERVICE):
                self.stream_cap(now, pipeline.stream_overflow_total) if rules.stream_cap else (False, "rule disabled"),
        }

    def refused_total(self) -> int:
        return self.signals.refused + self.signals.partial_refused + self.state.refused_services \
            + self.state.refused_total

    def tracking_cap(self, now: float) -> Condition:
        """On while services or instances over the global caps were refused in the last CAP_QUIET_S."""
        if not self.refused.moved(self.refused_total(), now):
            return False, "no service or instance refused"
        return True, (f"tracking caps reached: {self.signals.refused} log records of services beyond "
                      f"max_services ({self.settings.max_services}), {self.signals.partial_refused} of services "
                      f"owned by other replicas beyond it within a tick, {self.state.refused_services} probe "
                      f"results of further services not tracked, {self.state.refused_total} results of "
                      f"instances beyond max_instances ({self.settings.max_instances}) refused "
                      "(their records are indexed all the same)")

    def stream_cap(self, now: float, overflowed: int) -> Condition:
        """On while records of new datasets went to the catch-all stream in the last CAP_QUIET_S."""
        if not self.overflowed.moved(overflowed, now):
            return False, "no record sent to the catch-all stream"
        return True, (f"stream cap reached: {overflowed} records of datasets beyond SHIPPER_MAX_STREAMS went to "
                      "the catch-all stream (logs-overflow-<ns> / metrics-overflow-<ns>), their service.name kept")

    def schedule(self, service: str, when: float) -> None:
        if when < self.scheduled.get(service, float("inf")):
            self.scheduled[service] = when
            heapq.heappush(self.due, (when, service))

    def _due(self, now: float) -> set[str]:
        out: set[str] = set()
        while self.due and self.due[0][0] <= now:
            when, service = heapq.heappop(self.due)
            if self.scheduled.get(service) == when:
                del self.scheduled[service]
                out.add(service)
        return out

    def _next_look(self, service: str, now: float) -> None:
        """When a service's conditions can next change without a record of it arriving: its silence
        deadline, the end of a caught-up wait, its open alerts' timers (renotify, flap quiet, no
        data) and, while an alert is open or its records are still in a window, the next bucket."""
        rules = self.settings.rules_for(service)
        times: list[float] = []
        stream = self.signals.streams.get(service)
        if stream is not None and stream.last_event:
            silent_at = stream.last_event + rules.silence_s
            listening = self.signals.listening_since(service)
            if silent_at > now:
                times.append(silent_at)
            elif listening is None:
                self.waiting.add(service)  # looked at again once caught up
            elif now - listening <= rules.silence_s:
                times.append(listening + rules.silence_s)
            times.append(stream.last_event + rules.silence_forget_s)
            if now - stream.first_event < rules.error_window_s and \
                    sum(stream.records.values()) >= rules.error_ratio_min_records:
                times.append(stream.first_event + rules.error_window_s)  # the ratio can tell once a window is watched
        bucket = self.signals.bucket_s
        open_here = [k for k in ((r, service) for r in SERVICE_RULES) if k in self.book.open]
        if open_here:  # windows roll on without records: an open alert may resolve, or end for no data
            times.append((now // bucket + 1) * bucket)
        for key in open_here:
            alert = self.book.open[key]
            if rules.renotify_s > 0:
                times.append(alert.last_notified + rules.renotify_s)
            if alert.clear_since is not None:
                times.append(alert.clear_since + rules.flap_quiet_s)
            if alert.undecided_since is not None:
                times.append(alert.undecided_since + self.no_data_after(key))
        svc = self.state.services.get(service)
        if rules.unhealthy and svc is not None and svc.state == UNHEALTHY \
                and ("unhealthy", service) not in self.book.open:
            times.append(svc.since + rules.unhealthy_for_s)
        # a deadline already past is not looked at again every tick (a renotify due while the rule
        # cannot tell waits for the next bucket, like the alert's other timers)
        if times := [t for t in times if t >= now]:
            self.schedule(service, min(times) + LOOK_AFTER_S)

    def evaluate(self, now: float, pipeline: PipelineStatus) -> list[Doc]:
        """Pure step of `tick`: instance expiry, signals update, conditions, alert lifecycle.

        O(changed), never O(all): a tick looks at the services that had records or probe results
        since the last one, those whose instances expired, and those whose next look is due
        (`_next_look`); never at every service it tracks."""
        owned = None if self.owner.everything else [f"{t}/{p}" for t, p in self.owner.owned]
        was_caught_up = self.signals.caught_up_since
        self.signals.pipeline(now, pipeline.lag_by_partition, pipeline.dead_lettered_total, owned)
        if self.restoring:  # a small lag says nothing while records are held for a restore
            self.signals.rebalanced()
        changed = self.signals.take_dirty() | self.touched
        self.touched = set()
        listening = self.signals.caught_up_since
        moves = [] if listening is None else self.state.expire(
            now, self.settings.unknown_after_s, self.settings.forget_after_s, listening)
        changed.update(m["service"]["name"] for m in moves)
        docs = self._transition_docs(moves)
        if listening is not None and was_caught_up is None and self.waiting:
            for service in self.waiting:  # silence can be judged once caught up for the threshold
                self.schedule(service, listening + self.settings.rules_for(service).silence_s + LOOK_AFTER_S)
            self.waiting = set()
        looked = changed | self._due(now)
        self.looked = len(looked)
        conditions: dict[Key, Condition] = {}
        for service in sorted(looked):
            docs += self._forget_silent(service, now)
            conditions.update(self.service_conditions(service, now))
        conditions.update(self.pipeline_conditions(now, pipeline))
        docs += self.book.evaluate(now, conditions, self.no_data_after)
        self.book.prune(now, HANDOVER_KEEP_S)  # only recent resolutions can be missing from the index
        for service in looked:
            for rule in ("error_rate", "error_ratio"):
                if (rule, service) in self.book.open:
                    self.signals.mark_alerting(service, now, self.settings.rules_for(service).error_window_s)
            self.signals.prune(service, now)
            self._next_look(service, now)
        for service in sorted(self.state.capped - self.capped_logged):
            self.capped_logged.add(service)
            log.warning("instances over the per-service limit refused (logged once per service)", service=service,
                        limit=self.settings.max_instances_per_service)
        return docs

    async def tick(self, now: float, pipeline: PipelineStatus) -> list[Doc]:
        self.send_shares(now)
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
                    "Health results refused: their service already has max_instances_per_service instances, "
                    "or all services together max_instances.",
                    self.state.refused + self.state.refused_total),
            *metric("shipper_health_services_refused_total", "counter",
                    "Records of services beyond max_services, not tracked (still indexed), by what they were.",
                    [({"kind": "logs"}, self.signals.refused), ({"kind": "health"}, self.state.refused_services)]),
            *single("shipper_health_services", "gauge", "Services tracked (stream signals; this replica).",
                    len(self.signals.streams)),
            *metric("shipper_health_stream_records_total", "counter",
                    "Log records counted into the streams this replica owns: read here, or read by another "
                    "replica and received in a stream share.",
                    [({"via": "read"}, self.signals.counted), ({"via": "share"}, self.signals.merged)]),
            *metric("shipper_health_shared_records_total", "counter",
                    "Log records of services whose stream another replica owns: sent on in stream shares, "
                    "refused (more than max_services such services within a tick), lost (Kafka refused the "
                    "share), or received here although this replica does not own their stream.",
                    [({"outcome": "sent"}, self.forwarded), ({"outcome": "refused"}, self.signals.partial_refused),
                     ({"outcome": "lost"}, self.lost), ({"outcome": "misrouted"}, self.misrouted)]),
            *metric("shipper_webhook_deliveries_total", "counter",
                    "Alert events handed to webhooks, by outcome (dropped: queue full, oldest first).",
                    [({"outcome": "delivered"}, delivery.delivered), ({"outcome": "failed"}, delivery.failed),
                     ({"outcome": "dropped"}, delivery.dropped)]),
            *single("shipper_webhook_retries_total", "counter", "Webhook calls retried after an error.",
                    delivery.retried),
        ]

    async def stop(self) -> None:
        await self.notifier.stop()
