"""Alert lifecycle: one open alert per (rule, service). Pure, no I/O.

Fed once per tick with every rule's condition (True / False / None = cannot tell), it returns the
alert events to write and deliver: `fired` once when a condition becomes true, `renotified` on a
schedule while it stays true, `resolved` when it clears. A rule that keeps switching on and off
(flap_changes activations within flap_window_s) is flapping: its alert stays open through the
flaps and resolves only after flap_quiet_s clear, so a flapping check sends one fired and one
resolved instead of a storm. `restore` rebuilds the open alerts from the alerts stream so a
restart neither re-fires nor forgets them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from collector.contract.streams import DATASET_ALERTS, OWN_WRITER, OWN_WRITER_FIELD, is_own_written
from collector.contract.timefmt import format_epoch, parse_epoch
from shipper.health.config import RuleSettings

# rule id -> (name, severity)
RULES: dict[str, tuple[str, str]] = {
    "unhealthy": ("Service unhealthy", "critical"),
    "error_rate": ("Error-rate spike", "warning"),
    "error_ratio": ("Error ratio over limit", "warning"),
    "silence": ("Service stopped logging", "warning"),
    "dead_letter": ("Dead letters growing", "warning"),
    "consumer_lag": ("Shipper consumer lag over limit", "warning"),
    "tracking_cap": ("Health tracking cap reached", "warning"),
    "stream_cap": ("Data stream cap reached", "warning"),
}

# why a resolved alert ended (alert.resolution)
RECOVERED, REMOVED, NO_DATA, RULE_DISABLED = "recovered", "service_removed", "no_data", "rule_disabled"

Key = tuple[str, str]  # (rule id, service)
Condition = tuple[bool | None, str]  # (active, reason)


@dataclass
class OpenAlert:
    alert_id: str
    started: float
    last_notified: float
    renotified: int = 0
    reason: str = ""
    clear_since: float | None = None  # a flapping alert's condition has been clear since
    undecided_since: float | None = None  # its rule has not been able to tell since


@dataclass
class AlertBook:
    rules_for: Callable[[str], RuleSettings]
    namespace: str = "default"
    open: dict[Key, OpenAlert] = field(default_factory=dict)
    active: dict[Key, bool] = field(default_factory=dict)
    activations: dict[Key, list[float]] = field(default_factory=dict)
    # the newest event per key, re-written on a handover so the next owner finds it in the index
    last_event: dict[Key, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    resolved_at: dict[Key, float] = field(default_factory=dict)  # in the order they resolved

    def flapping(self, key: Key, now: float, rules: RuleSettings) -> bool:
        times = [t for t in self.activations.get(key, []) if now - t <= rules.flap_window_s]
        self.activations[key] = times
        return len(times) >= rules.flap_changes

    def evaluate(self, now: float, conditions: dict[Key, Condition],
                 no_data_after: Callable[[Key], float] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Returns (doc id, alert event) for every lifecycle step this tick. An open alert whose
        condition has been None ("cannot tell") for `no_data_after(key)` seconds ends (no_data)."""
        out: list[tuple[str, dict[str, Any]]] = []
        for key, (active, reason) in conditions.items():
            alert = self.open.get(key)
            if active is None:
                if alert is not None and no_data_after is not None:
                    if alert.undecided_since is None:
                        alert.undecided_since = now
                    elif now - alert.undecided_since >= no_data_after(key):
                        out.append(self.end(key, now, NO_DATA, f"no data since {format_epoch(alert.undecided_since)}"
                                                               f" ({reason})"))
                continue
            if alert is not None:
                alert.undecided_since = None
            rules = self.rules_for(key[1])
            was = self.active.get(key, key in self.open)
            self.active[key] = active
            if active and not was:
                self.activations.setdefault(key, []).append(now)
            flapping = self.flapping(key, now, rules)
            alert = self.open.get(key)
            if active:
                if alert is None:
                    alert_id = hashlib.sha1(f"{key[0]}|{key[1]}|{now}".encode()).hexdigest()[:20]
                    alert = self.open[key] = OpenAlert(alert_id, started=now, last_notified=now, reason=reason)
                    out.append(self.event(key, alert, "fired", now, reason, flapping))
                else:
                    alert.clear_since = None
                    alert.reason = reason
                    if rules.renotify_s > 0 and now - alert.last_notified >= rules.renotify_s:
                        alert.renotified += 1
                        alert.last_notified = now
                        out.append(self.event(key, alert, "renotified", now, reason, flapping))
            elif alert is not None:
                if flapping:
                    alert.clear_since = alert.clear_since if alert.clear_since is not None else now
                    if now - alert.clear_since < rules.flap_quiet_s:
                        continue
                del self.open[key]
                resolution = RULE_DISABLED if reason == "rule disabled" else RECOVERED
                out.append(self.event(key, alert, "resolved", now, reason, flapping, resolution))
        for doc_id, doc in out:
            self._remember(now, (doc["rule"]["id"], doc["service"]["name"]), (doc_id, doc))
        return out

    def _remember(self, now: float, key: Key, event: tuple[str, dict[str, Any]]) -> None:
        self.last_event[key] = event
        self.resolved_at.pop(key, None)
        if event[1]["event"]["action"] == "resolved":
            self.resolved_at[key] = now

    def prune(self, now: float, keep_s: float) -> None:
        """Forget the newest event of alerts resolved more than keep_s ago (oldest first, so a tick
        touches only those whose time has come)."""
        for key, when in list(self.resolved_at.items()):
            if now - when <= keep_s:
                break
            del self.resolved_at[key]
            if key not in self.open:
                self.last_event.pop(key, None)

    def end(self, key: Key, now: float, resolution: str, reason: str) -> tuple[str, dict[str, Any]]:
        """Resolve an open alert at once, whatever its condition or flapping: its service was removed,
        or its rule has had nothing to judge by for too long."""
        alert = self.open.pop(key)
        self.active.pop(key, None)
        self.activations.pop(key, None)
        doc = self.event(key, alert, "resolved", now, reason, False, resolution)
        self._remember(now, key, doc)
        return doc

    def drop(self, keys: Iterable[Key]) -> list[tuple[str, dict[str, Any]]]:
        """Forget alerts another replica owns now, neither resolving nor firing anything; returns
        their newest events (for the new owner to find)."""
        handed: list[tuple[str, dict[str, Any]]] = []
        for key in keys:
            self.open.pop(key, None)
            self.active.pop(key, None)
            self.activations.pop(key, None)
            last = self.last_event.pop(key, None)
            self.resolved_at.pop(key, None)
            if last is not None:
                handed.append(last)
        return handed

    def keys(self) -> set[Key]:
        return set(self.open) | set(self.active) | set(self.last_event)

    def event(self, key: Key, alert: OpenAlert, action: str, now: float, reason: str,
              flapping: bool, resolution: str = RECOVERED) -> tuple[str, dict[str, Any]]:
        rule, service = key
        name, severity = RULES[rule]
        resolved = action == "resolved"
        body: dict[str, Any] = {
            "id": alert.alert_id, "state": "resolved" if resolved else "open", "severity": severity,
            "started": format_epoch(alert.started), "reason": reason, "flapping": flapping,
            "renotified": alert.renotified,
        }
        if resolved:
            body["resolved"] = format_epoch(now)
            body["duration_ms"] = int((now - alert.started) * 1000)
            body["resolution"] = resolution
        doc: dict[str, Any] = {
            "@timestamp": format_epoch(now),
            "event": {"kind": "alert", "action": action, "dataset": DATASET_ALERTS},
            "rule": {"id": rule, "name": name},
            "alert": body,
            "service": {"name": service},
            "message": f"[{action}] {name}: {service}: {reason}",
            "data_stream": {"type": "logs", "dataset": DATASET_ALERTS, "namespace": self.namespace},
        }
        suffix = f"renotified-{alert.renotified}" if action == "renotified" else action
        return f"{alert.alert_id}-{suffix}", doc

    def restore(self, hits: list[dict[str, Any]], wanted: Callable[[Key], bool] = lambda key: True) -> int:
        """Latest event per (rule, service), newest first in `hits`; open ones become open again."""
        seen: set[Key] = set(self.open)
        for hit in hits:
            src = hit.get("_source") or {}
            if not is_own_written(src):  # the query's term also matches an array holding the marker
                continue
            rule = (src.get("rule") or {}).get("id")
            service = (src.get("service") or {}).get("name")
            alert = src.get("alert") or {}
            if rule not in RULES or not isinstance(service, str) or (rule, service) in seen \
                    or not wanted((rule, service)):
                continue
            seen.add((rule, service))
            if (src.get("event") or {}).get("action") == "resolved" or not alert.get("id"):
                continue
            started = parse_epoch(alert.get("started")) or parse_epoch(src.get("@timestamp")) or 0.0
            last = parse_epoch(src.get("@timestamp")) or started
            renotified = int(alert.get("renotified", 0) or 0)
            self.open[(rule, service)] = OpenAlert(str(alert["id"]), started, last, renotified,
                                                   str(alert.get("reason", "")))
            self.active[(rule, service)] = True
        return len(self.open)


def restore_query(size: int = 5000) -> dict[str, Any]:
    """The newest alert events, whatever their age: an alert restored is judged again and ends by
    its rules (recovered, removed, no data), never by falling out of a time range unresolved."""
    return {
        "size": size,
        "sort": [{"@timestamp": "desc"}],
        "query": {"bool": {"filter": [{"term": {"event.kind": "alert"}}, {"term": {OWN_WRITER_FIELD: OWN_WRITER}}]}},
    }
