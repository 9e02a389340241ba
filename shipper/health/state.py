"""Per-instance health with hysteresis and per-service aggregate; pure, no I/O.

Like Docker's `retries`: an instance goes down only after N consecutive failed probes and comes
back after M good ones, so one blip never flaps. Transition doc ids derive from the record that
triggered them, so a redelivered batch rewrites the same documents instead of duplicating them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = "healthy", "degraded", "unhealthy", "unknown"


@dataclass
class Instance:
    state: str = UNKNOWN
    since: float = 0.0
    fails: int = 0
    oks: int = 0


@dataclass
class HealthState:
    failures_to_down: int = 3
    successes_to_up: int = 1
    instances: dict[tuple[str, str], Instance] = field(default_factory=dict)
    services: dict[str, tuple[str, float]] = field(default_factory=dict)  # service -> (state, since)

    def state_of(self, service: str) -> str | None:
        entry = self.services.get(service)
        return entry[0] if entry else None

    def observe_probe(self, service: str, node: str, ok: bool, when: float, trigger: str) -> list[dict[str, Any]]:
        """Feed one probe result; return transition docs (instance and, if it changed, service scope)."""
        inst = self.instances.setdefault((service, node), Instance(since=when))
        if ok:
            inst.oks, inst.fails = inst.oks + 1, 0
            target = HEALTHY if inst.oks >= self.successes_to_up or inst.state == UNKNOWN else inst.state
        else:
            inst.fails, inst.oks = inst.fails + 1, 0
            target = UNHEALTHY if inst.fails >= self.failures_to_down else inst.state
        out: list[dict[str, Any]] = []
        if target != inst.state:
            reason = f"{inst.fails} consecutive failed probes" if target == UNHEALTHY else f"{inst.oks} good probes"
            prev_inst = when - inst.since
            out.append(transition("instance", service, node, inst.state, target, reason, when, prev_inst, trigger))
            inst.state, inst.since = target, when
            agg = aggregate([i.state for (s, _), i in self.instances.items() if s == service])
            prev, since = self.services.get(service, (UNKNOWN, when))
            if agg != prev:
                why = f"{node} is {target}"
                out.append(transition("service", service, None, prev, agg, why, when, when - since, trigger))
                self.services[service] = (agg, when)
        return out


def aggregate(states: list[str]) -> str:
    """All healthy = healthy, none = unhealthy, some = degraded; unknown instances do not count yet."""
    known = [s for s in states if s != UNKNOWN]
    if not known:
        return UNKNOWN
    good = sum(s == HEALTHY for s in known)
    return HEALTHY if good == len(known) else UNHEALTHY if good == 0 else DEGRADED


def transition(
    scope: str, service: str, node: str | None, frm: str, to: str, reason: str, when: float, prev_s: float, trigger: str
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": hashlib.sha1(f"{trigger}|{scope}|{service}|{node}".encode()).hexdigest(),
        "event": {"kind": "state", "action": "health-transition", "dataset": "elk.health"},
        "health": {"scope": scope, "from": frm, "to": to, "reason": reason,
                   "previous_duration_ms": int(max(prev_s, 0.0) * 1000)},
        "service": {"name": service},
        "when": when,
        "message": f"{service}{'/' + node if node else ''} {frm} -> {to}: {reason}",
    }
    if node:
        doc["service"]["node"] = {"name": node}
    return doc
