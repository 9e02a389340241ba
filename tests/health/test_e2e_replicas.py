"""Issue 13 item 1 on the real servers: three shipper replicas in one consumer group, rebalances
while alerts are open and while services are failing, health flips of several services.

Every topic is keyed by service, so each service has exactly one owner at a time: exactly one
`fired` and one `resolved` per flip (webhooks and alert documents), no flip missed, and no
silence alert for a service that keeps logging (on main each replica seeded every service from
the index and fired `silence` for the services it did not own)."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.health.loopback import FlipService, WebhookReceiver, alert_docs, wait_for
from tests.health.test_e2e_alerts import Logger
from tests.shipper.harness import Run, create_topic, stop

pytestmark = pytest.mark.stack

SERVICES = ("alpha", "bravo", "charlie", "delta")
PARTITIONS = 6


@pytest.fixture
def services() -> Iterator[dict[str, FlipService]]:
    out = {name: FlipService() for name in SERVICES}
    for svc in out.values():
        svc.start()
    yield out
    for svc in out.values():
        svc.stop()


def events(receiver: WebhookReceiver) -> list[tuple[str, str, str]]:
    return [(r.body["rule"]["id"], r.body["service"]["name"], r.body["event"]["action"])
            for r in receiver.json_events("hook")]


async def test_three_replicas_one_fired_and_one_resolved_per_flip(
    world: Run, receiver: WebhookReceiver, services: dict[str, FlipService], prober_for: Any
) -> None:
    health_topic = f"health-{world.unique}"
    for topic in (world.logs_topic, health_topic):
        await create_topic(world.bootstrap, topic, partitions=PARTITIONS)
    env = {"SHIPPER_TOPICS": f"{world.logs_topic},{health_topic}", "SHIPPER_HEALTH_TOPICS": health_topic,
           "SHIPPER_HEALTH__WEBHOOK_URLS": receiver.url("hook"),
           "SHIPPER_HEALTH__SILENCE_S": "10", "SHIPPER_HEALTH__FLAP_CHANGES": "1000",
           "SHIPPER_HEALTH__ERROR_RATE": "false", "SHIPPER_HEALTH__ERROR_RATIO": "false"}
    procs: dict[str, subprocess.Popen[bytes]] = {name: world.start_shipper(name, **env) for name in ("a", "b")}
    chatty = Logger(world.bootstrap, world.logs_topic, "chatty")
    chatty.start()
    # a timeout under the interval but generous: these services share the test's busy process
    prober_for(health_topic, ",".join(f"{name}-1={svc.url}" for name, svc in services.items()), timeout_s=1.9)
    expected: Counter[tuple[str, str, str]] = Counter()
    try:
        async def all_healthy() -> bool:
            return len(await alert_docs(world.search_url, world.namespace)) == 0 and all(
                s.probes for s in services.values())

        assert await wait_for(all_healthy, 60)

        async def arrived(want: Counter[tuple[str, str, str]]) -> bool:
            got = Counter(events(receiver))
            return all(got[k] >= n for k, n in want.items())

        async def flip(name: str, down: bool) -> None:
            services[name].healthy = not down
            key = ("unhealthy", name, "fired" if down else "resolved")
            expected[key] += 1
            assert await wait_for(lambda: arrived(expected), 45) is not None, f"{key} missing: {events(receiver)}"

        # 1: plain flip with two replicas
        await flip("alpha", True)
        await flip("alpha", False)
        # 2: a replica joins while bravo's alert is open: its owner may change, the alert may not
        await flip("bravo", True)
        procs["c"] = world.start_shipper("c", **env)
        await asyncio.sleep(6)  # the rebalance and the takeover happen while bravo stays down
        await flip("bravo", False)
        # 3: a replica leaves just as charlie starts failing
        services["charlie"].healthy = False
        assert stop(procs.pop("b")) == 0
        expected[("unhealthy", "charlie", "fired")] += 1
        assert await wait_for(lambda: arrived(expected), 45) is not None, events(receiver)
        await flip("charlie", False)
        # 4: the replica comes back while delta and alpha are down
        await flip("delta", True)
        await flip("alpha", True)
        procs["b"] = world.start_shipper("b", **env)
        await asyncio.sleep(6)
        await flip("delta", False)
        await flip("alpha", False)
        await asyncio.sleep(12)  # longer than the silence threshold after the last rebalance
    finally:
        await chatty.stop()
        for proc in procs.values():
            assert stop(proc) == 0
    got = events(receiver)
    assert Counter(got) == expected, got
    assert not any(rule == "silence" for rule, _, _ in got), got
    # the same in the index: one document per event, the fired and resolved of a flip share an id
    docs = await alert_docs(world.search_url, world.namespace)
    assert Counter((d["rule"]["id"], d["service"]["name"], d["event"]["action"]) for d in docs) == expected
    for name in SERVICES:
        mine = [d for d in docs if d["service"]["name"] == name]
        actions = [d["event"]["action"] for d in mine]
        assert actions == ["fired", "resolved"] * (len(actions) // 2), (name, actions)
        ids = [d["alert"]["id"] for d in mine]
        assert all(ids[i] == ids[i + 1] for i in range(0, len(ids), 2)), (name, ids)
