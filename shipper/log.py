"""The shipper's own logs: one ECS JSON line per event on stdout.

Meant to go through the collector library (`collector.configure` / `get_logger`); until that
is usable, structlog directly, behind these two functions, so the switch is one line each.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from collector.schema import ECS_VERSION


def _ecs(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    out: MutableMapping[str, Any] = {
        "@timestamp": event.pop("timestamp"),
        "log.level": method if method != "exception" else "error",
        "message": event.pop("event"),
        "ecs.version": ECS_VERSION,
        "service.name": "elk-shipper",
    }
    if "exception" in event:  # the traceback stays inside the JSON line, as ECS error.stack_trace
        out["error.stack_trace"] = event.pop("exception")
    out.update(event)
    return out


class _StdlibJson(logging.Formatter):
    """Libraries' stdlib logs (aiokafka, the engine clients) as the same one-line ECS JSON."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "log.level": record.levelname.lower(),
            "message": record.getMessage(),
            "ecs.version": ECS_VERSION,
            "service.name": "elk-shipper",
            "log.logger": record.name,
        }
        if record.exc_info:
            doc["error.stack_trace"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_StdlibJson())
    logging.basicConfig(handlers=[handler], level=logging.WARNING, force=True)
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _ecs,
            structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name).bind(**{"log.logger": name})
