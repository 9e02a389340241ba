"""Stage 5: bulk-write routed records and read every item's result.

- 201 created, or 409 on create (already indexed by an earlier delivery): done.
- 429, 5xx, a write block (disk full), or the request failing as a whole: retried, only those items, with exponential
  backoff and jitter, for as long as it takes (Kafka is the buffer: nothing new is fetched
  meanwhile, so memory stays bounded).
- any other 4xx on an item (mapping or parse errors): permanent; handed back as dead letters.
- a 4xx on the whole request: 401/403 are retried (credentials may be fixed without a restart);
  anything else (413 too large, 400 unreadable) is split in halves until the culprit item is
  alone, which is then a permanent failure: one bad record never blocks or drops its neighbours.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.engines.base import EngineRejected, EngineUnavailable, SearchEngine
from shipper.stats import Stats


@dataclass(slots=True)
class Action:
    doc_id: str
    stream: str
    source: bytes | memoryview  # the document, serialised once and reused on retries
    origin: Any = None  # whatever the caller needs to dead-letter it (the Kafka message)


@dataclass(slots=True)
class Failure:
    action: Action
    error_type: str
    reason: str


def bulk_body(actions: list[Action]) -> bytes:
    parts: list[bytes | memoryview] = []
    for action in actions:
        parts.append(b'{"create":{"_index":' + orjson.dumps(action.stream) + b',"_id":' + orjson.dumps(action.doc_id)
                     + b"}}\n")
        parts.append(action.source)
        parts.append(b"\n")
    return b"".join(parts)


def chunks(actions: list[Action], max_bytes: int) -> list[list[Action]]:
    out: list[list[Action]] = []
    current: list[Action] = []
    size = 0
    for action in actions:
        cost = len(action.source) + len(action.stream) + len(action.doc_id) + 48
        if current and size + cost > max_bytes:
            out.append(current)
            current, size = [], 0
        current.append(action)
        size += cost
    if current:
        out.append(current)
    return out


def _blocked(result: dict[str, Any]) -> bool:
    """A write block (disk flood stage makes indices read-only): transient, like a 429, never a dead letter."""
    error = result.get("error")
    return isinstance(error, dict) and error.get("type") == "cluster_block_exception"


def classify(response: dict[str, Any], actions: list[Action]) -> tuple[list[Action], list[Action], list[Action],
                                                                      list[Failure]]:
    """(done, of which already there, to retry, permanent failures) from one bulk response."""
    if response.get("errors") is False:  # the common case: no item to look at
        return actions, [], [], []
    items = response.get("items") or []
    if len(items) != len(actions):
        return [], [], list(actions), []  # a truncated answer proves nothing: send them all again
    done: list[Action] = []
    duplicates: list[Action] = []
    retry: list[Action] = []
    failed: list[Failure] = []
    for action, item in zip(actions, items, strict=True):
        result: dict[str, Any] = item.get("create") or next(iter(item.values()), {})
        status = int(result.get("status", 0))
        if status in (200, 201):
            done.append(action)
        elif status == 409:
            done.append(action)
            duplicates.append(action)
        elif status == 429 or status >= 500 or status == 0 or _blocked(result):
            retry.append(action)
        else:
            error = result.get("error") or {}
            if isinstance(error, dict):
                kind = str(error.get("type", "unknown"))
                reason = str(error.get("reason", ""))
                cause = error.get("caused_by")
                if isinstance(cause, dict) and cause.get("reason"):
                    reason = f"{reason}: {cause.get('reason')}"
            else:
                kind, reason = "unknown", str(error)
            failed.append(Failure(action, kind, reason[:2000]))
    return done, duplicates, retry, failed


class BulkSink:
    def __init__(self, engine: SearchEngine, stats: Stats, *, max_bytes: int, concurrency: int,
                 retry_initial_s: float, retry_max_s: float, gzip: bool = False) -> None:
        self.engine = engine
        self.gzip = gzip
        self.stats = stats
        self.max_bytes = max_bytes
        self.concurrency = asyncio.Semaphore(concurrency)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.available = True

    async def _send(self, actions: list[Action]) -> tuple[list[Action], list[Failure]]:
        body = bulk_body(actions)
        rejected: EngineRejected | None = None
        async with self.concurrency:
            started = time.perf_counter()
            try:
                # each stream family's index template before its first write creates the stream
                await self.engine.prepare_streams({a.stream for a in actions})
                response = await self.engine.bulk(body, self.gzip)
            except EngineUnavailable:
                self.available = False
                return actions, []
            except EngineRejected as exc:
                rejected = exc
            finally:
                self.stats.bulk.observe(time.perf_counter() - started)
        if rejected is not None:  # outside the semaphore: the halves take their own slots
            return await self._rejected(actions, rejected)
        self.available = True
        done, duplicates, retry, failed = classify(response, actions)
        # records from Kafka only; dead-letter entries, monitor and pipeline documents are not "indexed"
        self.stats.indexed += sum(1 for a in done if a.origin is not None)
        self.stats.duplicates += sum(1 for a in duplicates if a.origin is not None)
        for failure in failed:
            self.stats.item_errors[failure.error_type] += 1
        return retry, failed

    async def _rejected(self, actions: list[Action], exc: EngineRejected) -> tuple[list[Action], list[Failure]]:
        self.stats.item_errors[f"request_{exc.status}"] += 1
        if exc.status in (401, 403):
            self.available = False
            return actions, []
        if len(actions) == 1:
            return [], [Failure(actions[0], f"request_{exc.status}", str(exc)[:2000])]
        half = len(actions) // 2
        retry: list[Action] = []
        failed: list[Failure] = []
        for part in (actions[:half], actions[half:]):
            part_retry, part_failed = await self._send(part)
            retry += part_retry
            failed += part_failed
        return retry, failed

    async def write(self, actions: list[Action],
                    waiting: Callable[[float], Awaitable[None]] | None = None) -> list[Failure]:
        """Returns only when every action is indexed or permanently failed (the failures)."""
        pending = actions
        failures: list[Failure] = []
        delay = self.retry_initial_s
        while pending:
            results = await asyncio.gather(*(self._send(chunk) for chunk in chunks(pending, self.max_bytes)))
            pending = [a for retry, _ in results for a in retry]
            failures += [f for _, failed in results for f in failed]
            if pending:
                self.stats.retried += len(pending)
                pause = min(self.retry_max_s, delay) * random.uniform(0.5, 1.0)
                if waiting is not None:
                    await waiting(pause)
                else:
                    await asyncio.sleep(pause)
                delay = min(self.retry_max_s, delay * 2)
            else:
                delay = self.retry_initial_s
        return failures
