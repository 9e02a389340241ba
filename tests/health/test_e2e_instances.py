"""Issue 13 items 2 and 3 on the real servers: instances that stop reporting expire, removed ones
leave at once, and a service holds a bounded number of instances.

The outage case from the issue: api-1 and api-2 are probed; api-3 pushed `healthy` once through
/v1/health and is gone. Both probed replicas fail: on main the service stayed `degraded` (api-3
vouched for it forever) and no unhealthy alert fired."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson
import pytest

from collector.contract.timefmt import now_iso
from collector.probe.prober import removed_doc
from tests.health.loopback import FlipService, WebhookReceiver, alert_docs, free_port, transitions, wait_for
from tests.shipper.harness import Run, create_topic, ops_metrics, produce, stop

pytestmark = pytest.mark.stack


def pushed(service: str, node: str, status: str = "healthy") -> bytes:
    """A result as the ingest API's /v1/health writes it."""
    return orjson.dumps({"@timestamp": now_iso(), "service": {"name": service, "node": {"name": node}},
                         "event": {"kind": "state", "dataset": "elk.health", "action": "health-check",
                                   "outcome": "success" if status == "healthy" else "failure"},
                         "health": {"status": status}, "message": f"{node} {status}"})


async def test_outage_with_a_vanished_push_only_replica_fires_and_instances_are_capped(
    world: Run, receiver: WebhookReceiver, prober_for: Any
) -> None:
    health_topic = f"health-{world.unique}"
    found = functools.partial(transitions, world.search_url, world.namespace)
    for topic in (world.logs_topic, health_topic):
        await create_topic(world.bootstrap, topic)
    port = free_port()
    proc = world.start_shipper(SHIPPER_TOPICS=f"{world.logs_topic},{health_topic}", SHIPPER_HEALTH_TOPICS=health_topic,
                               SHIPPER_HTTP_PORT=str(port),
                               SHIPPER_HEALTH__WEBHOOK_URLS=receiver.url("hook"),
                               SHIPPER_HEALTH__UNKNOWN_AFTER_S="5", SHIPPER_HEALTH__MAX_INSTANCES_PER_SERVICE="5")
    one, two = FlipService(), FlipService()
    one.start()
    two.start()
    try:
        await produce(world.bootstrap, health_topic, [pushed("api", "api-3")], key=b"api")
        prober_for(health_topic, f"api-1={one.url},api-2={two.url}")

        async def healthy() -> bool:
            return len(await found(health__scope="instance", health__to="healthy")) >= 3

        assert await wait_for(healthy, 60), "three healthy instances never seen"
        one.healthy = two.healthy = False

        async def fired() -> bool:
            return any(r.body["rule"]["id"] == "unhealthy" for r in receiver.json_events("hook"))

        assert await wait_for(fired, 30) is not None, "no unhealthy alert: the vanished replica still vouches"

        async def service_unhealthy() -> bool:
            service = await found(health__scope="service")
            return bool(service) and service[-1]["health"]["to"] == "unhealthy"

        assert await wait_for(service_unhealthy, 10) is not None

        async def expired() -> bool:
            gone = await found(service__node__name="api-3", health__to="unknown")
            return len(gone) == 1 and "no result for" in gone[0]["health"]["reason"]

        assert await wait_for(expired, 10) is not None, "api-3 never expired"

        # a probe target removed: its instance leaves at once, the service follows the others
        one.healthy = True
        await produce(world.bootstrap, health_topic,
                      [orjson.dumps(removed_doc({"name": "api", "node": {"name": "api-2"}}, "test", "http"))],
                      key=b"api")

        async def resolved() -> bool:
            return any(r.body["event"]["action"] == "resolved" for r in receiver.json_events("hook"))

        assert await wait_for(resolved, 30) is not None

        async def left() -> bool:
            gone = await found(service__node__name="api-2", health__to="unknown")
            return [t["health"]["reason"] for t in gone][-1:] == ["removed by its prober"]

        # the alert and the transition document go out on separate paths: the document may follow
        assert await wait_for(left, 10) is not None, "api-2 never left as removed by its prober"

        # item 3: any token holder can post node names; a service keeps at most 5 instances
        await produce(world.bootstrap, health_topic, [pushed("spam", f"spam-{n}") for n in range(12)],
                      key=b"spam")

        async def refused() -> bool:
            return (await ops_metrics(port)).get("shipper_health_instances_refused_total") == 7

        assert await wait_for(refused, 20) is not None
        await asyncio.sleep(2)  # more ticks: still logged once
    finally:
        one.stop()
        two.stop()
        assert stop(proc) == 0
    logged = (world.logdir / "shipper.log").read_text()
    assert logged.count("instances over the per-service limit refused") == 1
    docs = await alert_docs(world.search_url, world.namespace, rule__id="unhealthy")
    assert [d["event"]["action"] for d in docs] == ["fired", "resolved"]
