"""Issue 20 item 6 on the real servers: two Kafka keys mapped to one service name (SHIPPER_SERVICE_MAP)
land on partitions that two replicas of one consumer group read. Exactly one replica evaluates the
service, over the union of its records: no false silence alert while either key sends, an
error-ratio alert that the union raises and neither partial stream would (the key read by the
owner is all fine, the other all errors), and after one replica stops the survivor owns the
service and counts both keys, exactly. On main each replica judged its own partial stream: the
errors-only one fired error_ratio at once, and the fine one fired silence when its key stopped."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from collector.contract.timefmt import format_epoch as iso
from shipper.health.ownership import partition_of
from tests.health.loopback import WebhookReceiver, wait_for
from tests.shipper.harness import Run, count, create_topic, free_port, ops_metrics, stop

pytestmark = pytest.mark.stack

MAPPED = "shop"
HOME = partition_of(MAPPED, 2)
# one key on the name's own partition, one on the other
OK_KEY = next(k for k in ("shop-eu", "shop-api", "shop-1x") if partition_of(k, 2) == HOME)
ERR_KEY = next(k for k in ("old-shop", "shop-us", "legacy-shop") if partition_of(k, 2) != HOME)
WINDOW_S, SILENCE_S = 12, 8


class Keyed:
    """Records without service.name, keyed by `key` (the shipper names them through the map), one
    every `every` seconds while `every` is set; `sent` counts what Kafka acknowledged."""

    def __init__(self, bootstrap: str, topic: str, key: str, level: str) -> None:
        self.bootstrap, self.topic, self.key, self.level = bootstrap, topic, key, level
        self.every: float | None = None
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            while True:
                if self.every is None:
                    await asyncio.sleep(0.05)
                    continue
                body = {"@timestamp": iso(time.time()), "log": {"level": self.level},
                        "message": f"{self.key} {self.sent}"}
                await producer.send_and_wait(self.topic, orjson.dumps(body), key=self.key.encode())
                self.sent += 1
                await asyncio.sleep(self.every)
        finally:
            await producer.stop()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def pause(self) -> None:
        self.every = None
        await asyncio.sleep(0.2)  # a send under way is acknowledged (counted) or not sent


def metric(values: dict[str, float], name: str) -> float:
    return values.get(name, 0.0)


async def test_one_owner_counts_every_key_of_a_mapped_service(world: Run, receiver: WebhookReceiver) -> None:
    await create_topic(world.bootstrap, world.logs_topic, partitions=2)
    env = {"SHIPPER_SERVICE_MAP": orjson.dumps({OK_KEY: MAPPED, ERR_KEY: MAPPED}).decode(),
           "SHIPPER_HEALTH__WEBHOOK_URLS": receiver.url("hook"), "SHIPPER_HEALTH__SILENCE_S": str(SILENCE_S),
           "SHIPPER_HEALTH__ERROR_RATE": "false", "SHIPPER_HEALTH__ERROR_WINDOW_S": str(WINDOW_S),
           "SHIPPER_HEALTH__ERROR_RATIO_MIN_RECORDS": "10"}
    ports = {"a": free_port(), "b": free_port()}
    procs: dict[str, subprocess.Popen[bytes]] = {
        name: world.start_shipper(name, SHIPPER_HTTP_PORT=str(port), **env) for name, port in ports.items()}
    ok, err = (Keyed(world.bootstrap, world.logs_topic, OK_KEY, "info"),
               Keyed(world.bootstrap, world.logs_topic, ERR_KEY, "error"))
    ok.start()
    err.start()

    async def metrics(name: str) -> dict[str, float]:
        try:
            return await ops_metrics(ports[name])
        except Exception:  # not listening yet
            return {}

    async def partitions(name: str) -> set[int]:
        return {int(k.split('partition="')[1].split('"')[0]) for k in await metrics(name)
                if k.startswith("shipper_consumer_lag{") and f'topic="{world.logs_topic}"' in k}

    async def counted(name: str) -> float:
        values = await metrics(name)
        return (metric(values, 'shipper_health_stream_records_total{via="read"}')
                + metric(values, 'shipper_health_stream_records_total{via="share"}'))

    def alerts() -> list[tuple[str, str]]:
        return [(r.body["rule"]["id"], r.body["event"]["action"]) for r in receiver.json_events("hook")
                if r.body["service"]["name"] == MAPPED]

    try:
        async def split() -> bool:
            return [await partitions("a"), await partitions("b")] in ([{0}, {1}], [{1}, {0}])

        assert await wait_for(split, 60) is not None, "the two replicas never shared the two partitions"
        owner = "a" if await partitions("a") == {HOME} else "b"
        other = "b" if owner == "a" else "a"

        # A: the owner's key logs 20/s, all fine; the other's 1/s, all errors: the union is ~5 % errors
        # (no alert); the other replica's partial stream alone is 100 % (main fired error_ratio)
        ok.every, err.every = 0.05, 1.0

        async def shared() -> bool:
            return metric(await metrics(owner), 'shipper_health_stream_records_total{via="share"}') >= 10

        assert await wait_for(shared, 30) is not None, "the owner never received the other replica's counts"
        gauges = {name: metric(await metrics(name), "shipper_health_services") for name in ports}
        assert gauges == {owner: 1, other: 0}, f"not exactly one replica evaluates {MAPPED}: {gauges}"
        await asyncio.sleep(2 * WINDOW_S + 2)
        assert alerts() == [], alerts()

        # B: the fine key slows to 2/s: the union is 1/3 errors, over the 20 % limit; the owner's own
        # partition alone is all fine and would never fire
        ok.every = 0.5

        async def fired() -> bool:
            return ("error_ratio", "fired") in alerts()

        assert await wait_for(fired, 45) is not None, f"no error_ratio alert over the union: {alerts()}"

        # C: the fine key stops; the other keeps logging: no silence (main: the owner's partition fell silent)
        await ok.pause()
        await asyncio.sleep(2 * SILENCE_S + 2)
        assert alerts() == [("error_ratio", "fired")], alerts()

        # D: every record is counted exactly once, by the owner (shares are not indexed)
        await err.pause()
        sent = ok.sent + err.sent

        async def all_counted() -> bool:
            return await counted(owner) + await counted(other) == sent

        assert await wait_for(all_counted, 20) is not None, (await counted(owner), await counted(other), sent)
        assert await count(world.search_url, f"logs-{MAPPED}-{world.namespace}") == sent

        # the owner stops: the survivor takes both partitions and the service, the alert still open
        assert stop(procs.pop(owner)) == 0

        async def took_over() -> bool:
            return await partitions(other) == {0, 1} and \
                metric(await metrics(other), "shipper_health_services") == 1

        assert await wait_for(took_over, 45) is not None, "the survivor did not take the service over"
        before, sent_before = await counted(other), ok.sent + err.sent
        ok.every, err.every = 0.05, 1.0  # ~5 % errors again: at or below the 10 % resolve threshold

        async def resolved() -> bool:
            return ("error_ratio", "resolved") in alerts()

        assert await wait_for(resolved, 60) is not None, f"the survivor never resolved the alert: {alerts()}"
        await ok.pause()
        await err.pause()

        async def survivor_counted() -> bool:
            return await counted(other) - before == ok.sent + err.sent - sent_before

        assert await wait_for(survivor_counted, 20) is not None, (
            await counted(other) - before, ok.sent + err.sent - sent_before)
        assert await count(world.search_url, f"logs-{MAPPED}-{world.namespace}") == ok.sent + err.sent

        async def silent() -> bool:
            return ("silence", "fired") in alerts()

        assert await wait_for(silent, 40) is not None, f"no silence alert once both keys stopped: {alerts()}"
        await asyncio.sleep(3)
        assert Counter(alerts()) == Counter({("error_ratio", "fired"): 1, ("error_ratio", "resolved"): 1,
                                             ("silence", "fired"): 1}), alerts()
    finally:
        for keyed in (ok, err):
            if keyed.task is not None:
                keyed.task.cancel()
                await asyncio.gather(keyed.task, return_exceptions=True)
        for proc in procs.values():
            assert stop(proc) == 0
