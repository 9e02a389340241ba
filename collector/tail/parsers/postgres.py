"""PostgreSQL's stderr log with the default prefix `%m [%p] ` (and Debian's `%m [%p] %q%u@%d `):
`2026-12-02 10:00:00.123 UTC [4242] user@db ERROR:  message`.

Severities (the manual, "Message Severity Levels"): DEBUG1-5, INFO, NOTICE, WARNING, ERROR, LOG,
FATAL, PANIC; DETAIL, HINT, QUERY, CONTEXT, STATEMENT and LOCATION lines belong to the message
before them (the multiline default rules join them).
"""

from __future__ import annotations

import re
from typing import Any

from collector.contract.levels import CRITICAL, DEBUG, INFO, normalize_level
from collector.tail.parsers import times

PREFIX = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([A-Za-z]+|[+-]\d\d(?::?\d\d)?) \[(\d+)\] (?:(\S*)@(\S*) )?"
_LINE = re.compile(PREFIX + r"([A-Z]+[1-5]?):  (.*)", re.S)
_SEVERITY = {"LOG": INFO, "PANIC": CRITICAL, "FATAL": CRITICAL, **{f"DEBUG{n}": DEBUG for n in range(1, 6)}}
_UTC = ("UTC", "GMT", "Z")


def parse(text: str) -> dict[str, Any] | None:
    found = _LINE.match(text)
    if found is None:
        return None
    when, zone, pid, user, database, severity, message = found.groups()
    out: dict[str, Any] = {}
    if zone in _UTC or zone[0] in "+-":
        ts = times.iso(when.replace(" ", "T") + ("Z" if zone in _UTC else zone))
        if ts is not None:
            out["@timestamp"] = ts
    out["log.level"] = _SEVERITY.get(severity) or normalize_level(severity) or INFO
    out["message"] = message
    out["process"] = {"pid": int(pid)}
    if user:
        out["user"] = {"name": user}
    labels: dict[str, Any] = {"pg_severity": severity}
    if database:
        labels["database"] = database
    out["labels"] = labels
    return out
