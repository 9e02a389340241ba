"""The tailer run in-process against the real broker, and what it delivered read back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.tail.service import Tailer
from collector.tail.settings import TailSettings
from tests.kafka_io import consume


def settings(bootstrap: str, topic: str, tmp: Path, **kw: Any) -> TailSettings:
    values: dict[str, Any] = {"TAIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "topic": topic,
                              "registry_path": tmp / "registry.json", "scan_interval_s": 0.2,
                              "poll_interval_s": 0.05, "close_inactive_s": 0.5, "close_renamed_s": 0.5,
                              "registry_flush_s": 0.0}
    values.update(kw)
    return TailSettings(**values)


@asynccontextmanager
async def running(cfg: TailSettings, tailer: Tailer | None = None) -> AsyncIterator[Tailer]:
    tailer = tailer or Tailer(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(tailer.run(stop))
    try:
        yield tailer
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def until(check: Any, what: str, quiet_s: float = 15.0) -> None:
    """Until check() is true; fails when its value has not changed for `quiet_s` (no progress)."""
    last, since = None, time.monotonic()
    while True:
        value = check()
        if value is True:
            return
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            pytest.fail(f"no progress towards {what}: {value!r}")
        await asyncio.sleep(0.05)


def delivered(tailer: Tailer, n: int) -> Any:
    return True if tailer.sink.delivered >= n else tailer.sink.delivered


async def records(bootstrap: str, topic: str, n: int) -> list[dict[str, Any]]:
    """Every record on the topic, decoded; a re-sent record must be byte-identical to the first."""
    seen: dict[str, bytes] = {}
    out = []
    for msg in await consume(bootstrap, topic, n):
        rec = orjson.loads(msg.value)
        rid = rec["event"]["id"]
        if rid in seen:
            assert seen[rid] == msg.value, "a re-sent line differs from the first send"
            continue
        seen[rid] = msg.value
        rec["_key"] = msg.key
        out.append(rec)
    return out


def exactly_once(recs: list[dict[str, Any]], messages: list[str]) -> None:
    got = Counter(r["message"] for r in recs)
    dupes = {m: c for m, c in got.items() if c > 1}
    assert not dupes, f"delivered more than once: {list(dupes)[:5]}"
    missing = [m for m in messages if m not in got]
    assert not missing, f"{len(missing)} lines never delivered, e.g. {missing[:5]}"
    assert len(recs) == len(messages), sorted(set(got) - set(messages))[:5]
