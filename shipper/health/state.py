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
    max_instances: int = 1000
    services: dict[str, Service] = field(default_factory=dict)
    refused: int = 0  # results of instances over the per-service cap
    capped: set[str] = field(default_factory=set)  # services that refused an instance (logged once each)

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
            svc = self.services[service] = Service(since=when)
        inst = svc.instances.get(node)
        if inst is None:
            if len(svc.instances) >= self.max_instances:
                self.refused += 1
                self.capped.add(service)
                return []
            inst = Instance(since=when)
            svc.add(node, inst)
        inst.seen = when if seen is None else seen
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
        if not svc.instances and svc.state == UNKNOWN:
            del self.services[service]
        return out

    def expire(self, now: float, unknown_after_s: float, forget_after_s: float,
               listening_since: float = 0.0) -> list[dict[str, Any]]:
        """Instances silent for unknown_after_s become unknown (they no longer vouch for their service,
        whatever they last said); silent for forget_after_s they are forgotten. Silence counts only
        from `listening_since` (while the shipper was not reading, nobody could be heard)."""
        out: list[dict[str, Any]] = []
        for service, svc in list(self.services.items()):
            for node, inst in list(svc.instances.items()):
                quiet = now - max(inst.seen, listening_since)
                if quiet >= forget_after_s:
                    out += self.remove(service, node, now, f"no result for {quiet:.0f}s",
                                       f"forget|{service}|{node}|{inst.seen}")
                elif quiet >= unknown_after_s and inst.state != UNKNOWN:
                    inst.fails = inst.oks = 0
                    out += self._move(svc, service, node, inst, UNKNOWN, f"no result for {quiet:.0f}s", now,
                                      f"expire|{service}|{node}|{inst.seen}")
        return out

    def restore(self, service: str, node: str | None, state: str, since: float, now: float) -> None:
        """Replay one transition from the index (oldest first); restored instances report within
        the expiry time or become unknown, like any other."""
        svc = self.services.get(service)
        if svc is None:
            svc = self.services[service] = Service(since=since)
        if node is None:
            svc.state, svc.since = state, since
            return
        inst = svc.instances.get(node)
        if inst is None:
            if state == UNKNOWN or len(svc.instances) >= self.max_instances:
                return
            inst = Instance(since=since)
            svc.add(node, inst)
        svc.counts[inst.state] -= 1
        svc.counts[state] += 1
        inst.state, inst.since, inst.seen = state, since, now

    def drop(self, services: set[str]) -> None:
        """Forget services another replica owns now (no transitions: their state moves with them)."""
        for service in services:
            self.services.pop(service, None)


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
