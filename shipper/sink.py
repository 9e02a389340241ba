"""Stage 5: bulk-write routed records and read every item's result (the reading is in shipper/bulk.py).

- items to retry (429, 5xx, a write block) and the request failing as a whole: retried, only those
  items, with exponential backoff and jitter, for as long as it takes (Kafka is the buffer: nothing
  new is fetched meanwhile, so memory stays bounded).
- permanent item failures: handed back as dead letters.
- a 4xx on the whole request: 401/403 are retried (credentials may be fixed without a restart);
  anything else (413 too large, 400 unreadable) is split in halves until the culprit item is
  alone, which is then a permanent failure: one bad record never blocks or drops its neighbours.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from shipper.bulk import Action, Failure, bulk_body, chunks, classify
from shipper.engines.base import EngineRejected, EngineUnavailable, SearchEngine
from shipper.stats import Stats


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
