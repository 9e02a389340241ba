"""Table test of what a topic carries (the shipper's health ownership reads it)."""

from __future__ import annotations

import pytest

from collector.contract.streams import TOPIC_HEALTH, TOPIC_LOGS, TOPIC_METRICS, topic_kind

TABLE = [
    (TOPIC_HEALTH, "health"),
    (TOPIC_LOGS, "logs"),
    (TOPIC_METRICS, "metrics"),
    ("health-prod", "health"),
    ("test-health-abc", "health"),
    ("prod-metrics", "metrics"),
    ("logs-abc", "logs"),
    ("orders", "logs"),
]


@pytest.mark.parametrize(("topic", "kind"), TABLE)
def test_topic_kind(topic: str, kind: str) -> None:
    assert topic_kind(topic) == kind
