"""Which extra brings which optional package, and the error when one is missing.

The bare install is the logging library with its stdout (and HTTP) output; everything else comes
with an extra (pyproject.toml). Code the library could reach without that extra checks here first,
so a missing package says what to install instead of failing deep inside (e.g. in an output's
worker thread).
"""

from __future__ import annotations

import importlib.util

# for each room: the packages it imports and the extra that brings them
NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "the Kafka output (COLLECTOR_OUTPUTS=kafka)": (("aiokafka",), "kafka"),
    "the ingest API (collector serve)": (("fastapi", "uvicorn", "aiokafka"), "ingest"),
    "the health prober (collector probe)": (("httpx", "aiokafka"), "probe"),
    "the log tailer (collector tail)": (("aiokafka", "cramjam"), "tail"),
    "the OTLP intake (collector otlp)": (("fastapi", "uvicorn", "aiokafka", "opentelemetry.proto"), "otel"),
    "collector.add_health": (("starlette",), "ingest"),
    "the Kibana loader (python -m kibana load)": (("httpx",), "kibana"),
}


def require(what: str) -> None:
    """Raise ImportError naming the extra when a package `what` needs is not installed."""
    modules, extra = NEEDS[what]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"{what} needs {', '.join(missing)}: pip install 'elk-pipeline[{extra}]'",
                          name=missing[0])
