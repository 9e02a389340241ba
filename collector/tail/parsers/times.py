"""Times as the programs print them -> the wire form, cached: a log's lines share their second,
so most lines cost a dict lookup instead of a parse (strptime alone is ~10 us). A cache is keyed by
the text up to the second, the fraction appended: keys to the millisecond would never hit.

Times printed without a zone (Python's asctime, Redis, nginx's error log) are in the writing host's
local time: taken in the zone `set_zone` names (TAIL_TIMEZONE), else this host's zone."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from collector.contract.timefmt import EPOCH_MS_ABOVE, format_ts, normalize_ts

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), start=1)}

iso = functools.lru_cache(maxsize=4096)(normalize_ts)


_MILLIS = tuple(f"{milli:03d}Z" for milli in range(1000))


@functools.lru_cache(maxsize=1024)
def _epoch_second(second: int) -> str:
    return format_ts(datetime.fromtimestamp(second, UTC))[:20]


def epoch(value: int | float) -> str | None:
    """Epoch milliseconds (pino) or seconds -> the wire form; the second cached, the millisecond
    appended (a cache keyed by the millisecond would never hit)."""
    try:
        millis = int(value) if value > EPOCH_MS_ABOVE else int(value * 1000)
        second, milli = divmod(millis, 1000)
        return _epoch_second(second) + _MILLIS[milli]
    except (OverflowError, OSError, ValueError):
        return None


_ZONE: tzinfo | None = None  # None: the host's local zone (the C library's, TZ included)


def set_zone(name: str | None) -> None:
    """The zone of times printed without one; None: this host's."""
    global _ZONE
    _ZONE = ZoneInfo(name) if name else None
    for cached in (_local_second, _dmy_second, slashed):
        cached.cache_clear()


@functools.lru_cache(maxsize=4096)
def _local_second(year: int, month: int, day: int, hour: int, minute: int, second: int) -> str | None:
    """`YYYY-MM-DDTHH:MM:SS.` in UTC of a local wall-clock second (DST by the zone's rules)."""
    try:
        naive = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    moment = naive.replace(tzinfo=_ZONE) if _ZONE is not None else naive.astimezone()
    return format_ts(moment.astimezone(UTC))[:20]


def local(text: str) -> str | None:
    """`2026-12-02 10:00:00[.,]123` (or with T) without a zone, in the local zone -> the wire form."""
    try:
        head = _local_second(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                             int(text[17:19]))
    except ValueError:
        return None
    if head is None:
        return None
    frac = text[20:23] if len(text) > 20 and text[19] in ".," else ""
    return head + (frac + "000")[:3] + "Z" if frac.isdigit() or not frac else None


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
def _dmy_second(text: str) -> str | None:
    try:
        return _local_second(int(text[7:11]), _MONTHS[text[3:6]], int(text[0:2]), int(text[12:14]),
                             int(text[15:17]), int(text[18:20]))
    except (ValueError, KeyError, IndexError):
        return None


def day_month_year(text: str) -> str | None:
    """Redis: `02 Dec 2026 10:00:00.123`, local time without a zone."""
    head = _dmy_second(text[:20])
    frac = text[21:24]
    if head is None or (frac and not frac.isdigit()):
        return None
    return head + (frac + "000")[:3] + "Z"


@functools.lru_cache(maxsize=4096)
def slashed(text: str) -> str | None:
    """nginx's error log: `2026/12/02 10:00:00`, local time without a zone."""
    return local(text.replace("/", "-"))
