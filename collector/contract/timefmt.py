"""Time on the wire: one output form (UTC, milliseconds, `Z`: `2026-11-28T18:00:00.123Z`) and one
parser for what clients send (ISO-8601 with any offset or none, epoch seconds or milliseconds).

Parsing never raises: unusable input (garbage, bools, years that overflow when moved to UTC such
as `0001-01-01T00:00:00+01:00`) gives None and the caller decides what to do.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
EPOCH_MS_ABOVE = 1e11  # a number above this is epoch milliseconds (1e11 s is the year 5138)

_second: tuple[int, str] = (-1, "")
_milli: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """The current time in the wire form, formatted at most once per millisecond (cached)."""
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


def format_ts(moment: datetime) -> str:
    """A datetime in the wire form; a naive one is taken as UTC."""
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:" \
           f"{moment.second:02d}.{moment.microsecond // 1000:03d}Z"


def format_epoch(seconds: float) -> str:
    """Epoch seconds in the wire form."""
    return format_ts(datetime.fromtimestamp(seconds, UTC))


def format_epoch_ms(millis: int) -> str:
    return format_epoch(millis / 1000)


def parse_ts(value: Any) -> datetime | None:
    """An aware UTC datetime, or None when the value is no usable time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > EPOCH_MS_ABOVE else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            return None
    return None


def parse_epoch(value: Any) -> float | None:
    """Epoch seconds of a time value, or None."""
    parsed = parse_ts(value)
    return parsed.timestamp() if parsed is not None else None


# A record's own time is believed within this window around its receipt; outside it (a clock at
# 1970, an uninitialised 2^64-1 nanoseconds = year 2554) an intake stamps the receive time and keeps
# the original beside it (`labels.original_timestamp`, `labels.timestamp_out_of_range`). Ten years
# back covers buffered devices and replays of old logs; one day ahead covers clock skew.
PLAUSIBLE_PAST_MS = 10 * 366 * 86_400_000
PLAUSIBLE_AHEAD_MS = 86_400_000


ORIGINAL_LABEL = "original_timestamp"  # the sender's time, as sent (text)
OUT_OF_RANGE_LABEL = "timestamp_out_of_range"  # true: @timestamp is the receive time
_window: tuple[int, str, str] = (-1, "", "")


def plausible_ms(epoch_ms: float, now_ms: float) -> bool:
    """Whether a record time (epoch milliseconds) is believable for a record received at `now_ms`."""
    return now_ms - PLAUSIBLE_PAST_MS <= epoch_ms <= now_ms + PLAUSIBLE_AHEAD_MS


def plausible_wire(text: str, now_ms: float | None = None) -> bool:
    """`plausible_ms` for a time already in the wire form: compared as text (the form sorts in time
    order), the window's edges formatted once a second."""
    global _window
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    window = _window
    if window[0] != now // 1000:
        window = (now // 1000, format_epoch_ms(now - PLAUSIBLE_PAST_MS), format_epoch_ms(now + PLAUSIBLE_AHEAD_MS))
        if now_ms is None:
            _window = window
    return window[1] <= text <= window[2]


def normalize_ts(value: Any) -> str | None:
    """Any accepted time value in the wire form (the common case, already in it, costs one regex)."""
    if type(value) is str and ISO_MS.fullmatch(value):
        return value
    parsed = parse_ts(value)
    return format_ts(parsed) if parsed is not None else None
