"""Pure units: which replica owns a service, and the handover of its alerts on a rebalance."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from collector.contract.timefmt import format_epoch
from shipper.health.config import HealthSettings
from shipper.health.monitor import HealthMonitor
from shipper.health.ownership import HEALTH, STREAM, Ownership, partition_of
from shipper.monitor import PipelineStatus

TOPICS = ["logs", "health"]


def test_partition_of_is_the_producers_partition() -> None:
    for name in ("api-service", "orders", "nginx", "x" * 200, "ü"):
        for n in (1, 3, 6, 7):
            assert partition_of(name, n) == DefaultPartitioner()(name.encode(), list(range(n)), list(range(n)))


def test_each_service_has_exactly_one_owner_per_part() -> None:
    replicas = [Ownership(TOPICS, frozenset({"health"})) for _ in range(3)]
    for i, own in enumerate(replicas):  # 6 partitions a topic, shared round robin
        own.assign([(t, p) for t in TOPICS for p in range(6) if (p + (t == "health")) % 3 == i],
                   {"logs": 6, "health": 6})
    for service in (f"svc-{n}" for n in range(200)):
        for part in (HEALTH, STREAM):
            assert sum(r.owns(part, service) for r in replicas) == 1
    assert sum(r.leader() for r in replicas) == 1


class _Index:
    """The alerts the replicas write and search (a stand-in for the engine in a pure unit)."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def bulk(self, body: bytes, gzip: bool = False) -> dict[str, Any]:
        lines = body.splitlines()
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            self.docs.setdefault(orjson.loads(action)["create"]["_id"], orjson.loads(doc))
        return {}

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        return {}

    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        if "alerts" not in index:
            return {"hits": {"hits": []}}
        newest = sorted(self.docs.values(), key=lambda d: d["@timestamp"], reverse=True)
        return {"hits": {"hits": [{"_source": d} for d in newest]}}


def probe(service: str, status: str) -> dict[str, Any]:
    return {"@timestamp": format_epoch(time.time()), "event": {"action": "health-check", "dataset": "elk.health"},
            "service": {"name": service, "node": {"name": f"{service}-1"}}, "health": {"status": status}}


async def test_an_open_alert_moves_with_its_service_without_refiring() -> None:
    settings = HealthSettings(failures_to_down=1)
    index = _Index()
    a, b = (HealthMonitor(settings, "t", TOPICS, frozenset({"health"})) for _ in range(2))
    service = "orders"
    p = partition_of(service, 2)
    everything = [(t, q) for t in TOPICS for q in range(2)]
    for mon in (a, b):
        await mon.start(index)  # type: ignore[arg-type]
    try:
        await a.partitions_assigned(everything, {"logs": 2, "health": 2})
        await b.partitions_assigned([], {})
        events = a.observe(probe(service, "unhealthy"))
        assert [d["event"]["action"] for _, d in events if d["event"]["kind"] == "alert"] == ["fired"]
        # the event never reached the index through the shipper's writer: the handover writes it
        await a.partitions_revoked(everything)
        await a.partitions_assigned([(t, q) for t, q in everything if q != p], {"logs": 2, "health": 2})
        await b.partitions_revoked([])
        await b.partitions_assigned([(t, p) for t in TOPICS], {"logs": 2, "health": 2})
        assert not a.owner.owns(HEALTH, service) and b.owner.owns(HEALTH, service)
        assert ("unhealthy", service) not in a.book.open and ("unhealthy", service) in b.book.open
        assert a.state.state_of(service) is None
        status = PipelineStatus(lag_by_partition={"health/0": 0})
        assert [d for _, d in b.evaluate(time.time(), status) if d["event"].get("kind") == "alert"] == []
        b.observe(probe(service, "unhealthy"))  # still down: nothing new
        resolved = b.observe(probe(service, "healthy"))
        got = [(d["event"]["action"], d["alert"]["id"]) for _, d in resolved if d["event"]["kind"] == "alert"]
        fired_id = next(d["alert"]["id"] for d in index.docs.values())
        assert got == [("resolved", fired_id)]
        assert all(d["service"]["name"] != service for _, d in a.evaluate(time.time(), status))
    finally:
        await a.stop()
        await b.stop()
