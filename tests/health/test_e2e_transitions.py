"""Probe results through the real shipper into the real engine: transitions land once, with state."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import httpx
import orjson
from aiokafka import AIOKafkaProducer


def _probe(ok: bool, i: int) -> bytes:
    return orjson.dumps({
        "@timestamp": f"2026-01-01T00:00:{i:02d}Z",
        "event": {"kind": "state", "dataset": "elk.health", "action": "health-check",
                  "outcome": "success" if ok else "failure"},
        "service": {"name": "api-service", "node": {"name": "api-service-1"}},
        "health": {"status": "healthy" if ok else "unhealthy"},
        "message": "probe",
    })


async def test_transitions_written_by_shipper(kafka_bootstrap: str, search_url: str, unique: str) -> None:
    topic = f"test-health-{unique}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    # healthy, one blip (nothing), then 3 failures (down), then recovery.
    for i, ok in enumerate([True, False, True, False, False, False, True]):
        await producer.send_and_wait(topic, _probe(ok, i * 2), key=b"api-service-1")
    await producer.stop()
    env = {**os.environ, "SHIPPER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "SHIPPER_SEARCH_URL": search_url,
           "SHIPPER_TOPICS": topic, "SHIPPER_HEALTH_TOPICS": topic, "SHIPPER_GROUP_ID": f"g-{unique}",
           "SHIPPER_NAMESPACE": unique,
           "SHIPPER_HTTP_PORT": "0", "SHIPPER_DEAD_LETTER_TOPIC": f"dl-{unique}"}
    shipper = os.path.join(os.path.dirname(sys.executable), "shipper")
    proc = await asyncio.create_subprocess_exec(shipper, "run", env=env)
    hits: list[dict] = []
    try:
        deadline = time.monotonic() + 40
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                r = await client.post(f"{search_url}/logs-elk.health-{unique}/_search?ignore_unavailable=true",
                                      json={"size": 50, "query": {"term": {"event.action": "health-transition"}},
                                            "sort": [{"@timestamp": "asc"}]})
                hits = r.json().get("hits", {}).get("hits", [])
                if len(hits) >= 6:
                    break
                await asyncio.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    got = sorted((h["_source"]["health"]["scope"], h["_source"]["health"]["to"]) for h in hits)
    # Exactly one healthy -> unhealthy -> healthy cycle per scope: the single blip raised nothing.
    assert got == sorted([("instance", "healthy"), ("service", "healthy"), ("instance", "unhealthy"),
                          ("service", "unhealthy"), ("instance", "healthy"), ("service", "healthy")])
