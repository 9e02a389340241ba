"""Issue 12 item 7: SIGTERM while Kafka is down ends within SHIPPER_SHUTDOWN_TIMEOUT_S.

Kafka stops while the shipper still works through records it had prefetched: those batches are
indexed but their commits cannot reach the broker. The final commit used to wait for the group
coordinator without end. Needs the test's own stack (it stops the broker by pid).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from stack.localstack import Config, down, up
from tests.shipper.harness import Run, count, create_topic, ids_in, log_record, produce, stop, wait_count

pytestmark = [pytest.mark.stack, pytest.mark.slow]

BOUND_S = 4.0


async def _until_settled(search_url: str, index: str, quiet_s: float = 1.5) -> None:
    """Until the index count stopped changing for quiet_s."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_s:
        now = await count(search_url, index)
        if now != last:
            last, since = now, time.monotonic()
        await asyncio.sleep(0.25)


async def test_sigterm_with_kafka_down_exits_within_the_bound(run: Run, stack_config: Config) -> None:
    n = 30_000
    index = f"logs-api_service-{run.namespace}"
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    await produce(run.bootstrap, run.logs_topic, (log_record(i) for i in range(n)))
    shipper = run.start_shipper(SHIPPER_BATCH_MAX_RECORDS="100", SHIPPER_SHUTDOWN_TIMEOUT_S=str(BOUND_S),
                                SHIPPER_MAX_BATCHES_IN_FLIGHT="2")
    try:
        assert await wait_count(run.search_url, index, 500, within=60) >= 500
        await asyncio.to_thread(down, stack_config, ("kafka",))
        try:
            # the batches in flight are indexed, then wait on commits that have nowhere to go
            await _until_settled(run.search_url, index)
            started = time.monotonic()
            code = await asyncio.to_thread(stop, shipper, BOUND_S + 20)
            took = time.monotonic() - started
        finally:
            await asyncio.to_thread(up, stack_config, ("kafka",))
    finally:
        stop(shipper)
    assert code == 0
    assert took < BOUND_S + 2.0, f"shutdown took {took:.1f} s with a bound of {BOUND_S} s"
    # nothing lost, nothing twice: the next run picks up from the last commit that landed
    final = run.start_shipper("final")
    try:
        assert await wait_count(run.search_url, index, n, within=90) == n
    finally:
        assert stop(final) == 0
    ids = await ids_in(run.search_url, index)
    assert len(ids) == len(set(ids)) == n
