"""Fixtures shared by the health tests: a webhook receiver, a namespace on the real servers
(`world`, removed afterwards) and the real prober started in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.probe.config import ProbeSettings
from collector.probe.prober import run as run_prober
from tests.health.loopback import WebhookReceiver
from tests.shipper.harness import Run, delete_namespace


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    hooks.start()
    yield hooks
    hooks.stop()


@pytest.fixture
def world(kafka_bootstrap: str, search_url: str, unique: str, tmp_path: Path) -> Iterator[Run]:
    run = Run(kafka_bootstrap, search_url, unique, tmp_path)
    yield run
    asyncio.run(delete_namespace(search_url, run.namespace))


@pytest.fixture
async def prober_for(kafka_bootstrap: str) -> AsyncIterator[Any]:
    """start(topic, targets, timeout_s=1.0): a prober every 2 s on those targets until the test ends."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def start(topic: str, targets: str, timeout_s: float = 1.0) -> None:
        settings = ProbeSettings(kafka_bootstrap_servers=kafka_bootstrap, topic=topic, interval_s=2.0,
                                 timeout_s=timeout_s, targets=targets)
        stop_event = asyncio.Event()
        stops.append((stop_event, asyncio.create_task(run_prober(settings, stop_event))))

    yield start
    for stop_event, task in stops:
        stop_event.set()
        await asyncio.wait_for(task, 10)
