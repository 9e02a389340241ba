"""Exceptions as ECS `error.*` fields, inside the single JSON line."""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import Any

from collector.redact import safe_text

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def exc_info_of(value: Any) -> ExcInfo | None:
    """Normalize structlog/stdlib `exc_info` (True, an exception, or a tuple)."""
    if value is None or value is False:
        return None
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and value[0] is not None:
        return value
    if value is True:
        info = sys.exc_info()
        return info if info[0] is not None else None
    return None


def error_fields(info: ExcInfo) -> dict[str, str]:
    """Never raises: an exception whose str() raises, or an odd exc_info tuple, still gives fields."""
    etype, exc, tb = info
    try:
        name = etype.__qualname__
        module = etype.__module__
        if module not in ("builtins", "__main__"):
            name = f"{module}.{name}"
        stack = "".join(traceback.format_exception(etype, exc, tb))
    except Exception:
        name, stack = safe_text(etype), ""
    return {"type": name, "message": safe_text(exc), "stack_trace": stack}
