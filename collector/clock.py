"""`@timestamp` strings, cheaply: formatted at most once per millisecond (the last one is cached)."""

from __future__ import annotations

import time

_second: tuple[int, str] = (-1, "")
_milli: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """UTC ISO-8601 with milliseconds, e.g. `2026-11-28T18:00:00.123Z`."""
    global _second, _milli
    ms = int(time.time() * 1000)
    cached = _milli  # one read: another thread may swap the tuple, never tear it
    if cached[0] == ms:
        return cached[1]
    sec, frac = divmod(ms, 1000)
    prefix = _second
    if prefix[0] != sec:
        prefix = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        _second = prefix
    text = f"{prefix[1]}.{frac:03d}Z"
    _milli = (ms, text)
    return text
