"""The stdlib bridge: records of `logging` (uvicorn, SQLAlchemy, any library) take the same path."""

from __future__ import annotations

import logging
from typing import Any

from collector.contract.levels import STDLIB_NAMES
from collector.record import format_message
from collector.state import STATE, emit

_SAMPLE = logging.LogRecord("x", 20, "x", 1, "x", None, None).__dict__
_BASE_ATTRS = frozenset(_SAMPLE) | {"message", "asctime"}
_BASE_LEN = len(_SAMPLE)
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


class BridgeHandler(logging.Handler):
    """Installed on the root logger; a record's `extra=` attributes become its fields."""

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
            message = format_message(record.msg, record.args) if record.args else record.msg
            level = STDLIB_NAMES.get(record.levelno) or record.levelname.lower()
            emit(record.name, level, message, fields)
        except Exception:
            STATE.internal_errors += 1


def uvicorn_log_config() -> dict[str, Any]:
    """`uvicorn.run(..., log_config=collector.uvicorn_log_config())`: uvicorn's records go to us."""
    loggers = {name: {"handlers": [], "propagate": True} for name in _UVICORN}
    return {"version": 1, "disable_existing_loggers": False, "loggers": loggers}


def install_bridge(level: int) -> BridgeHandler:
    """Replace any previous bridge on the root logger; uvicorn's loggers propagate to it."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, BridgeHandler):
            root.removeHandler(h)
    handler = BridgeHandler(level)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _UVICORN:
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    return handler


def remove_bridge(handler: BridgeHandler) -> None:
    logging.getLogger().removeHandler(handler)
