"""Stage 6: what may be committed after a batch.

Batches are finished one at a time (each fully indexed or dead-lettered before the next is
committed), so the commit position of a partition is simply one past the highest offset the
finished batch held for it. Nothing is committed on a timer.
"""

from __future__ import annotations

from collections.abc import Iterable


def commit_positions(offsets: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """(topic, partition, offset) of every finished record -> {(topic, partition): next offset}."""
    out: dict[tuple[str, int], int] = {}
    for topic, partition, offset in offsets:
        key = (topic, partition)
        if offset + 1 > out.get(key, -1):
            out[key] = offset + 1
    return out
