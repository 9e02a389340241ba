"""One client must not stall the ingest API: parsing and shaping run off the event loop (/health
answers while a heavy body is parsed), and a known-down Kafka is answered 503 before the body is
read. In process, against the real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from collector.ingest.app import create_app
from tests.ingest.conftest import API_TOKEN, make_settings

pytestmark = pytest.mark.stack


@pytest.fixture
async def served(kafka_bootstrap: str, unique: str) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(make_settings(kafka_bootstrap, unique, max_body_bytes=16 << 20))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest", timeout=120) as client:
            yield app, client


HEADERS = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/x-ndjson"}


async def test_health_answers_while_a_heavy_body_is_parsed(served: tuple[Any, httpx.AsyncClient]) -> None:
    """One NDJSON object holding a 3.5 M-element list: seconds of parsing, then rejected or cut."""
    _, client = served
    body = b'{"message": "heavy", "extra": {"list": [' + b"1," * 3_500_000 + b'1]}}\n{"message": "light"}\n'
    heavy = asyncio.create_task(client.post("/v1/logs", content=body, headers=HEADERS))
    waits = []
    while not heavy.done():
        t0 = time.monotonic()  # the pause counts too: in process, a blocked loop delays the asking
        await asyncio.sleep(0.05)
        assert (await client.get("/health")).status_code == 200
        waits.append(time.monotonic() - t0 - 0.05)
    assert (await heavy).status_code == 202
    assert waits and max(waits) < 1.0, waits


async def test_a_known_down_kafka_is_503_before_the_body_is_read(served: tuple[Any, httpx.AsyncClient]) -> None:
    app, client = served
    app.state.gate._trip("test: broker known to be down")
    resp = await client.post("/v1/logs", content=b"{not json", headers=HEADERS)  # a 400 if it were parsed
    assert resp.status_code == 503 and resp.headers["retry-after"]
