"""configure(), get_logger(), the stdlib bridge and shutdown: one pipeline for every record.

A log call: level check -> `record.build` (ECS dict, redaction, context) -> `orjson.dumps` ->
`Output.submit` of each output (a deque append). Nothing on that path does I/O or raises.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from collector.config import LEVELS, CollectorSettings
from collector.contract.ecs import ECS_VERSION
from collector.contract.timefmt import now_iso
from collector.metrics import REGISTRY
from collector.outputs.base import MemoryOutput, MetricBytes, Output
from collector.record import Static, build
from collector.redact import Redactor

_OPTS = orjson.OPT_NON_STR_KEYS
_STDLIB_LEVELS = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}


class ConfigError(ValueError):
    """Invalid collector settings; the message names each offending setting and its env var."""


class _State:
    def __init__(self) -> None:
        self.settings: CollectorSettings | None = None
        self.static: Static | None = None
        self.outputs: tuple[Output, ...] = ()
        self.min_level = 20
        self.internal_errors = 0
        self.emitter: _MetricsEmitter | None = None
        self.handler: BridgeHandler | None = None
        self.lock = threading.RLock()


STATE = _State()


def emit(logger_name: str, level: str, message: Any, fields: dict[str, Any]) -> None:
    """The one path every record takes (structlog-style loggers and the stdlib bridge)."""
    try:
        static = STATE.static
        if static is None:
            _autoconfigure()
            static = STATE.static
            assert static is not None
        rec = build(static, logger_name, level, message, fields)
        try:
            data = orjson.dumps(rec, default=str)
        except TypeError:  # non-str dict keys: the option doubles the cost, so only on demand
            data = orjson.dumps(rec, default=str, option=_OPTS)
        for out in STATE.outputs:
            out.submit(data)
    except Exception:
        STATE.internal_errors += 1  # a log call never raises into the application


def _autoconfigure() -> None:
    with STATE.lock:
        if STATE.static is None:
            configure()


# ---------------------------------------------------------------------- structlog-based logger


class Logger(structlog.BoundLoggerBase):
    """A structlog bound logger (bind/new/unbind) whose methods take the fast pipeline path.

    `self._logger` is the logger name; bound context is merged under the call's fields.
    """

    def _log(self, level: str, event: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        if args:
            try:
                event = event % args
            except Exception:
                event = f"{event} {args!r}"
        if self._context:
            kw = {**self._context, **kw}
        emit(self._logger, level, event, kw)

    def debug(self, event: Any = "", *args: Any, **kw: Any) -> None:
        if STATE.min_level <= 10:
            if args or self._context:
                self._log("debug", event, args, kw)
            else:
                emit(self._logger, "debug", event, kw)

    def info(self, event: Any = "", *args: Any, **kw: Any) -> None:
        if STATE.min_level <= 20:
            if args or self._context:
                self._log("info", event, args, kw)
            else:
                emit(self._logger, "info", event, kw)

    def warning(self, event: Any = "", *args: Any, **kw: Any) -> None:
        if STATE.min_level <= 30:
            if args or self._context:
                self._log("warning", event, args, kw)
            else:
                emit(self._logger, "warning", event, kw)

    warn = warning

    def error(self, event: Any = "", *args: Any, **kw: Any) -> None:
        if STATE.min_level <= 40:
            if args or self._context:
                self._log("error", event, args, kw)
            else:
                emit(self._logger, "error", event, kw)

    def exception(self, event: Any = "", *args: Any, **kw: Any) -> None:
        if STATE.min_level <= 40:
            kw.setdefault("exc_info", True)
            self._log("error", event, args, kw)

    def critical(self, event: Any = "", *args: Any, **kw: Any) -> None:
        if STATE.min_level <= 50:
            if args or self._context:
                self._log("critical", event, args, kw)
            else:
                emit(self._logger, "critical", event, kw)

    fatal = critical

    def log(self, level: int | str, event: Any = "", *args: Any, **kw: Any) -> None:
        levelno = LEVELS.get(level, 20) if isinstance(level, str) else level
        if STATE.min_level <= levelno:
            self._log(_STDLIB_LEVELS.get(levelno, "info"), event, args, kw)


def get_logger(name: str | None = None, **initial: Any) -> Logger:
    """A logger for `name` (usually `__name__`). Safe to call before configure()."""
    return Logger(name or "root", [], initial)


# ---------------------------------------------------------------------- stdlib bridge

_BASE_ATTRS = frozenset(logging.LogRecord("x", 20, "x", 1, "x", None, None).__dict__) | {"message", "asctime"}
_BASE_LEN = len(logging.LogRecord("x", 20, "x", 1, "x", None, None).__dict__)


class BridgeHandler(logging.Handler):
    """Routes stdlib `logging` records (uvicorn, SQLAlchemy, any library) into the same pipeline."""

    def handle(self, record: logging.LogRecord) -> bool:
        # no handler lock: the pipeline is thread-safe and must not serialize callers
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            attrs = record.__dict__
            fields: dict[str, Any] = (
                {k: attrs[k] for k in attrs.keys() - _BASE_ATTRS} if len(attrs) > _BASE_LEN else {}
            )
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            message = record.msg if not record.args and type(record.msg) is str else record.getMessage()
            level = _STDLIB_LEVELS.get(record.levelno) or record.levelname.lower()
            emit(record.name, level, message, fields)
        except Exception:
            STATE.internal_errors += 1


def uvicorn_log_config() -> dict[str, Any]:
    """`uvicorn.run(..., log_config=collector.uvicorn_log_config())`: uvicorn's records go to us."""
    loggers = {name: {"handlers": [], "propagate": True}
               for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    return {"version": 1, "disable_existing_loggers": False, "loggers": loggers}


def _install_bridge(level: int) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, BridgeHandler):
            root.removeHandler(h)
    handler = BridgeHandler(level)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    STATE.handler = handler


