"""ECS version and the field names every component writes.

The version is the one whose field definitions the templates are built from; documents carry it
in `ecs.version`.
"""

from __future__ import annotations

from typing import Any

ECS_VERSION = "8.11.0"

# the ecs-logging spec puts these first, as top-level dotted keys (github.com/elastic/ecs-logging,
# spec/spec.json); every other field is a nested object
TIMESTAMP = "@timestamp"
LOG_LEVEL = "log.level"
MESSAGE = "message"
ECS_VERSION_FIELD = "ecs.version"
SPEC_TOP = (TIMESTAMP, LOG_LEVEL, MESSAGE, ECS_VERSION_FIELD)


def base_fields() -> dict[str, Any]:
    """The ECS fields every document the product writes carries besides its `@timestamp`: the version
    of ECS its fields follow (ECS: `ecs.version` is required in every event)."""
    return {"ecs": {"version": ECS_VERSION}}
