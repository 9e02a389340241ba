from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

import pytest

from tests.kibana.seed import seed
from tests.shipper.harness import delete_namespace


@pytest.fixture(scope="module")
def seeded(search_url: str) -> Iterator[tuple[str, dict[str, int]]]:
    """One namespace of pipeline data for the whole module: (namespace, counts written)."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    counts = asyncio.run(seed(search_url, namespace))
    yield namespace, counts
    asyncio.run(delete_namespace(search_url, namespace))


# the shipper code the seed runs configures logging at INFO; request lines of the HTTP clients are noise
for _name in ("httpx", "aiohttp.access"):
    logging.getLogger(_name).setLevel(logging.WARNING)
