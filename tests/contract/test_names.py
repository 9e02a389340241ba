"""Table test of the instance -> service rule."""

from __future__ import annotations

import pytest

from collector.contract.names import is_instance_of, service_of, split_instance

TABLE = [
    ("api-service-1", ("api-service", "api-service-1")),
    ("api_service_1", ("api_service", "api_service_1")),
    ("api-service-12", ("api-service", "api-service-12")),
    ("shop-api-service-2", ("shop-api-service", "shop-api-service-2")),
    ("myproj_redis_1", ("myproj_redis", "myproj_redis_1")),
    ("redis", ("redis", "redis")),
    ("postgres16", ("postgres16", "postgres16")),
    ("svc-1a", ("svc-1a", "svc-1a")),
    ("-1", ("-1", "-1")),
    ("a--1", ("a--1", "a--1")),
    ("7", ("7", "7")),
    (" orders-3 ", ("orders", "orders-3")),
]


@pytest.mark.parametrize(("name", "expected"), TABLE)
def test_split_instance(name: str, expected: tuple[str, str]) -> None:
    assert split_instance(name) == expected
    assert service_of(name) == expected[0]


@pytest.mark.parametrize(("instance", "service", "expected"), [
    ("api-service-1", "api-service", True),
    ("api_service_1", "api_service", True),
    ("api-service", "api-service", True),
    ("api-service-1", "api", False),
    ("auth-service-1", "api-service", False),
])
def test_is_instance_of(instance: str, service: str, expected: bool) -> None:
    assert is_instance_of(instance, service) is expected


@pytest.mark.parametrize(("node", "named"), [
    ("api-service-1", None),  # the writer's own instance
    ("api-service", None),
    ("vm", None),  # a host
    ("web-3", None),  # an instance of no known service
    ("auth-service-1", "auth-service"),
    ("auth_service_2", None),  # another spelling is another name
    ("auth-service", "auth-service"),
])
def test_a_node_name_may_not_name_another_service(node: str, named: str | None) -> None:
    from collector.contract.names import other_service_named

    assert other_service_named(node, "api-service", ["api-service", "auth-service"]) == named
