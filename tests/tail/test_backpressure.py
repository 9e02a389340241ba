"""Kafka away: reading pauses within the in-flight bound (the files are the buffer), and once the
broker is back every line arrives, re-sent ones byte-identical. Stops the local stack's broker by
pid, like the shipper's fault tests."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from stack.localstack import Config, down, up
from tests.tail.conftest import delivered, exactly_once, records, running, settings, until

LIMIT = 64 * 1024


def _write(path: Path, tag: str, n: int) -> list[str]:
    lines = [f"{tag} {i:06d} " + "x" * 80 for i in range(n)]
    with open(path, "a") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return lines


@pytest.mark.slow  # a broker stop and start: 40-120 s on a loaded machine
async def test_kafka_away_pauses_reading_within_bounds(kafka_bootstrap: str, topic: str, tmp_path: Path,
                                                      stack_config: Config) -> None:
    log = tmp_path / "app.log"
    before = _write(log, "before", 500)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(log)], "format": "plain"}],
                   max_inflight_bytes=LIMIT, request_timeout_s=3.0)
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 500), "500 records")
        tail = next(iter(tailer.tails.values()))
        await asyncio.to_thread(down, stack_config, ("kafka",))
        try:
            during = await asyncio.to_thread(_write, log, "during", 10_000)  # ~1 MB, 15 times the bound
            size = log.stat().st_size
            ahead = pending = 0
            for _ in range(80):  # 4 s with the broker away, across a failed delivery and its rewind
                ahead = max(ahead, tail.pos - tail.committed)
                pending = max(pending, tailer.sink.pending_bytes)
                await asyncio.sleep(0.05)
            assert tail.committed < size
            # what is read but unacknowledged stays within the bound (one record of slack)
            assert pending <= LIMIT + 1024, pending
            assert 0 < ahead <= LIMIT, ahead
        finally:
            await asyncio.to_thread(up, stack_config, ("kafka",))
        await until(lambda: True if tail.committed == size else tail.committed, "everything acknowledged",
                    quiet_s=40)
    exactly_once(await records(kafka_bootstrap, topic, 10_500), before + during)


@pytest.mark.slow  # a broker stop and start
async def test_files_created_and_rotated_while_kafka_is_away(kafka_bootstrap: str, topic: str, tmp_path: Path,
                                                            stack_config: Config) -> None:
    """Scanning and rotation tracking go on during an outage: a file that appears and is rotated
    twice while the broker is down (three generations), and a rotation of a known file, all arrive."""
    app, job = tmp_path / "app.log", tmp_path / "job.log"
    expected = _write(app, "app-before", 50)
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(tmp_path / "*.log")],
                                                             "format": "plain"}], request_timeout_s=3.0)
    async with running(cfg) as tailer:
        await until(lambda: delivered(tailer, 50), "50 records")
        await asyncio.to_thread(down, stack_config, ("kafka",))
        try:
            expected += _write(app, "app-during", 10)  # a delivery fails: the tailer knows Kafka is away
            await until(lambda: True if tailer.sink.producer is None else "connected", "the outage seen")
            for gen in range(3):
                expected += _write(job, f"job-gen{gen}", 30)
                await until(lambda n=2 + gen: True if len(tailer.tails) == n else len(tailer.tails),
                            f"job.log generation {gen} opened during the outage")
                if gen < 2:
                    os.rename(job, tmp_path / f"job.log.{gen + 1}")
            os.rename(app, tmp_path / "app.log.1")
            expected += _write(app, "app-after", 20)
            await until(lambda: True if len(tailer.tails) == 5 else len(tailer.tails), "the new app.log opened")
        finally:
            await asyncio.to_thread(up, stack_config, ("kafka",))
        # read back while the tailer runs: the last line of each file waits for the joiner's timeout
        recs = await records(kafka_bootstrap, topic, len(expected))
    exactly_once(recs, expected)
