"""Fixtures for the logging library: a configured pipeline writing to memory, torn down after."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

import collector
from collector.contract.ecs import ECS_VERSION
from collector.contract.streams import sanitize_dataset

SERVICE = "api-service"
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def memlog() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    collector.configure(service=SERVICE, service_version="1.2.3", environment="test", outputs="memory",
                        metrics_interval=0, level="debug")
    mem = collector.outputs()["memory"]

    def records() -> list[dict[str, Any]]:
        return [orjson.loads(r) for r in mem.records]

    yield records
    collector.shutdown()


def assert_ecs(line: bytes) -> dict[str, Any]:
    """The ecs-logging spec (spec/spec.json): `@timestamp` (index 0), `log.level` (1), `message` (2)
    and `ecs.version` required; one line; plus the fields docs/ARCHITECTURE.md requires."""
    assert b"\n" not in line
    rec = orjson.loads(bytes(line))
    assert list(rec)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert _TS.match(rec["@timestamp"])
    assert rec["log.level"] in ("debug", "info", "warning", "error", "critical")
    assert isinstance(rec["message"], str)
    assert rec["ecs.version"] == ECS_VERSION
    assert rec["service"]["name"] == SERVICE
    assert rec["service"]["version"] and rec["service"]["environment"] and rec["service"]["node"]["name"]
    assert rec["host"]["name"]
    assert isinstance(rec["process"]["pid"], int)
    assert rec["log"]["logger"]
    assert rec["event"]["dataset"] == sanitize_dataset(SERVICE) == "api_service"
    for key in rec:  # nested objects, not dotted keys, apart from the spec's top-level ones
        assert "." not in key or key in ("log.level", "ecs.version")
    return rec
