"""The shipper's own logs, through the collector library like any service's: ECS JSON on stdout
(or wherever COLLECTOR_OUTPUTS sends them)."""

from __future__ import annotations

import logging
from typing import Any

import collector

# the engine clients log every request at INFO (one line per bulk would drown the shipper's own),
# and httpx logs whole URLs, which for webhooks can carry tokens
CHATTY = ("opensearch", "elasticsearch", "elastic_transport", "httpx", "httpcore")


def configure(level: str = "info") -> None:
    # the shipper writes its own pipeline metrics (metrics-elk.pipeline); the library's would duplicate them
    collector.configure(service="elk-shipper", level=level, metrics_interval=0)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    return collector.get_logger(name)
