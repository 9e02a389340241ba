"""Rebuild health state at start from the transitions already in the index (as Heartbeat does)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collector.contract.streams import OWN_WRITER, OWN_WRITER_FIELD
from shipper.health.state import HealthState, Instance


def restore_query(size: int = 5000) -> dict[str, Any]:
    """The newest transitions (newest first: reverse them before `apply_hits`)."""
    return {
        "size": size,
        "sort": [{"@timestamp": "desc"}],
        # only what the shipper wrote itself: a record from Kafka cannot carry the marker
        "query": {"bool": {"filter": [{"term": {"event.action": "health-transition"}},
                                      {"term": {OWN_WRITER_FIELD: OWN_WRITER}}]}},
    }


def apply_hits(state: HealthState, hits: list[dict[str, Any]]) -> None:
    """Replay transitions oldest first so the last one per instance/service wins."""
    for hit in hits:
        src = hit.get("_source") or {}
        health, service = src.get("health") or {}, (src.get("service") or {})
        name, to = service.get("name"), health.get("to")
        if not name or not to:
            continue
        when = datetime.fromisoformat(str(src["@timestamp"]).replace("Z", "+00:00")).timestamp()
        if health.get("scope") == "service":
            state.services[name] = (to, when)
        else:
            node = (service.get("node") or {}).get("name") or name
            state.instances[(name, node)] = Instance(state=to, since=when)
