"""elk-pipeline collector: structured logging for services, the HTTP ingest API and the health prober.

Two lines::

    import collector
    collector.configure(service="api-service", environment="production")
    log = collector.get_logger(__name__)
    log.info("user logged in", user_id=42)
"""

from collector.bridge import uvicorn_log_config
from collector.context import (
    bind_context,
    bind_fields,
    current_context,
    parse_traceparent,
    request_context,
    reset_context,
    reset_fields,
)
from collector.health import add_health
from collector.lifecycle import configure, emit_metrics, flush, outputs, shutdown, stats
from collector.logger import Logger, get_logger
from collector.metrics import REGISTRY
from collector.middleware import LoggingMiddleware
from collector.state import ConfigError

counter = REGISTRY.counter
gauge = REGISTRY.gauge
histogram = REGISTRY.histogram

__all__ = [
    "REGISTRY",
    "ConfigError",
    "Logger",
    "LoggingMiddleware",
    "add_health",
    "bind_context",
    "bind_fields",
    "configure",
    "counter",
    "current_context",
    "emit_metrics",
    "flush",
    "gauge",
    "get_logger",
    "histogram",
    "outputs",
    "parse_traceparent",
    "request_context",
    "reset_context",
    "reset_fields",
    "shutdown",
    "stats",
    "uvicorn_log_config",
]
