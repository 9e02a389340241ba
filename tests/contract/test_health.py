"""Table test of the health vocabulary: one reading of a /health answer for every source."""

from __future__ import annotations

import pytest

from collector.contract.health import is_up, outcome, probe_status, status_word

TABLE = [
    (True, None, "healthy"), (True, "ok", "healthy"), (True, "UP", "healthy"), (True, "healthy", "healthy"),
    (True, "degraded", "degraded"), (True, "Degraded", "degraded"), (True, "warn", "degraded"),
    (True, "unhealthy", "unhealthy"), (True, "down", "unhealthy"), (True, "fail", "unhealthy"),
    (True, "error", "unhealthy"),
    (True, "something else", "healthy"), (True, 3, "healthy"),
    (False, None, "unhealthy"), (False, "ok", "unhealthy"), (False, "degraded", "unhealthy"),
]


@pytest.mark.parametrize(("http_ok", "body", "status"), TABLE)
def test_probe_status(http_ok: bool, body: object, status: str) -> None:
    assert probe_status(http_ok, body) == status


def test_words_and_outcome() -> None:
    assert status_word("nonsense") is None and status_word(None) is None
    assert [is_up(s) for s in ("healthy", "degraded", "unhealthy", "unknown")] == [True, True, False, False]
    assert [outcome(s) for s in ("healthy", "degraded", "unhealthy")] == ["success", "failure", "failure"]
