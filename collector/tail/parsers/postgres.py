"""PostgreSQL's stderr log with the default prefix `%m [%p] ` (and Debian's `%m [%p] %q%u@%d `):
`2026-12-02 10:00:00.123 UTC [4242] user@db ERROR:  message`; also `%t` (no milliseconds), pgBadger's
`%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ` and `[%p-%l]`.

`%t`/`%m` print the zone as the server's `log_timezone` abbreviation (`CET`, `EDT`): the common ones
are mapped to their offsets; an unknown abbreviation gives no time (the Kafka time is used).

Severities (the manual, "Message Severity Levels"): DEBUG1-5, INFO, NOTICE, WARNING, ERROR, LOG,
FATAL, PANIC; DETAIL, HINT, QUERY, CONTEXT, STATEMENT and LOCATION lines belong to the message
before them (the multiline default rules join them).
"""

from __future__ import annotations

import re
from typing import Any

from collector.contract.levels import CRITICAL, DEBUG, INFO, normalize_level
from collector.tail.parsers import times

PREFIX = (r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([A-Za-z]+|[+-]\d\d(?::?\d\d)?) \[(\d+)(?:-\d+)?\]:? "
          r"(?:\[\d+-\d+\] )?(?:(\S*)@(\S*) |user=([^,\s]*),db=([^,\s]*)\S* )?")
_LINE = re.compile(PREFIX + r"([A-Z]+[1-5]?):  (.*)", re.S)
_SEVERITY = {"LOG": INFO, "PANIC": CRITICAL, "FATAL": CRITICAL, **{f"DEBUG{n}": DEBUG for n in range(1, 6)}}
# abbreviations PostgreSQL prints for common log_timezone settings (tzdata), as UTC offsets
ZONES = {"UTC": "+00:00", "GMT": "+00:00", "Z": "+00:00", "WET": "+00:00", "WEST": "+01:00", "BST": "+01:00",
         "CET": "+01:00", "CEST": "+02:00", "MET": "+01:00", "MEST": "+02:00", "EET": "+02:00", "EEST": "+03:00",
         "MSK": "+03:00", "IST": "+05:30", "SGT": "+08:00", "HKT": "+08:00", "AWST": "+08:00", "JST": "+09:00",
         "KST": "+09:00", "ACST": "+09:30", "AEST": "+10:00", "AEDT": "+11:00", "NZST": "+12:00",
         "NZDT": "+13:00", "HST": "-10:00", "AKST": "-09:00", "AKDT": "-08:00", "PST": "-08:00", "PDT": "-07:00",
         "MST": "-07:00", "MDT": "-06:00", "CST": "-06:00", "CDT": "-05:00", "EST": "-05:00", "EDT": "-04:00",
         "AST": "-04:00", "ADT": "-03:00", "NST": "-03:30", "NDT": "-02:30", "BRT": "-03:00", "ART": "-03:00"}


def parse(text: str) -> dict[str, Any] | None:
    found = _LINE.match(text)
    if found is None:
        return None
    when, zone, pid, user, database, user2, database2, severity, message = found.groups()
    user, database = user or user2, database or database2
    out: dict[str, Any] = {}
    offset = zone if zone[0] in "+-" else ZONES.get(zone.upper())
    if offset is not None:
        ts = times.iso(when.replace(" ", "T") + offset)
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
