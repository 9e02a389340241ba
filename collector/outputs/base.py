"""The common machinery of every output: a bounded queue the log call appends to without ever
blocking, an overflow policy with counted drops, a worker thread that delivers in batches and
reconnects with backoff, a flush with a deadline, and a notice record after drops.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any


class MetricBytes(bytes):
    """A rendered metric document; outputs route it to the metrics topic/endpoint."""


Notice = Callable[[str, int], bytes]


class Output:
    name = "output"

    def __init__(self, queue_size: int = 10_000, overflow: str = "drop_newest", batch_size: int = 500,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0, notice: Notice | None = None):
        self.queue_size = queue_size
        self.drop_oldest = overflow == "drop_oldest"
        self.batch_size = batch_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.notice = notice
        self.emitted = 0     # records handed to this output
        self.delivered = 0   # records the destination acknowledged
        self.dropped = 0     # records lost: queue overflow, permanent rejection, shutdown deadline
        self.failures = 0    # failed delivery attempts
        self.rejected = 0    # of `dropped`: records the destination refused for good (bad or oversized)
        self.truncated = 0   # records cut to fit the destination's size limit (delivered, marked)
        self.auth_failures = 0  # answers refusing our credentials
        self.last_error: str | None = None
        self._told = False   # the current auth failure was written to stderr
        self._reported_drops = 0
        self._queue: deque[bytes] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.connected = False

    # ------------------------------------------------------------------ producer side (hot path)
    def submit(self, data: bytes) -> None:
        """Never blocks, never raises."""
        self.emitted += 1
        q = self._queue
        if len(q) >= self.queue_size:
            if not self.drop_oldest:
                self.dropped += 1
                return
            try:
                q.popleft()
                self.dropped += 1
            except IndexError:
                pass
        q.append(data)
        if not self._wake.is_set():
            self._wake.set()

    # ------------------------------------------------------------------ worker side
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"collector-{self.name}", daemon=True)
            self._thread.start()

    def _deliver(self, batch: list[bytes]) -> None:
        """Hand one batch to the destination and count what it took; raise to have it retried
        (an exception's `retry_after` seconds, when set, stretch the backoff)."""
        raise NotImplementedError

    def _stopped(self) -> None:
        """After the worker's last batch: release connections."""

    def _run(self) -> None:
        backoff = 0.0
        pending: list[bytes] = []
        while True:
            if not pending:
                self.wait_for_work()
                pending = self.take()
                if not pending:
                    if self._closing:
                        break
                    continue
            try:
                self._deliver(pending)
            except Exception as exc:
                self.failures += 1
                self.connected = False
                pending = getattr(exc, "remaining", None) or pending  # what a partial delivery left
                if self._closing:
                    self.dropped += len(pending)  # held for retry, lost at the shutdown deadline
                    break
                backoff = self.next_backoff(backoff)
                self.sleep(max(backoff, getattr(exc, "retry_after", 0.0)))
                continue
            self.connected = True
            self._told = False
            backoff = 0.0
            notice = self.drop_notice()
            pending = [notice] if notice is not None else []
        self._stopped()

    def pending(self) -> int:
        return len(self._queue)

    def take(self, limit: int | None = None) -> list[bytes]:
        q = self._queue
        out: list[bytes] = []
        limit = limit or self.batch_size
        try:
            while len(out) < limit:
                out.append(q.popleft())
        except IndexError:
            pass
        return out

    def wait_for_work(self, timeout: float = 0.2) -> None:
        if not self._queue and not self._closing:
            self._wake.wait(timeout)
        self._wake.clear()

    def sleep(self, seconds: float) -> None:
        """Backoff that a shutdown interrupts."""
        deadline = time.monotonic() + seconds
        while not self._closing and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def next_backoff(self, current: float) -> float:
        return min(self.backoff_max, current * 2) if current else self.backoff_initial

    def drop_notice(self) -> bytes | None:
        """After a recovery: one record saying how many were dropped since the last notice."""
        unreported = self.dropped - self._reported_drops
        if unreported <= 0 or self.notice is None:
            return None
        self._reported_drops = self.dropped
        self.emitted += 1
        return self.notice(self.name, unreported)

    @property
    def closing(self) -> bool:
        return self._closing

    def close(self, timeout: float) -> None:
        """Flush what the deadline allows; whatever is left counts as dropped."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
        left = len(self._queue)
        if left:
            self._queue.clear()
            self.dropped += left

    def refused(self, count: int, reason: str) -> None:
        """`count` records the destination will never take: dropped and counted, no drop notice
        (resending a notice through the same destination would not explain anything new)."""
        self.rejected += count
        self.dropped += count
        self._reported_drops += count
        self.last_error = reason[:300]

    def auth_failed(self, reason: str) -> None:
        """Credentials refused: counted each time, written to stderr once until delivery works again.
        stderr, not a log record: records of this output would queue behind the refused ones."""
        self.auth_failures += 1
        self.last_error = reason[:300]
        if not self._told:
            self._told = True
            sys.stderr.write(f"collector: output {self.name}: {self.last_error}; records are kept and retried "
                             "with backoff (see collector.stats())\n")
            sys.stderr.flush()

    def stats(self) -> dict[str, Any]:
        return {"emitted": self.emitted, "delivered": self.delivered, "dropped": self.dropped,
                "pending": len(self._queue), "failures": self.failures, "connected": self.connected,
                "rejected": self.rejected, "truncated": self.truncated, "auth_failures": self.auth_failures,
                "last_error": self.last_error}


class MemoryOutput(Output):
    """Keeps rendered records in a list: for tests, the benchmark and the demo's checks."""

    name = "memory"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.records: list[bytes] = []
        self.connected = True

    def submit(self, data: bytes) -> None:
        self.emitted += 1
        self.records.append(data)
        self.delivered += 1

    def start(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        self._closing = True
