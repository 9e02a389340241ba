"""Per-instance health with hysteresis and a per-service aggregate; pure, no I/O.

Like Docker's `retries`: an instance goes down only after N consecutive failed probes and comes
back after M good ones, so one blip never flaps. A probe result says healthy, degraded or
unhealthy (collector.contract.health); degraded counts as answering for the hysteresis, and a
service with a degraded instance is degraded.

Each service keeps how many of its instances are in each state, updated on every instance
transition, so the cost of a transition does not grow with the number of instances. Instances
that stop reporting expire (unknown, then forgotten), an instance announced as removed leaves at
once, and a service holds at most `max_instances` instances (the rest are refused and counted):
any ingest token can post health results with arbitrary node names.

Transition doc ids derive from the record that triggered them, so a redelivered batch rewrites
the same documents instead of duplicating them.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from collector.contract.health import DEGRADED, HEALTHY, UNHEALTHY, UNKNOWN, is_up
from collector.contract.streams import DATASET_HEALTH

__all__ = ["DEGRADED", "HEALTHY", "UNHEALTHY", "UNKNOWN", "HealthState", "Instance", "Service", "aggregate"]


@dataclass
class Instance:
    state: str = UNKNOWN
    since: float = 0.0
    fails: int = 0
    oks: int = 0
    seen: float = 0.0  # when its newest result was processed (the shipper's clock): expiry runs on it
    due: float = 0.0  # the deadline of its live entry in the expiry heap (others are stale)
    # the time (prober's clock) of the transition restored from the index: a probe result older than
    # it is already in that state (a new owner replays its partition from the committed offset)
    restored: float = 0.0


@dataclass
class Service:
    state: str = UNKNOWN
    since: float = 0.0
    instances: dict[str, Instance] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # instance state -> instances in it

    def add(self, node: str, inst: Instance) -> None:
        self.instances[node] = inst
        self.counts[inst.state] += 1

    def aggregate(self) -> str:
        known = len(self.instances) - self.counts[UNKNOWN]
        if known <= 0:
            return UNKNOWN
        healthy, up = self.counts[HEALTHY], self.counts[HEALTHY] + self.counts[DEGRADED]
        return HEALTHY if healthy == known else UNHEALTHY if up == 0 else DEGRADED


def aggregate(states: list[str]) -> str:
    """All healthy = healthy, none answering = unhealthy, otherwise degraded; unknown ones do not count."""
    svc = Service()
    for n, state in enumerate(states):
        svc.add(str(n), Instance(state=state))
    return svc.aggregate()


@dataclass
class HealthState:
    failures_to_down: int = 3
    successes_to_up: int = 1
    max_instances: int = 1000  # per service
    max_services: int = 1_000_000
    max_instances_total: int = 1_000_000
    unknown_after_s: float = 10.0  # the latest expiry thresholds (expire() is given them)
    forget_after_s: float = 600.0
    services: dict[str, Service] = field(default_factory=dict)
    refused: int = 0  # results of instances over the per-service cap
    refused_services: int = 0  # results of services over max_services
    refused_total: int = 0  # results of instances over max_instances_total
    instances_total: int = 0
    capped: set[str] = field(default_factory=set)  # services that refused an instance (logged once each)
    # (deadline, sequence, service, node, instance): when each instance is next looked at for expiry,
    # so a tick touches the instances whose time has come, not all of them
    expiry: list[tuple[float, int, str, str, Instance]] = field(default_factory=list)
    _seq: int = 0

    def _schedule(self, service: str, node: str, inst: Instance, deadline: float) -> None:
        inst.due = deadline
        self._seq += 1
        heapq.heappush(self.expiry, (deadline, self._seq, service, node, inst))

    def _add(self, svc: Service, service: str, node: str, inst: Instance) -> None:
        svc.add(node, inst)
        self.instances_total += 1
        self._schedule(service, node, inst, inst.seen + self.unknown_after_s)

    def state_of(self, service: str) -> str | None:
        svc = self.services.get(service)
        return svc.state if svc is not None and svc.state != UNKNOWN else None

    def instance(self, service: str, node: str) -> Instance | None:
        svc = self.services.get(service)
        return svc.instances.get(node) if svc is not None else None

    def observe_probe(self, service: str, node: str, status: str, when: float, trigger: str,
                      seen: float | None = None) -> list[dict[str, Any]]:
        """Feed one probe result (healthy, degraded or unhealthy); return the transition docs."""
        svc = self.services.get(service)
        if svc is None:
            if len(self.services) >= self.max_services:
                self.refused_services += 1
                return []
            svc = self.services[service] = Service(since=when)
        inst = svc.instances.get(node)
        if inst is None:
            if len(svc.instances) >= self.max_instances:
                self.refused += 1
                self.capped.add(service)
                return []
            if self.instances_total >= self.max_instances_total:
                self.refused_total += 1
                return []
            inst = Instance(since=when, seen=when if seen is None else seen)
            self._add(svc, service, node, inst)
        elif when < inst.restored:
            return []  # replayed from before the restored transition: counted in it already
        inst.seen = when if seen is None else seen
        if inst.state == UNKNOWN and inst.due > inst.seen + self.unknown_after_s:
            self._schedule(service, node, inst, inst.seen + self.unknown_after_s)  # back: expires sooner again
        if is_up(status):
            inst.oks, inst.fails = inst.oks + 1, 0
            target = status if inst.oks >= self.successes_to_up or inst.state in (UNKNOWN, HEALTHY, DEGRADED) \
                else inst.state
        else:
            inst.fails, inst.oks = inst.fails + 1, 0
            target = UNHEALTHY if inst.fails >= self.failures_to_down else inst.state
        if target == inst.state:
            return []
        if target == UNHEALTHY:
            reason = f"{inst.fails} consecutive failed probes"
        else:
            reason = f"{inst.oks} good probes" + (" (degraded)" if target == DEGRADED else "")
        return self._move(svc, service, node, inst, target, reason, when, trigger)

    def _move(self, svc: Service, service: str, node: str, inst: Instance, target: str, reason: str,
              when: float, trigger: str) -> list[dict[str, Any]]:
        """Instance `node` goes to `target`; the service aggregate follows (O(1): from the counts)."""
        frm = inst.state
        out = [transition("instance", service, node, frm, target, reason, when, when - inst.since, trigger)]
        svc.counts[frm] -= 1
        svc.counts[target] += 1
        inst.state, inst.since = target, when
        agg = svc.aggregate()
        if agg != svc.state:
            why = f"{node} is {target}"
            out.append(transition("service", service, None, svc.state, agg, why, when, when - svc.since, trigger))
            svc.state, svc.since = agg, when
        return out

    def remove(self, service: str, node: str, when: float, reason: str, trigger: str) -> list[dict[str, Any]]:
        """An instance that is gone for good (removed from the probe targets, container removed)."""
        svc = self.services.get(service)
        inst = svc.instances.get(node) if svc is not None else None
        if svc is None or inst is None:
            return []
        out = self._move(svc, service, node, inst, UNKNOWN, reason, when, trigger) if inst.state != UNKNOWN else []
        del svc.instances[node]
        svc.counts[UNKNOWN] -= 1
        self.instances_total -= 1
        if not svc.instances and svc.state == UNKNOWN:
            del self.services[service]
        return out

    def expire(self, now: float, unknown_after_s: float, forget_after_s: float,
               listening_since: float = 0.0) -> list[dict[str, Any]]:
        """Instances silent for unknown_after_s become unknown (they no longer vouch for their service,
        whatever they last said); silent for forget_after_s they are forgotten. Silence counts only
        from `listening_since` (while the shipper was not reading, nobody could be heard)."""
        self.unknown_after_s, self.forget_after_s = unknown_after_s, forget_after_s
        out: list[dict[str, Any]] = []
        heap = self.expiry
        while heap and heap[0][0] <= now:
            deadline, _, service, node, inst = heapq.heappop(heap)
            svc = self.services.get(service)
            if svc is None or svc.instances.get(node) is not inst or inst.due != deadline:
                continue  # gone, replaced, or rescheduled since
            since = max(inst.seen, listening_since)
            quiet = now - since
            if quiet >= forget_after_s:
                out += self.remove(service, node, now, f"no result for {quiet:.0f}s",
                                   f"forget|{service}|{node}|{inst.seen}")
                continue
            if quiet >= unknown_after_s and inst.state != UNKNOWN:
                inst.fails = inst.oks = 0
                out += self._move(svc, service, node, inst, UNKNOWN, f"no result for {quiet:.0f}s", now,
                                  f"expire|{service}|{node}|{inst.seen}")
            after = forget_after_s if inst.state == UNKNOWN else unknown_after_s
            self._schedule(service, node, inst, max(since + after, now + 1e-3))
        return out

    def restore(self, service: str, node: str | None, state: str, since: float, now: float) -> None:
        """Replay one transition from the index (oldest first); restored instances report within
        the expiry time or become unknown, like any other."""
        svc = self.services.get(service)
        if svc is None:
            if len(self.services) >= self.max_services:
                return
            svc = self.services[service] = Service(since=since)
        if node is None:
            svc.state, svc.since = state, since
            return
        inst = svc.instances.get(node)
        if inst is None:
            if state == UNKNOWN or len(svc.instances) >= self.max_instances \
                    or self.instances_total >= self.max_instances_total:
                return
            inst = Instance(since=since, seen=now)
            self._add(svc, service, node, inst)
        svc.counts[inst.state] -= 1
        svc.counts[state] += 1
        inst.state, inst.since, inst.seen, inst.restored = state, since, now, since
        self._schedule(service, node, inst, now + self.unknown_after_s)

    def drop(self, services: set[str]) -> None:
        """Forget services another replica owns now (no transitions: their state moves with them)."""
        for service in services:
            svc = self.services.pop(service, None)
            if svc is not None:
                self.instances_total -= len(svc.instances)  # their expiry entries go stale


def transition(
    scope: str, service: str, node: str | None, frm: str, to: str, reason: str, when: float, prev_s: float, trigger: str
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": hashlib.sha1(f"{trigger}|{scope}|{service}|{node}".encode()).hexdigest(),
        "event": {"kind": "state", "action": "health-transition", "dataset": DATASET_HEALTH},
        "health": {"scope": scope, "from": frm, "to": to, "reason": reason,
                   "previous_duration_ms": int(max(prev_s, 0.0) * 1000)},
        "service": {"name": service},
        "when": when,
        "message": f"{service}{'/' + node if node else ''} {frm} -> {to}: {reason}",
    }
    if node:
        doc["service"]["node"] = {"name": node}
    return doc
