"""elk-pipeline collector: structured logging for services, the HTTP ingest API and the health prober.

Two lines::

    import collector
    collector.configure(service="api-service", environment="production")
    log = collector.get_logger(__name__)
    log.info("user logged in", user_id=42)

The names below (and the submodules, e.g. `collector.health.add_health`) are loaded on first use
(PEP 562): a process that only needs `collector.contract` or one output does not pay for the
settings model, pydantic-settings and the web helpers at start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# public name -> the module that defines it (`counter` & co. are methods of metrics.REGISTRY)
_HOME = {
    "uvicorn_log_config": "bridge",
    **dict.fromkeys(("bind_context", "bind_fields", "current_context", "parse_traceparent", "request_context",
                     "reset_context", "reset_fields"), "context"),
    "add_health": "health",
    **dict.fromkeys(("configure", "emit_metrics", "flush", "outputs", "shutdown", "stats"), "lifecycle"),
    "Logger": "logger",
    "get_logger": "logger",
    **dict.fromkeys(("REGISTRY", "counter", "gauge", "histogram"), "metrics"),
    "LoggingMiddleware": "middleware",
    "ConfigError": "state",
}

# `outputs` is both the function above and the subpackage collector/outputs/. Importing a subpackage
# the first time binds it to that name in this package, so it is imported now (an empty __init__)
# and the name dropped again: `collector.outputs` stays the function, whatever is imported later.
import_module(f"{__name__}.outputs")
globals().pop("outputs")


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any name as `collector.<name>: Any`

    def __getattr__(name: str) -> Any:
        home = _HOME.get(name)
        if home is not None:
            module = import_module(f"{__name__}.{home}")
            owner = module.REGISTRY if name in ("counter", "gauge", "histogram") else module
            value = getattr(owner, name)
        elif name.startswith("__"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        else:  # a submodule used as an attribute, as the README does: `collector.health.add_health`
            try:
                value = import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
                raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        globals()[name] = value  # once: later lookups do not come here
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
