"""Redis server log: `pid:role dd Mon yyyy hh:mm:ss.mmm <level char> message`.

Roles: X sentinel, C child (RDB/AOF), S replica, M master; levels: `.` debug, `-` verbose,
`*` notice, `#` warning (redis.conf `loglevel`; src/server.c serverLogRaw writes ".-*#"[level]).
Redis writes local time without a zone; the tailer takes it as UTC (containers run in UTC).
"""

from __future__ import annotations

import re
from typing import Any

from collector.contract.levels import DEBUG, INFO, WARNING
from collector.tail.parsers import times

_LINE = re.compile(r"(\d+):([XCSM]) (\d\d \w{3} \d{4} \d\d:\d\d:\d\d\.\d{3}) ([.*#-]) (.*)", re.S)
_LEVELS = {".": DEBUG, "-": DEBUG, "*": INFO, "#": WARNING}
_ROLES = {"X": "sentinel", "C": "child", "S": "replica", "M": "master"}


def parse(text: str) -> dict[str, Any] | None:
    found = _LINE.match(text)
    if found is None:
        return None
    pid, role, when, level, message = found.groups()
    out: dict[str, Any] = {}
    ts = times.day_month_year(when)
    if ts is not None:
        out["@timestamp"] = ts
    out["log.level"] = _LEVELS[level]
    out["message"] = message
    out["process"] = {"pid": int(pid)}
    out["labels"] = {"redis_role": _ROLES[role]}
    return out
