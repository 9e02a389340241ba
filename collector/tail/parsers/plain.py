"""Plain text: the line is the message; a leading time and a level word are sniffed when present."""

from __future__ import annotations

import re
from typing import Any

from collector.contract.levels import CRITICAL, ERROR, normalize_level
from collector.tail.parsers import times

# `2026-12-02T10:00:00.123Z`, `2026-12-02 10:00:00,123` (Python logging's asctime), optionally in [ ]
_TIME = re.compile(r"\[?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)\]?\s")
# an upper-case level word (Python's `ERROR:root:`, log4j's `WARN`), `level=error`, or `[error]`
_LEVEL = re.compile(r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL|PANIC|SEVERE)\b"
                    r"|\blevel=\"?([A-Za-z]+)|\[(trace|debug|info|notice|warn|warning|error|crit|fatal)\]")
_SNIFF_CHARS = 160
_TRACE_ERROR = ("Traceback (most recent call last):", "Exception in thread ", "\tat ", "    at ")


def sniff_level(text: str) -> str | None:
    head = text[:_SNIFF_CHARS]
    found = _LEVEL.search(head)
    if found is not None:
        return normalize_level(next(g for g in found.groups() if g))
    if head.startswith(("panic: ", "fatal error: ")):
        return CRITICAL
    if "\n" in text and any(marker in text for marker in _TRACE_ERROR):
        return ERROR  # a stack trace with no level word before it
    return None


def parse(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    found = _TIME.match(text)
    if found is not None:
        ts = times.iso(found[1].replace(",", ".").replace(" ", "T"))
        if ts is not None:
            out["@timestamp"] = ts
    level = sniff_level(text)
    if level is not None:
        out["log.level"] = level
    out["message"] = text
    return out