# ---------------------------------------------------------------------- records made by the library


def _base(static: Static, level: str, message: str) -> dict[str, Any]:
    return {"@timestamp": now_iso(), "log.level": level, "message": message, "ecs.version": ECS_VERSION,
            "log": static.log_obj("collector"), "service": static.service, "host": static.host,
            "process": static.process}


def metric_document(static: Static, partial: Mapping[str, Any]) -> dict[str, Any]:
    doc = _base(static, "info", f"metric {partial['metric']['name']}")
    doc["event"] = {"kind": "metric", "dataset": static.dataset}
    doc.update(partial)
    return doc


def _drop_notice(static: Static) -> Any:
    def notice(output: str, dropped: int) -> bytes:
        doc = _base(static, "warning", f"collector output {output} recovered; {dropped} records were dropped")
        doc["event"] = {"kind": "event", "dataset": static.dataset, "action": "output-dropped"}
        doc["labels"] = {"output": output, "dropped": dropped}
        return orjson.dumps(doc)
    return notice


class _MetricsEmitter(threading.Thread):
    def __init__(self, interval: float):
        super().__init__(name="collector-metrics", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            emit_metrics()


def emit_metrics() -> int:
    """Emit one document per metric series now; returns how many."""
    static = STATE.static
    if static is None:
        return 0
    docs = REGISTRY.collect()
    for partial in docs:
        try:
            data = MetricBytes(orjson.dumps(metric_document(static, partial), default=str, option=_OPTS))
        except Exception:
            STATE.internal_errors += 1
            continue
        for out in STATE.outputs:
            out.submit(data)
    return len(docs)


# ---------------------------------------------------------------------- configure / shutdown


def _settings(kwargs: dict[str, Any]) -> CollectorSettings:
    try:
        return CollectorSettings(**kwargs)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"COLLECTOR_{field.upper()}" if err["loc"] else "COLLECTOR_*"
            problems.append(f"{field} ({env}): {err['msg']}")
        raise ConfigError("invalid collector configuration: " + "; ".join(problems)) from None


def _make_output(kind: str, s: CollectorSettings, static: Static) -> Output:
    common: dict[str, Any] = dict(queue_size=s.queue_size, overflow=s.overflow, batch_size=s.batch_size,
                                  backoff_initial=s.backoff_initial, backoff_max=s.backoff_max,
                                  notice=_drop_notice(static))
    if kind == "kafka":
        from collector.outputs.kafka import KafkaOutput
        return KafkaOutput(s.kafka_bootstrap_servers, static.service_name, s.kafka_topic_logs,
                           s.kafka_topic_metrics, s.kafka_acks, **common)
    if kind == "http":
        from collector.outputs.http import HttpOutput
        return HttpOutput(s.ingest_url, s.token, s.ingest_timeout, **common)
    if kind == "memory":
        return MemoryOutput(**common)
    from collector.outputs.stdout import StdoutOutput
    return StdoutOutput(**common)


def configure(**kwargs: Any) -> CollectorSettings:
    """Set up logging for this process; every argument may also come from `COLLECTOR_*` env vars.

    Reconfiguring flushes and replaces the previous outputs. Raises ConfigError naming the setting.
    """
    settings = _settings(kwargs)
    with STATE.lock:
        if STATE.static is not None:
            shutdown()
        redactor = Redactor(settings.redact, settings.redact_keys, settings.redact_patterns)
        static = Static(settings.service, settings.service_version, settings.environment, settings.node_name,
                        redactor)
        outputs = tuple(_make_output(kind, settings, static) for kind in settings.outputs)
        for out in outputs:
            out.start()
        STATE.settings = settings
        STATE.outputs = outputs
        STATE.min_level = LEVELS[settings.level]
        STATE.static = static
        if settings.capture_stdlib:
            _install_bridge(STATE.min_level)
        if settings.metrics_interval > 0:
            STATE.emitter = _MetricsEmitter(settings.metrics_interval)
            STATE.emitter.start()
        _install_exit_hooks()
    return settings


def shutdown(timeout: float | None = None) -> None:
    """Emit the last metrics and flush every output within `timeout` (default: flush_timeout)."""
    with STATE.lock:
        if STATE.static is None:
            return
        settings = STATE.settings
        timeout = settings.flush_timeout if timeout is None and settings else (timeout or 0.0)
        if STATE.emitter is not None:
            STATE.emitter.stopping.set()
            STATE.emitter = None
            emit_metrics()
        deadline = time.monotonic() + timeout
        for out in STATE.outputs:
            out.close(deadline - time.monotonic())
        if STATE.handler is not None:
            logging.getLogger().removeHandler(STATE.handler)
            STATE.handler = None
        STATE.static = None
        STATE.retired = STATE.outputs  # type: ignore[attr-defined]
        STATE.outputs = ()


def flush(timeout: float = 5.0) -> bool:
    """Wait until every record handed to every output is delivered or counted dropped (True), or
    the timeout passes (False); outputs stay open. An empty queue is not enough: a worker may
    still hold a batch it is retrying."""
    deadline = time.monotonic() + timeout
    while True:
        if all(out.pending() == 0 and out.delivered + out.dropped >= out.emitted for out in STATE.outputs):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def outputs() -> dict[str, Output]:
    return {out.name: out for out in STATE.outputs}


def stats() -> dict[str, Any]:
    """Counters per output (emitted, delivered, dropped, pending, failures) and internal errors."""
    current = STATE.outputs or getattr(STATE, "retired", ())
    return {"outputs": {out.name: out.stats() for out in current}, "internal_errors": STATE.internal_errors}


_hooks_installed = False


def _install_exit_hooks() -> None:
    """atexit flush, and SIGTERM: if the app has its own handler we leave it alone (atexit still
    flushes when it exits); with the default action we flush, then die by SIGTERM as before."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(shutdown)
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return
    if previous not in (signal.SIG_DFL, None):
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        shutdown()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


