"""Redis server log: `pid:role dd Mon yyyy hh:mm:ss.mmm <level char> message`.

Roles: X sentinel, C child (RDB/AOF), S replica, M master; levels: `.` debug, `-` verbose,
`*` notice, `#` warning (redis.conf `loglevel`; src/server.c serverLogRaw writes ".-*#"[level]).
Redis writes local time without a zone; the tailer takes it as UTC (containers run in UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from collector.contract.levels import DEBUG, INFO, WARNING
from collector.contract.timefmt import format_ts

_LINE = re.compile(r"(\d+):([XCSM]) (\d\d \w{3} \d{4} \d\d:\d\d:\d\d\.\d{3}) ([.*#-]) (.*)", re.S)
_LEVELS = {".": DEBUG, "-": DEBUG, "*": INFO, "#": WARNING}
_ROLES = {"X": "sentinel", "C": "child", "S": "replica", "M": "master"}


def parse(text: str) -> dict[str, Any] | None:
    found = _LINE.match(text)
    if found is None:
        return None
    pid, role, when, level, message = found.groups()
    out: dict[str, Any] = {}
    try:
        out["@timestamp"] = format_ts(datetime.strptime(when, "%d %b %Y %H:%M:%S.%f").replace(tzinfo=UTC))
    except ValueError:
        pass
    out["log.level"] = _LEVELS[level]
    out["message"] = message
    out["process"] = {"pid": int(pid)}
    out["labels"] = {"redis_role": _ROLES[role]}
    return out
