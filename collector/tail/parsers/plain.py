"""Plain text: the line is the message; a leading time and a level word are sniffed when present, and
a joined stack trace fills `error.type`, `error.message` and `error.stack_trace`:
- Python (traceback module): the last unindented `Type: message` line is the exception raised
  (chained causes before it stay in the stack trace);
- Java (Throwable.printStackTrace): the first `pkg.Class(Exception|Error): message` line, the
  `Caused by:` chain in the stack trace;
- Go: `panic: message` / `fatal error: message`, the goroutine dump in the stack trace."""

from __future__ import annotations

import re
from typing import Any

from collector.contract.levels import CRITICAL, ERROR, normalize_level
from collector.tail.parsers import times

# `2026-12-02T10:00:00.123Z`, `2026-12-02 10:00:00,123` (Python logging's asctime), optionally in [ ]
_TIME = re.compile(r"\[?(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?)(Z|[+-]\d\d:?\d\d)?\]?\s")
_PY_TRACE = "Traceback (most recent call last):"
_PY_EXC = re.compile(r"^([A-Za-z_][\w.]*)(?:: (.*))?$")
_JAVA_EXC = re.compile(r"^(?:Exception in thread \"[^\"]*\" )?((?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*"
                       r"(?:Exception|Error|Throwable))(?:: (.*))?$", re.M)
_GO_PANIC = re.compile(r"^(panic|fatal error): (.*)$", re.M)
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


def error_of(text: str) -> dict[str, str] | None:
    """ECS `error` of a joined record that holds a stack trace, None when it holds none."""
    at = text.find(_PY_TRACE)
    if at >= 0:
        trace = text[at:]
        for line in reversed(trace.split("\n")):
            found = _PY_EXC.match(line)
            if found is not None and line[:1] not in (" ", "\t") and line != _PY_TRACE:
                error = {"type": found[1], "stack_trace": trace}
                if found[2]:
                    error["message"] = found[2]
                return error
        return {"stack_trace": trace}
    found = _JAVA_EXC.search(text)
    if found is not None and "\tat " in text:
        error = {"type": found[1], "stack_trace": text[found.start():]}
        if found[2]:
            error["message"] = found[2]
        return error
    found = _GO_PANIC.search(text)
    if found is not None and "goroutine " in text:
        return {"type": found[1], "message": found[2], "stack_trace": text[found.start():]}
    return None


def parse(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    found = _TIME.match(text)
    if found is not None:
        if found[2]:
            ts = times.iso(found[1].replace(",", ".").replace(" ", "T") + found[2])
        else:
            ts = times.local(found[1])  # no zone: the writing host's local time
        if ts is not None:
            out["@timestamp"] = ts
    level = sniff_level(text)
    if level is not None:
        out["log.level"] = level
    out["message"] = text
    if "\n" in text:
        error = error_of(text)
        if error is not None:
            out["error"] = error
    return out
