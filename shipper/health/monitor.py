"""The health Monitor the shipper plugs in: feeds probe results to the state machine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from shipper.engines.base import SearchEngine
from shipper.health.config import HealthSettings
from shipper.health.restore import apply_hits, restore_query
from shipper.health.state import HealthState
from shipper.monitor import Doc, PipelineStatus


def _when(record: dict[str, Any]) -> float:
    ts = record.get("@timestamp")
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return datetime.now(UTC).timestamp()


class HealthMonitor:
    def __init__(self, settings: HealthSettings, namespace: str = "default") -> None:
        self.state = HealthState(settings.failures_to_down, settings.successes_to_up)
        self.namespace = namespace

    async def start(self, engine: SearchEngine) -> None:
        result = await engine.search(f"logs-elk.health-{self.namespace}", restore_query())
        apply_hits(self.state, result.get("hits", {}).get("hits", []))

    def state_of(self, service: str) -> str | None:
        return self.state.state_of(service)

    def observe(self, record: dict[str, Any]) -> list[Doc]:
        event = record.get("event") or {}
        if event.get("action") != "health-check":
            return []
        service = (record.get("service") or {}).get("name") or "unknown"
        node = ((record.get("service") or {}).get("node") or {}).get("name") or service
        ok = (record.get("health") or {}).get("status") == "healthy"
        # The trigger is the probe record itself, so redelivery derives the same transition ids.
        trigger = orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
        docs: list[Doc] = []
        for t in self.state.observe_probe(service, node, ok, _when(record), trigger):
            doc_id, when = t.pop("_id"), t.pop("when")
            t["@timestamp"] = datetime.fromtimestamp(when, UTC).isoformat()
            t["data_stream"] = {**(record.get("data_stream") or {}), "type": "logs", "dataset": "elk.health"}
            docs.append((doc_id, t))
        return docs

    async def tick(self, now: float, pipeline: PipelineStatus) -> list[Doc]:
        return []

    async def stop(self) -> None:
        return None
