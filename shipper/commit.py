"""Stage 6: which offsets may be committed while several batches are in flight at once.

Batches finish out of order (a later one may be indexed before an earlier one still retrying),
so per partition the tracker keeps the batches in fetch order and the commit position is one
past the last offset of the longest finished prefix: everything below it is in the index or in
the dead-letter path. Nothing is committed on a timer. Pure bookkeeping, no I/O.

A partition's bookkeeping lives only while this process owns it (one "tenure", from assignment
to revocation). Within a tenure the offered position only ever grows, so a refetch of older
offsets (a seek back, a redelivery) can never move a commit backwards; `drop` ends the tenure,
and whatever is left of it (finished positions, batches still in flight) never counts again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

TP = tuple[str, int]


class OffsetTracker:
    def __init__(self) -> None:
        self._pending: dict[TP, deque[list[int]]] = {}  # tp -> [[token, last offset, done], ...] in fetch order
        self._tokens: dict[int, set[TP]] = {}  # batch token -> its partitions still tracked
        self._ready: dict[TP, int] = {}  # tp -> committable position not yet committed
        self._mark: dict[TP, int] = {}  # tp -> highest position offered in this tenure (commits only go up)
        self._next = 0

    def register(self, offsets: Iterable[tuple[str, int, int]]) -> int:
        """A fetched batch, as (topic, partition, offset) of its records; returns the batch's token."""
        token = self._next
        self._next += 1
        last: dict[TP, int] = {}
        for topic, partition, offset in offsets:
            key = (topic, partition)
            if offset > last.get(key, -1):
                last[key] = offset
        for key, offset in last.items():
            self._pending.setdefault(key, deque()).append([token, offset, 0])
        self._tokens[token] = set(last)
        return token

    def finish(self, token: int) -> None:
        """Every record of the batch is indexed or dead-lettered."""
        for key in self._tokens.pop(token, ()):
            queue = self._pending.get(key)
            if queue is None:
                continue
            for entry in queue:
                if entry[0] == token:
                    entry[2] = 1
            while queue and queue[0][2]:
                position = queue.popleft()[1] + 1
                if position > self._mark.get(key, -1):
                    self._mark[key] = self._ready[key] = position
            if not queue:
                del self._pending[key]

    def committable(self, partitions: Iterable[TP] | None = None) -> dict[TP, int]:
        """Positions that may be committed now (only the given partitions, when given)."""
        if partitions is None:
            return dict(self._ready)
        wanted = set(partitions)
        return {key: pos for key, pos in self._ready.items() if key in wanted}

    def committed(self, positions: dict[TP, int]) -> None:
        for key, position in positions.items():
            if self._ready.get(key) == position:
                del self._ready[key]

    def unfinished(self, partitions: Iterable[TP] | None = None) -> int:
        """Batches still in progress (touching the given partitions, when given)."""
        if partitions is None:
            return len(self._tokens)
        wanted = set(partitions)
        return sum(1 for keys in self._tokens.values() if wanted.intersection(keys))

    def drop(self, partitions: Iterable[TP]) -> None:
        """Partitions taken away by a rebalance: the tenure ends. Their unfinished batches are
        forgotten (the new owner redelivers them; the deterministic ids make that harmless) and so is
        any uncommitted position: when a batch of that tenure finishes later, or the partition comes
        back, nothing from before counts."""
        gone = set(partitions)
        for key in gone:
            self._pending.pop(key, None)
            self._ready.pop(key, None)
            self._mark.pop(key, None)
        for token, keys in list(self._tokens.items()):
            keys -= gone
            if not keys:
                del self._tokens[token]
