"""The process-wide state of the library and `emit`, the one path every record takes.

A log call: level check (in the logger) -> `record.build` (ECS dict, redaction, context) ->
`orjson.dumps` -> `Output.submit` of each output (a deque append). Nothing on that path does I/O
or raises.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import orjson

from collector.contract.levels import INFO, LEVEL_NUMBERS
from collector.record import Static, build
from collector.redact import safe_text

if TYPE_CHECKING:
    from collector.bridge import BridgeHandler
    from collector.config import CollectorSettings
    from collector.lifecycle import MetricsEmitter
    from collector.outputs.base import Output

NON_STR_KEYS = orjson.OPT_NON_STR_KEYS


class ConfigError(ValueError):
    """Invalid collector settings; the message names each offending setting and its env var."""


class State:
    """Set by configure(), cleared by shutdown(); read without a lock on the hot path."""

    def __init__(self) -> None:
        self.settings: CollectorSettings | None = None
        self.static: Static | None = None
        self.outputs: tuple[Output, ...] = ()
        # the outputs of the last shutdown, so stats() still reports what they delivered
        self.retired: tuple[Output, ...] = ()
        self.min_level = LEVEL_NUMBERS[INFO]
        self.internal_errors = 0
        self.emitter: MetricsEmitter | None = None
        self.handler: BridgeHandler | None = None
        self.lock = threading.RLock()


STATE = State()


def emit(logger_name: str, level: str, message: Any, fields: dict[str, Any]) -> None:
    """Build, render and hand one record to every output (structlog-style loggers and the stdlib bridge)."""
    try:
        static = STATE.static
        if static is None:
            _autoconfigure()
            static = STATE.static
            assert static is not None
        rec = build(static, logger_name, level, message, fields)
        try:
            data = orjson.dumps(rec, default=safe_text)
        except TypeError:  # non-str dict keys: the option doubles the cost, so only on demand
            data = orjson.dumps(rec, default=safe_text, option=NON_STR_KEYS)
        for out in STATE.outputs:
            out.submit(data)
    except Exception:
        STATE.internal_errors += 1  # a log call never raises into the application


def _autoconfigure() -> None:
    # a log call before configure(): set up from the COLLECTOR_* environment (lifecycle imports us)
    from collector.lifecycle import configure

    with STATE.lock:
        if STATE.static is None:
            configure()
