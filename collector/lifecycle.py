"""configure(), shutdown(), flush() and stats(): setting up and tearing down the outputs.

Everything here runs rarely (start, reconfigure, exit) and under `STATE.lock`; the hot path only
reads what configure() leaves in `STATE`.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from typing import Any

import orjson
from pydantic import ValidationError

from collector.bridge import install_bridge, remove_bridge
from collector.config import CollectorSettings
from collector.contract.levels import LEVEL_NUMBERS
from collector.contract.settings import describe_error
from collector.extras import require
from collector.metrics import REGISTRY
from collector.outputs.base import MemoryOutput, MetricBytes, Output
from collector.own_records import drop_notice, metric_document
from collector.record import Static
from collector.redact import Redactor
from collector.state import NON_STR_KEYS, STATE, ConfigError

ENV_PREFIX = "COLLECTOR_"


class MetricsEmitter(threading.Thread):
    """Emits the metric documents every `interval` seconds until stopped."""

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
            data = MetricBytes(orjson.dumps(metric_document(static, partial), default=str, option=NON_STR_KEYS))
        except Exception:
            STATE.internal_errors += 1
            continue
        for out in STATE.outputs:
            out.submit(data)
    return len(docs)


def _settings(kwargs: dict[str, Any]) -> CollectorSettings:
    try:
        return CollectorSettings(**kwargs)
    except ValidationError as exc:
        raise ConfigError("invalid collector configuration: " + describe_error(exc, ENV_PREFIX)) from None
    except ValueError as exc:  # an unreadable COLLECTOR_CONFIG_FILE
        raise ConfigError(f"invalid collector configuration: {exc}") from None


def _make_output(kind: str, s: CollectorSettings, static: Static) -> Output:
    common: dict[str, Any] = dict(queue_size=s.queue_size, overflow=s.overflow, batch_size=s.batch_size,
                                  backoff_initial=s.backoff_initial, backoff_max=s.backoff_max,
                                  notice=drop_notice(static))
    if kind == "kafka":
        require("the Kafka output (COLLECTOR_OUTPUTS=kafka)")
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

    Reconfiguring flushes and replaces the previous outputs. Raises ConfigError naming the setting,
    ImportError naming the extra when an output's package is not installed.
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
        STATE.min_level = LEVEL_NUMBERS[settings.level]
        STATE.static = static
        if settings.capture_stdlib:
            STATE.handler = install_bridge(STATE.min_level)
        if settings.metrics_interval > 0:
            STATE.emitter = MetricsEmitter(settings.metrics_interval)
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
            remove_bridge(STATE.handler)
            STATE.handler = None
        STATE.static = None
        STATE.retired = STATE.outputs
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
    current = STATE.outputs or STATE.retired
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
