"""The ECS base fields every document the product writes carries."""

from __future__ import annotations

from collector.contract.ecs import ECS_VERSION, base_fields


def test_base_fields_carry_the_claimed_version() -> None:
    assert base_fields() == {"ecs": {"version": ECS_VERSION}}
    first = base_fields()
    first["ecs"]["version"] = "x"
    assert base_fields()["ecs"]["version"] == ECS_VERSION  # a fresh dict each time: callers may extend it

