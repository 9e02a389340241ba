"""Stage 5: bulk-write routed records and act on every answer as the tables in
shipper/statuses.py say (reading an answer is in shipper/bulk.py):

- wait: the same actions again, with exponential backoff and jitter, for as long as it takes
  (Kafka is the buffer: nothing new is fetched meanwhile, so memory stays bounded); an item 429
  (overload) is such a wait, and `overloaded` says so until an answer carries none;
- retry: the same, but for at most item_retry_s seconds per action from its first such answer
  (on the injected clock), then a `retries_exhausted` failure (dead-lettered by the caller);
- split: halves until the culprit action is alone, which is then a permanent failure;
- fail: handed back at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from operator import attrgetter

from shipper.bulk import Action, Failure, bulk_body, chunks, classify
from shipper.engines.base import EngineRejected, EngineUnavailable, SearchEngine
from shipper.stats import Stats
from shipper.statuses import Verdict, request_verdict

_origin = attrgetter("origin")  # None: a document the shipper made itself

EXHAUSTED = "retries_exhausted"


@dataclass(slots=True)
class _Outcome:
    wait: list[Action] = field(default_factory=list)
    retry: list[Failure] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


class BulkSink:
    def __init__(self, engine: SearchEngine, stats: Stats, *, max_bytes: int, concurrency: int,
                 retry_initial_s: float, retry_max_s: float, gzip: bool = False, item_retry_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.gzip = gzip
        self.stats = stats
        self.max_bytes = max_bytes
        self.concurrency = asyncio.Semaphore(concurrency)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.item_retry_s = item_retry_s
        self.clock = clock
        self.available = True
        self.overloaded = False  # the last bulk answer carried item 429s (backpressure)

    async def _send(self, actions: list[Action]) -> _Outcome:
        body = bulk_body(actions)
        refused: EngineUnavailable | EngineRejected | None = None
        async with self.concurrency:
            started = time.perf_counter()
            try:
                # each stream family's index template before its first write creates the stream
                # (not for families another producer has: those are written under its template, counted)
                self.stats.foreign_families += len(await self.engine.prepare_streams({a.stream for a in actions}))
                response = await self.engine.bulk(body, self.gzip)
            except (EngineUnavailable, EngineRejected) as exc:
                refused = exc
            finally:
                self.stats.bulk.observe(time.perf_counter() - started)
        if refused is not None:  # outside the semaphore: halves take their own slots
            return await self._refused(actions, refused)
        self.available = True
        result = classify(response, actions)
        self.overloaded = result.overloaded > 0
        if result.overloaded:
            self.stats.item_errors["overloaded"] += result.overloaded
        # records from Kafka only; dead-letter entries, monitor and pipeline documents are not "indexed"
        self.stats.indexed += len(result.done) - list(map(_origin, result.done)).count(None)
        self.stats.duplicates += sum(1 for a in result.duplicates if a.origin is not None)
        for failure in result.failed:
            self.stats.item_errors[failure.error_type] += 1
        return _Outcome(result.wait, result.retry, result.failed)

    async def _refused(self, actions: list[Action], exc: EngineUnavailable | EngineRejected) -> _Outcome:
        verdict = request_verdict(exc.status)
        if isinstance(exc, EngineRejected):
            self.stats.item_errors[f"request_{exc.status}"] += 1
        if verdict is Verdict.WAIT:
            self.available = False
            return _Outcome(wait=actions)
        reason = str(exc)[:2000]
        if verdict is Verdict.RETRY:
            return _Outcome(retry=[Failure(a, f"request_{exc.status}", reason) for a in actions])
        if len(actions) == 1:  # split down to the culprit: a permanent failure
            return _Outcome(failed=[Failure(actions[0], f"request_{exc.status}", reason)])
        half = len(actions) // 2
        out = _Outcome()
        for part in (actions[:half], actions[half:]):
            outcome = await self._send(part)
            out.wait += outcome.wait
            out.retry += outcome.retry
            out.failed += outcome.failed
        return out

    async def write(self, actions: list[Action],
                    waiting: Callable[[float], Awaitable[None]] | None = None) -> list[Failure]:
        """Returns only when every action is indexed or failed for good (the failures)."""
        pending = actions
        failures: list[Failure] = []
        first: dict[int, tuple[float, int]] = {}  # id(action) -> (first "retry" answer, answers since)
        delay = self.retry_initial_s
        while pending:
            outcomes = await asyncio.gather(*(self._send(chunk) for chunk in chunks(pending, self.max_bytes)))
            pending = [a for outcome in outcomes for a in outcome.wait]
            for outcome in outcomes:
                failures += outcome.failed
                now = self.clock()
                for failure in outcome.retry:
                    since, tries = first.get(id(failure.action), (now, 0))
                    first[id(failure.action)] = (since, tries + 1)
                    if now - since < self.item_retry_s:
                        pending.append(failure.action)
                        continue
                    self.stats.item_errors[EXHAUSTED] += 1
                    failures.append(Failure(failure.action, EXHAUSTED,
                                            f"retries exhausted after {now - since:.0f} s ({tries + 1} answers); "
                                            f"last: {failure.error_type}: {failure.reason}"[:2000]))
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
