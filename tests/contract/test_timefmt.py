"""Table tests of the time rule: one output form, one parser that never raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from collector.contract.timefmt import ISO_MS, format_epoch, format_ts, normalize_ts, now_iso, parse_epoch, parse_ts

WIRE = [
    ("2026-11-28T18:00:00.123Z", "2026-11-28T18:00:00.123Z"),
    ("2026-11-28T18:00:00Z", "2026-11-28T18:00:00.000Z"),
    ("2026-11-28T18:00:00z", "2026-11-28T18:00:00.000Z"),
    ("2026-11-28T19:00:00.5+01:00", "2026-11-28T18:00:00.500Z"),
    ("2026-11-28T18:00:00.123456", "2026-11-28T18:00:00.123Z"),  # naive = UTC
    ("2026-11-28 18:00:00", "2026-11-28T18:00:00.000Z"),
    (" 2026-11-28T18:00:00Z ", "2026-11-28T18:00:00.000Z"),
    (1764352800, "2025-11-28T18:00:00.000Z"),  # epoch seconds
    (1764352800.25, "2025-11-28T18:00:00.250Z"),
    (1764352800123, "2025-11-28T18:00:00.123Z"),  # epoch milliseconds (pino `time`)
    ("0001-01-01T00:00:00+01:00", None),  # overflows when moved to UTC
    ("9999-12-31T23:59:59-01:00", None),
    ("not a time", None),
    ("", None),
    (True, None),
    (None, None),
    ([2026], None),
    ({"t": 1}, None),
    (1e300, None),
    (float("nan"), None),
    (-1e20, None),
]


@pytest.mark.parametrize(("value", "wire"), WIRE)
def test_normalize(value: object, wire: str | None) -> None:
    assert normalize_ts(value) == wire


@pytest.mark.parametrize(("value", "wire"), WIRE)
def test_parse_agrees_with_normalize(value: object, wire: str | None) -> None:
    parsed = parse_ts(value)
    assert (parsed is None) == (wire is None)
    if parsed is not None:
        assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
        assert format_ts(parsed) == wire
        assert parse_epoch(value) == parsed.timestamp()


FORMAT = [
    (datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=UTC), "2026-01-02T03:04:05.678Z"),
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T01:04:05.000Z"),
    (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05.000Z"),  # naive = UTC
    (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
]


@pytest.mark.parametrize(("moment", "wire"), FORMAT)
def test_format(moment: datetime, wire: str) -> None:
    assert format_ts(moment) == wire


def test_epoch_and_now_use_the_wire_form() -> None:
    assert format_epoch(0) == "1970-01-01T00:00:00.000Z"
    assert format_epoch(1.9995) == "1970-01-01T00:00:01.999Z"
    assert ISO_MS.fullmatch(now_iso())


NOW_MS = 1_764_633_600_000  # 2025-12-02


@pytest.mark.parametrize(("epoch_ms", "ok"), [
    (NOW_MS, True),
    (NOW_MS - 400 * 86_400_000, True),  # a buffered device, a replay
    (NOW_MS + 3_600_000, True),  # clock skew
    (0, False),  # 1 ns, 1970
    ((2**64 - 1) // 1_000_000, False),  # uninitialised: year 2554
    (NOW_MS + 2 * 86_400_000, False),
    (NOW_MS - 9 * 365 * 86_400_000, True),
    (NOW_MS - 11 * 366 * 86_400_000, False),
])
def test_plausible_record_times(epoch_ms: int, ok: bool) -> None:
    from collector.contract.timefmt import plausible_ms

    assert plausible_ms(epoch_ms, NOW_MS) is ok


@pytest.mark.parametrize(("epoch_ms", "ok"), [(NOW_MS, True), (0, False), (NOW_MS + 2 * 86_400_000, False),
                                              (NOW_MS - 400 * 86_400_000, True)])
def test_plausible_wire_agrees_with_plausible_ms(epoch_ms: int, ok: bool) -> None:
    from collector.contract.timefmt import format_epoch_ms, plausible_wire

    assert plausible_wire(format_epoch_ms(epoch_ms), NOW_MS) is ok
