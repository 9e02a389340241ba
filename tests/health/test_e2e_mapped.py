"""Issue 20 item 6 on the real servers: a name mapped by SHIPPER_SERVICE_MAP arrives on its Kafka
key's partition, not on the mapped name's. Two replicas, a restart of one (seeding from the index):
no false silence alert while it logs, exactly one when it stops. On main the replica owning the
mapped name's partition never saw its records and judged it from the index alone."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from collector.contract.timefmt import format_epoch as iso
from shipper.health.ownership import partition_of
from tests.health.loopback import WebhookReceiver, wait_for
from tests.shipper.harness import Run, count, create_topic, stop

pytestmark = pytest.mark.stack

KEY, MAPPED = "old-shop", "shop"


async def log_keyed(bootstrap: str, topic: str, stop_at: asyncio.Event) -> None:
    """Records without service.name, keyed by the old name: the shipper names them through the map."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        n = 0
        while not stop_at.is_set():
            body = {"@timestamp": iso(time.time()), "log": {"level": "info"}, "message": f"order {n}"}
            await producer.send_and_wait(topic, orjson.dumps(body), key=KEY.encode())
            n += 1
            await asyncio.sleep(0.25)
    finally:
        await producer.stop()


async def test_a_mapped_name_has_one_owner(world: Run, receiver: WebhookReceiver) -> None:
    assert partition_of(KEY, 2) != partition_of(MAPPED, 2)  # the case: key and name on different partitions
    await create_topic(world.bootstrap, world.logs_topic, partitions=2)
    env = {"SHIPPER_SERVICE_MAP": orjson.dumps({KEY: MAPPED}).decode(),
           "SHIPPER_HEALTH__WEBHOOK_URLS": receiver.url("hook"), "SHIPPER_HEALTH__SILENCE_S": "5",
           "SHIPPER_HEALTH__ERROR_RATE": "false", "SHIPPER_HEALTH__ERROR_RATIO": "false"}
    procs = {name: world.start_shipper(name, **env) for name in ("a", "b")}
    stop_logging = asyncio.Event()
    logger = asyncio.create_task(log_keyed(world.bootstrap, world.logs_topic, stop_logging))

    def silences() -> list[str]:
        return [r.body["event"]["action"] for r in receiver.json_events("hook")
                if r.body["rule"]["id"] == "silence" and r.body["service"]["name"] == MAPPED]

    try:
        async def indexed() -> bool:
            return await count(world.search_url, f"logs-{MAPPED}-{world.namespace}") >= 10

        assert await wait_for(indexed, 60) is not None
        # a restart: both replicas rebalance, the restarted one seeds its services from the index
        assert stop(procs.pop("b")) == 0
        procs["b"] = world.start_shipper("b", **env)
        await asyncio.sleep(20)  # four silence thresholds while it keeps logging
        assert silences() == [], "false silence alert while the mapped service logs"
        stop_logging.set()
        await logger

        async def fired() -> bool:
            return "fired" in silences()

        assert await wait_for(fired, 40) is not None, "no silence alert once it stopped"
        await asyncio.sleep(8)
        assert Counter(silences()) == Counter({"fired": 1}), silences()
    finally:
        stop_logging.set()
        await asyncio.gather(logger, return_exceptions=True)
        for proc in procs.values():
            assert stop(proc) == 0
