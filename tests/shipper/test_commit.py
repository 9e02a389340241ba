"""Stage 6, pure: with several batches in flight, only a finished prefix is ever committable."""

from __future__ import annotations

from shipper.commit import OffsetTracker


def _batch(topic: str, partition: int, offsets: range) -> list[tuple[str, int, int]]:
    return [(topic, partition, o) for o in offsets]


def test_out_of_order_finish_waits_for_the_earlier_batch() -> None:
    tracker = OffsetTracker()
    first = tracker.register(_batch("t", 0, range(0, 100)))
    second = tracker.register(_batch("t", 0, range(100, 200)))
    tracker.finish(second)
    assert tracker.committable() == {}
    tracker.finish(first)
    assert tracker.committable() == {("t", 0): 200}


def test_partitions_advance_independently() -> None:
    tracker = OffsetTracker()
    mixed = tracker.register(_batch("t", 0, range(0, 10)) + _batch("t", 1, range(50, 60)))
    only_one = tracker.register(_batch("t", 1, range(60, 70)))
    tracker.finish(only_one)
    assert tracker.committable() == {}
    tracker.finish(mixed)
    assert tracker.committable() == {("t", 0): 10, ("t", 1): 70}
    assert tracker.committable([("t", 1)]) == {("t", 1): 70}


def test_committed_positions_are_not_offered_again_but_newer_ones_are() -> None:
    tracker = OffsetTracker()
    tracker.finish(tracker.register(_batch("t", 0, range(0, 5))))
    positions = tracker.committable()
    tracker.committed(positions)
    assert tracker.committable() == {}
    tracker.finish(tracker.register(_batch("t", 0, range(5, 8))))
    assert tracker.committable() == {("t", 0): 8}


def test_a_revoked_partition_forgets_unfinished_batches() -> None:
    tracker = OffsetTracker()
    done = tracker.register(_batch("t", 0, range(0, 5)))
    stuck = tracker.register(_batch("t", 0, range(5, 10)))
    tracker.finish(done)
    assert tracker.unfinished([("t", 0)]) == 1
    tracker.drop([("t", 0)])
    assert tracker.committable() == {}
    # the partition comes back; the old batch finishing late must not commit anything
    fresh = tracker.register(_batch("t", 0, range(5, 7)))
    tracker.finish(stuck)
    assert tracker.committable() == {}
    tracker.finish(fresh)
    assert tracker.committable() == {("t", 0): 7}
    assert tracker.unfinished() == 0


def test_a_refetch_of_older_offsets_never_moves_the_position_backwards() -> None:
    tracker = OffsetTracker()
    tracker.finish(tracker.register(_batch("t", 0, range(0, 200))))
    tracker.committed(tracker.committable())
    tracker.finish(tracker.register(_batch("t", 0, range(100, 150))))  # a seek back within the tenure
    assert tracker.committable() == {}
    tracker.finish(tracker.register(_batch("t", 0, range(150, 250))))
    assert tracker.committable() == {("t", 0): 250}


def test_batches_of_a_dropped_tenure_no_longer_count_as_unfinished() -> None:
    tracker = OffsetTracker()
    stale = tracker.register(_batch("t", 0, range(0, 10)) + _batch("t", 1, range(0, 10)))
    tracker.drop([("t", 0)])
    assert tracker.unfinished([("t", 0)]) == 0
    assert tracker.unfinished([("t", 1)]) == 1
    tracker.finish(stale)
    assert tracker.committable() == {("t", 1): 10}
