"""Log levels: the five names every document carries, and what other loggers call them.

Canonical names are Python's (the library's, and what the dashboards filter on). Aliases cover
syslog (RFC 5424 names), pino/bunyan numbers (10 trace .. 60 fatal), winston's npm levels (`http`,
`silly`), log4j/Java, Go and .NET names.
"""

from __future__ import annotations

from typing import Any

DEBUG, INFO, WARNING, ERROR, CRITICAL = "debug", "info", "warning", "error", "critical"
LEVELS = (DEBUG, INFO, WARNING, ERROR, CRITICAL)
# numbers the stdlib bridge and the library's minimum-level check use
LEVEL_NUMBERS = {DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50}
STDLIB_NAMES = {number: name for name, number in LEVEL_NUMBERS.items()}
# levels counted by the error-rate signal and shown as errors by the dashboards
ERROR_LEVELS = frozenset({ERROR, CRITICAL})

ALIASES = {
    **{name: name for name in LEVELS},
    "trace": DEBUG, "verbose": DEBUG, "dbg": DEBUG, "fine": DEBUG, "finer": DEBUG, "finest": DEBUG, "silly": DEBUG,
    "information": INFO, "informational": INFO, "notice": INFO, "config": INFO, "http": INFO,
    "warn": WARNING, "wrn": WARNING,
    "err": ERROR, "eror": ERROR, "severe": ERROR,
    "crit": CRITICAL, "fatal": CRITICAL, "panic": CRITICAL, "alert": CRITICAL,
    "emerg": CRITICAL, "emergency": CRITICAL, "dpanic": CRITICAL,
}
# pino and bunyan: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal
NUMERIC = {10: DEBUG, 20: DEBUG, 30: INFO, 40: WARNING, 50: ERROR, 60: CRITICAL}


def normalize_level(value: Any) -> str | None:
    """The canonical name of a level, or None when the value names no known level."""
    if type(value) is str:
        found = ALIASES.get(value)
        return found if found is not None else ALIASES.get(value.strip().lower())
    if type(value) is int:
        return NUMERIC.get(value)
    return None


def is_error(level: Any) -> bool:
    return normalize_level(level) in ERROR_LEVELS
