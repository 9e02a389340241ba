"""Times as the programs print them -> the wire form, cached: a log's lines share their second,
so most lines cost a dict lookup instead of a parse (strptime alone is ~10 us)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone

from collector.contract.timefmt import format_ts, normalize_ts

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), start=1)}

iso = functools.lru_cache(maxsize=4096)(normalize_ts)


@functools.lru_cache(maxsize=4096)
def clf(text: str) -> str | None:
    """nginx's $time_local, `02/Dec/2026:10:00:00 +0100` (Common Log Format)."""
    try:
        offset = int(text[22:24]) * 60 + int(text[24:26])
        zone = timezone(timedelta(minutes=-offset if text[21] == "-" else offset))
        moment = datetime(int(text[7:11]), _MONTHS[text[3:6]], int(text[0:2]), int(text[12:14]), int(text[15:17]),
                          int(text[18:20]), tzinfo=zone)
    except (ValueError, KeyError, IndexError):
        return None
    return format_ts(moment)


@functools.lru_cache(maxsize=4096)
def day_month_year(text: str) -> str | None:
    """Redis: `02 Dec 2026 10:00:00.123`, local time without a zone (taken as UTC)."""
    try:
        moment = datetime(int(text[7:11]), _MONTHS[text[3:6]], int(text[0:2]), int(text[12:14]), int(text[15:17]),
                          int(text[18:20]), int(text[21:24]) * 1000, tzinfo=UTC)
    except (ValueError, KeyError, IndexError):
        return None
    return format_ts(moment)


@functools.lru_cache(maxsize=4096)
def slashed(text: str) -> str | None:
    """nginx's error log: `2026/12/02 10:00:00`, local time without a zone (taken as UTC)."""
    return normalize_ts(text.replace("/", "-").replace(" ", "T") + "Z")
