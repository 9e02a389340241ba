"""Table test of the level vocabulary: every alias -> one canonical name."""

from __future__ import annotations

import pytest

from collector.contract.levels import ERROR_LEVELS, LEVELS, is_error, normalize_level

TABLE = [
    ("debug", "debug"), ("DEBUG", "debug"), ("trace", "debug"), ("Verbose", "debug"),
    ("info", "info"), ("INFO", "info"), ("notice", "info"), ("Information", "info"),
    ("warn", "warning"), ("WARN", "warning"), ("warning", "warning"), ("Warning", "warning"),
    ("err", "error"), ("ERROR", "error"), ("severe", "error"),
    ("crit", "critical"), ("fatal", "critical"), ("FATAL", "critical"), ("panic", "critical"),
    ("emerg", "critical"), ("alert", "critical"), ("critical", "critical"),
    ("silly", "debug"), ("http", "info"),  # winston's npm levels
    (" info ", "info"),
    (10, "debug"), (20, "debug"), (30, "info"), (40, "warning"), (50, "error"), (60, "critical"),
    (35, None), ("loud", None), ("", None), (None, None), (True, None), (30.0, None),
    ({"level": "info"}, None), (["info"], None),
]


@pytest.mark.parametrize(("value", "canonical"), TABLE)
def test_normalize_level(value: object, canonical: str | None) -> None:
    assert normalize_level(value) == canonical


def test_error_levels_are_canonical_and_counted_as_errors() -> None:
    assert ERROR_LEVELS <= set(LEVELS)
    assert [is_error(x) for x in ("ERR", "fatal", "warn", "info", 50, 40)] == [True, True, False, False, True, False]
