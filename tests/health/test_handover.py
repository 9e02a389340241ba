"""Issue 20 item 3 on the real broker: the Kafka source and the health monitor's handover.

(a) records of a newly assigned partition are handed out only once the rebalance hooks (the
monitor's restore of the services it gained) are done; (b) a stop hands every partition over
like a revocation before leaving the group; (d) a partition kept across a rebalance redelivers
its uncommitted probe results, and they are not counted twice."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from collector.contract.timefmt import format_epoch as iso
from shipper.config import ShipperSettings
from shipper.health.config import HealthSettings
from shipper.health.monitor import HealthMonitor
from shipper.health.ownership import partition_of
from shipper.source import KafkaSource
from tests.shipper.harness import create_topic, produce


class SlowRestore:
    """A rebalance hook whose assignment work (the monitor's restore) takes until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.assigned_done: float | None = None
        self.revoked: list[list[tuple[str, int]]] = []

    async def partitions_revoked(self, revoked: list[tuple[str, int]]) -> None:
        self.revoked.append(sorted(revoked))

    async def partitions_assigned(self, assigned: list[tuple[str, int]], counts: dict[str, int]) -> None:
        await self.release.wait()
        self.assigned_done = time.monotonic()


def settings(bootstrap: str, topic: str, unique: str) -> ShipperSettings:
    return ShipperSettings(kafka_bootstrap_servers=bootstrap, topics=topic, group_id=f"g-{unique}",
                           batch_linger_ms=100, shutdown_timeout_s=10)


@pytest.mark.stack
async def test_no_records_of_a_new_partition_before_its_restore_is_done(kafka_bootstrap: str, unique: str) -> None:
    topic = f"handover-{unique}"
    await create_topic(kafka_bootstrap, topic, partitions=2)
    await produce(kafka_bootstrap, topic, [b'{"n": %d}' % n for n in range(20)])
    hook = SlowRestore()
    source = KafkaSource(settings(kafka_bootstrap, topic, unique), hooks=(hook,))
    await source.start()
    got: list[tuple[float, Any]] = []

    async def consume() -> None:
        while len(got) < 20:
            messages = source.still_owned(await source.fetch())
            source.register(messages)
            got.extend((time.monotonic(), m) for m in messages)

    task = asyncio.create_task(consume())
    try:
        # the restore takes 3 s; the fetch loop runs all the while
        await asyncio.sleep(3)
        early = len(got)
        hook.release.set()
        await asyncio.wait_for(task, 30)
        assert early == 0, f"{early} records handed out while the restore was still running"
        assert hook.assigned_done is not None and all(when >= hook.assigned_done for when, _ in got)
        assert sorted(m.value for _, m in got) == sorted(b'{"n": %d}' % n for n in range(20))  # nothing lost
    finally:
        task.cancel()
        await source.stop()


@pytest.mark.stack
async def test_a_stop_hands_every_partition_over(kafka_bootstrap: str, unique: str) -> None:
    topic = f"handover-{unique}"
    await create_topic(kafka_bootstrap, topic, partitions=3)
    hook = SlowRestore()
    hook.release.set()
    source = KafkaSource(settings(kafka_bootstrap, topic, unique), hooks=(hook,))
    await source.start()
    deadline = time.monotonic() + 30
    while hook.assigned_done is None and time.monotonic() < deadline:
        await source.fetch()
    assert hook.assigned_done is not None
    await source.stop()
    assert hook.revoked == [[(topic, 0), (topic, 1), (topic, 2)]]


class At:
    """A probe result's place in Kafka (the monitor reads topic, partition, offset and Kafka's time)."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.timestamp = 1_764_979_200_000 + offset


def probe(service: str, status: str, when: float) -> dict[str, Any]:
    return {"@timestamp": iso(when), "event": {"action": "health-check", "dataset": "elk.health"},
            "service": {"name": service, "node": {"name": f"{service}-1"}}, "health": {"status": status}}


class HeldEngine:
    """Answers the restore queries only once `release` is set, with one old transition of `api`."""

    def __init__(self, when: float) -> None:
        self.release = asyncio.Event()
        self.when = when

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        return {}

    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.release.wait()
        if "health" not in index:
            return {"hits": {"hits": []}}
        source = {"@timestamp": iso(self.when), "event": {"action": "health-transition"},
                  "health": {"scope": "instance", "from": "healthy", "to": "unhealthy"},
                  "service": {"name": "api", "node": {"name": "api-1"}}}
        return {"hits": {"hits": [{"_source": source}]}}


async def test_older_index_state_never_overwrites_newer_memory_state() -> None:
    now = time.time()
    mon = HealthMonitor(HealthSettings(failures_to_down=1), "t", topics=["elk-health"],
                        health_topics=frozenset({"elk-health"}))
    engine = HeldEngine(now - 600)
    mon.engine = engine  # type: ignore[assignment]
    restore = asyncio.create_task(mon.partitions_assigned([("elk-health", 0)], {"elk-health": 1}))
    await asyncio.sleep(0.05)
    mon.observe(probe("api", "healthy", now), At("elk-health", 0, 7))  # newer than the index's answer
    engine.release.set()
    await restore
    assert mon.state_of("api") == "healthy"
    assert mon.state.instance("api", "api-1").state == "healthy"  # type: ignore[union-attr]


def test_a_kept_partition_does_not_count_redelivered_probe_results_twice() -> None:
    """Four failures make an instance unhealthy. Two were observed, the rebalance kept the partition
    and redelivered them (their batch was dropped unfinished): still two, not four."""
    mon = HealthMonitor(HealthSettings(failures_to_down=4), "t", topics=["elk-health"],
                        health_topics=frozenset({"elk-health"}))
    now = time.time()
    asyncio.run(mon.partitions_assigned([("elk-health", 0)], {"elk-health": 1}))
    assert partition_of("api", 1) == 0
    first = [mon.observe(probe("api", "unhealthy", now + n), At("elk-health", 0, n)) for n in range(2)]
    asyncio.run(mon.partitions_revoked([("elk-health", 0)]))
    asyncio.run(mon.partitions_assigned([("elk-health", 0)], {"elk-health": 1}))
    again = [mon.observe(probe("api", "unhealthy", now + n), At("elk-health", 0, n)) for n in range(2)]
    assert again == first  # the same documents again (their first batch may never have been written)
    assert mon.state.instance("api", "api-1").fails == 2  # type: ignore[union-attr]
    assert mon.state_of("api") != "unhealthy"
    for n in (2, 3):
        mon.observe(probe("api", "unhealthy", now + n), At("elk-health", 0, n))
    assert mon.state_of("api") == "unhealthy"


async def test_silence_does_not_count_while_a_takeover_restore_holds_the_records() -> None:
    """The new partition's records are held until the restore is done; its lag is small and known,
    yet the replica is not caught up meanwhile (a slow engine made a false silence alert)."""
    mon = HealthMonitor(HealthSettings(silence_s=5), "t", topics=["logs"])
    engine = HeldEngine(time.time() - 600)
    mon.engine = engine  # type: ignore[assignment]
    now = time.time()
    mon.signals.seed("shop", iso(now - 1))
    restore = asyncio.create_task(mon.partitions_assigned([("logs", 0)], {"logs": 1}))
    await asyncio.sleep(0.05)
    from shipper.monitor import PipelineStatus

    status = PipelineStatus(lag_by_partition={"logs/0": 3})
    for t in range(1, 30):
        mon.evaluate(now + t, status)
    assert mon.signals.caught_up_since is None and ("silence", "shop") not in mon.book.open
    engine.release.set()
    await restore
    mon.evaluate(now + 30, status)
    assert mon.signals.caught_up_since == now + 30
