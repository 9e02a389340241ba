"""The panels and searches over what a real `shipper run` writes: records produced to Kafka, consumed
and indexed by the shipper process (its health monitor derives the transitions, its stats loop
writes the pipeline metrics), then every probe runs on the engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from kibana import bundle, dsl
from tests.kibana.seed import records
from tests.shipper.harness import Run, count, create_topic, delete_namespace, stop, wait_count

pytestmark = pytest.mark.stack

ALERT_VIEW = "elk-alerts"  # alert events need an alert to fire (minutes of state): the seeded test covers them


@pytest.fixture
async def world(kafka_bootstrap: str, search_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Run]:
    run = Run(kafka_bootstrap, search_url, unique, tmp_path)
    yield run
    await delete_namespace(search_url, run.namespace)


async def test_panels_find_what_shipper_run_wrote(world: Run) -> None:
    batches = records(datetime.now(UTC))
    await create_topic(world.bootstrap, world.logs_topic)
    await create_topic(world.bootstrap, world.health_topic)
    producer = AIOKafkaProducer(bootstrap_servers=world.bootstrap, acks="all")
    await producer.start()
    try:  # probes on the topic in the health role (as the prober publishes them), each with its real key
        sent = [await producer.send(world.health_topic if kind == "probes" else world.logs_topic, value,
                                    key=key.encode() if key else None)
                for kind in ("probes", "logs", "metrics", "bad") for _, key, value, _ in batches[kind]]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    shipper = world.start_shipper(SHIPPER_STATS_INTERVAL_S="1",
                                  SHIPPER_TOPICS=f"{world.logs_topic},{world.health_topic}")
    try:
        ns = world.namespace
        logs = f"logs-api_service-{ns},logs-web_service-{ns},logs-elk.deadletter-{ns}"
        want = len(batches["logs"]) + len(batches["bad"])
        assert await wait_count(world.search_url, logs, want) == want
        metrics = f"metrics-api_service-{ns},metrics-web_service-{ns}"
        assert await wait_count(world.search_url, metrics, len(batches["metrics"])) == len(batches["metrics"])
        assert await wait_count(world.search_url, f"metrics-elk.pipeline-{ns}", 2) >= 2
    finally:
        assert stop(shipper) == 0
    assert await count(world.search_url, f"logs-elk.deadletter-{ns}") == len(batches["bad"]) == 3
    assert await count(world.search_url, f"logs-elk.health-{ns}") > len(batches["probes"])  # + transitions

    objects = bundle.build()
    skip = {o["id"] for o in objects if any(r["id"] == ALERT_VIEW for r in o["references"])}
    probes = [p for p in dsl.probes(objects, bundle.rules(), ns) if p.name.split(":", 1)[1] not in skip]
    assert len(probes) >= 20
    async with httpx.AsyncClient(timeout=30) as http:
        responses = await asyncio.gather(*(
            http.post(f"{world.search_url}/{p.index}/_search", params={"ignore_unavailable": "true"}, json=p.body)
            for p in probes))
    failed = {p.name: p.check(r.json()) for p, r in zip(probes, responses, strict=True) if p.check(r.json())}
    assert failed == {}
