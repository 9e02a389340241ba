from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shipper.harness import Run, delete_namespace


@pytest.fixture
def run(kafka_bootstrap: str, search_url: str, unique: str, tmp_path: Path) -> Iterator[Run]:
    world = Run(kafka_bootstrap, search_url, unique, tmp_path)
    yield world
    asyncio.run(delete_namespace(search_url, world.namespace))
