"""Records the library writes about itself: metric documents and the output-dropped notice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from collector.contract.ecs import ECS_VERSION
from collector.contract.levels import INFO, WARNING
from collector.contract.timefmt import now_iso
from collector.outputs.base import Notice
from collector.record import Static


def _base(static: Static, level: str, message: str) -> dict[str, Any]:
    return {"@timestamp": now_iso(), "log.level": level, "message": message, "ecs.version": ECS_VERSION,
            "log": static.log_obj("collector"), "service": static.service, "host": static.host,
            "process": static.process}


def metric_document(static: Static, partial: Mapping[str, Any]) -> dict[str, Any]:
    """One metric series (from `REGISTRY.collect()`) as an ECS `event.kind: metric` document."""
    doc = _base(static, INFO, f"metric {partial['metric']['name']}")
    doc["event"] = {"kind": "metric", "dataset": static.dataset}
    doc.update(partial)
    return doc


def drop_notice(static: Static) -> Notice:
    """The record an output writes once it recovers after dropping records."""
    def notice(output: str, dropped: int) -> bytes:
        doc = _base(static, WARNING, f"collector output {output} recovered; {dropped} records were dropped")
        doc["event"] = {"kind": "event", "dataset": static.dataset, "action": "output-dropped"}
        doc["labels"] = {"output": output, "dropped": dropped}
        return orjson.dumps(doc)
    return notice
