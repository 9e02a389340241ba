"""Rebuild health state from the transitions already in the index (as Heartbeat does): at start,
and for the services a replica takes over on a rebalance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.contract.streams import OWN_WRITER, OWN_WRITER_FIELD, is_own_written
from collector.contract.timefmt import parse_epoch
from shipper.health.state import HealthState


def restore_query(size: int = 5000) -> dict[str, Any]:
    """The newest transitions (newest first: reverse them before `apply_hits`)."""
    return {
        "size": size,
        "sort": [{"@timestamp": "desc"}],
        # only what the shipper wrote itself: a record from Kafka cannot carry the marker
        "query": {"bool": {"filter": [{"term": {"event.action": "health-transition"}},
                                      {"term": {OWN_WRITER_FIELD: OWN_WRITER}}]}},
    }


def apply_hits(state: HealthState, hits: list[dict[str, Any]], now: float,
               wanted: Callable[[str], bool] = lambda service: True) -> None:
    """Replay transitions oldest first so the last one per instance/service wins. `wanted` is asked
    once per service, before any of its transitions is applied (asked again after the first, "not
    in memory yet" was no longer true and only the oldest transition was restored)."""
    decided: dict[str, bool] = {}
    for hit in hits:
        src = hit.get("_source") or {}
        if not is_own_written(src):  # the query's term also matches an array holding the marker
            continue
        health, service = src.get("health") or {}, (src.get("service") or {})
        name, to = service.get("name"), health.get("to")
        when = parse_epoch(src.get("@timestamp"))
        if not isinstance(name, str) or not isinstance(to, str) or when is None:
            continue
        take = decided.get(name)
        if take is None:
            take = decided[name] = wanted(name)
        if not take:
            continue
        node = None if health.get("scope") == "service" else str((service.get("node") or {}).get("name") or name)
        state.restore(name, node, to, when, now)
