"""The shipper's own logs: one ECS JSON line per event on stdout."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
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
    out.update(event)
    return out


def configure(level: str = "info") -> None:
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
