"""The soak test of issue 22: a tailer driven through injected days, a thousand files under a low
descriptor bound, two Kafka outages with rotations during them, a copy-truncate while behind and a
restart after more than a week; every line on the topic exactly once by id. Stops its broker by pid
(run it against a broker of your own: STACK_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from collector.tail.reader import identity
from collector.tail.registry import Registry
from collector.tail.service import Tailer
from stack.localstack import Config, down, up
from tests.tail.conftest import exactly_once, running, settings, until
from tests.tail.test_lifecycle import rewrite, write

DAY = 86400.0
FILES = 1000
BOUND = 40


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_205_600.0

    def __call__(self) -> float:
        return self.now


class World:
    """The files and every line written to them that must arrive."""

    def __init__(self, root: Path):
        self.root = root
        self.expected: list[str] = []
        self.n = 0

    def path(self, i: int) -> Path:
        return self.root / f"svc{i:04d}.log"

    def write(self, path: Path, tag: str, k: int) -> None:
        new = [f"{path.name} {tag} {self.n + j:07d}" for j in range(k)]
        self.n += k
        with open(path, "a") as out:
            out.write("".join(line + "\n" for line in new))
        self.expected += new

    def rotate(self, i: int, suffix: str, late: int, fresh: int, tag: str) -> Path:
        """A rename rotation whose writer writes `late` lines to the old file before reopening."""
        log = self.path(i)
        rotated = log.with_name(log.name + suffix)
        os.rename(log, rotated)
        self.write(rotated, tag + "-late", late)
        self.write(log, tag + "-new", fresh)
        return log


def caught_up(tailer: Tailer) -> bool | tuple[int, int]:
    """Nothing waiting, nothing in flight, every open file acknowledged to its end."""
    behind = sum(1 for t in tailer.tails.values() if t.committed < os.fstat(t.fd).st_size)
    pending = len(tailer.queue) + len(tailer.sink.rounds) + tailer.sink.open.records
    return True if not behind and not pending else (behind, pending)


async def everything(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record up to the end offsets, decoded; a re-sent record must be byte-identical."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    seen: dict[str, bytes] = {}
    out = []
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(parts)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for msgs in (await consumer.getmany(timeout_ms=1000)).values():
                for msg in msgs:
                    rec = orjson.loads(msg.value)
                    rid = rec["event"]["id"]
                    if rid in seen:
                        assert seen[rid] == msg.value, "a re-sent line differs from the first send"
                        continue
                    seen[rid] = msg.value
                    out.append(rec)
    finally:
        await consumer.stop()
    return out


def _all_followed(tailer: Tailer, paths: list[Path]) -> bool | int:
    keys = {identity(p.stat()) for p in paths}
    missing = keys - set(tailer.tails) - set(tailer.known)
    return True if not missing else len(missing)


async def _outage(stack: Config, tailer: Tailer, world: World) -> None:
    await asyncio.to_thread(down, stack, ("kafka",))
    world.write(world.path(0), "outage-probe", 1)  # a delivery fails: the tailer knows
    await until(lambda: True if tailer.sink.producer is None else "connected", "the outage seen", quiet_s=40)


@pytest.mark.slow  # two broker stops and starts: about 1-2 minutes
async def test_soak_a_week_a_thousand_files_two_outages(kafka_bootstrap: str, topic: str, tmp_path: Path,
                                                       stack_config: Config) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    world = World(logs)
    for i in range(FILES):
        world.write(world.path(i), "day0", 5)
    clock = Clock()
    cfg = settings(kafka_bootstrap, topic, tmp_path, inputs=[{"paths": [str(logs / "*.log")], "format": "plain",
                                                             "multiline": {"mode": "off"}}],
                   max_open_files=BOUND, max_inflight_bytes=256 * 1024, request_timeout_s=3.0,
                   close_renamed_s=2.0, scan_interval_s=0.3)
    most = 0

    def acked(n: int) -> bool | int:
        nonlocal most
        most = max(most, len(tailer.tails))
        return True if tailer.sink.delivered >= n else tailer.sink.delivered

    async with running(cfg, Tailer(cfg, clock=clock)) as tailer:
        await until(lambda: acked(len(world.expected)), "the first day's lines", quiet_s=40)
        for day in (1, 2, 3):  # quiet days: a line in some files, the registry written each day
            clock.now += DAY
            for i in range(day, FILES, 7):
                world.write(world.path(i), f"day{day}", 1)
            await until(lambda: acked(len(world.expected)), f"day {day}", quiet_s=40)

        # outage 1: rotations while Kafka is away, new lines everywhere
        await _outage(stack_config, tailer, world)
        try:
            clock.now += DAY
            rotated = [world.rotate(i, ".1", 2, 3, "rot1") for i in range(10, 110)]
            for i in range(500, 700):
                world.write(world.path(i), "outage1", 2)
            await until(lambda: _all_followed(tailer, rotated), "the rotated files followed during the outage")
        finally:
            await asyncio.to_thread(up, stack_config, ("kafka",))
        # against what was written, never against a count taken after `up` returned: `up` waits for a
        # consumer-group round trip, and the tailer (retrying every 5 s at most, needing only metadata)
        # often reconnects and delivers before that; a target of "count then + the outage's lines" was
        # then past the total and never reached (CI: stuck at 6330, every line delivered)
        await until(lambda: acked(len(world.expected)), "after outage 1", quiet_s=40)

        # a copy-truncate while behind: a big file, truncated and regrown while still being read
        big = logs / "big.log"
        old = [f"big old {j:06d} " + "o" * 80 for j in range(40_000)]
        write(big, old)
        await until(lambda: True if any(t.path == str(big) and t.committed > 0 for t in tailer.tails.values())
                    else "not yet read", "big.log being read")
        tail = next(t for t in tailer.tails.values() if t.path == str(big))
        new = [f"big new {j:06d} " + "n" * 80 for j in range(30_000)]
        rewrite(big, new)  # logrotate's copytruncate, the copy not matched by the glob
        world.expected += new
        size = big.stat().st_size
        assert tail.committed < size
        await until(lambda: True if tail.entry.gen == 1 and tail.committed == size else tail.committed,
                    "the new content of big.log", quiet_s=40)

        # outage 2: more days pass (over a week in all), a second rotation, new files
        await _outage(stack_config, tailer, world)
        try:
            clock.now += 4 * DAY
            rotated = [world.rotate(i, ".2", 1, 2, "rot2") for i in range(10, 60)]
            rotated += [world.rotate(i, ".1", 1, 2, "rot1b") for i in range(800, 850)]
            for i in range(FILES, FILES + 30):
                world.write(world.path(i), "born-in-outage2", 4)
                rotated.append(world.path(i))
            await until(lambda: _all_followed(tailer, rotated), "the outage-2 files followed")
        finally:
            await asyncio.to_thread(up, stack_config, ("kafka",))
        await until(lambda: caught_up(tailer), "everything acknowledged after outage 2", quiet_s=40)

    # a restart after more than a week: positions of files open all along are still there
    clock.now += DAY
    entries = Registry(tmp_path / "registry.json").entries
    for i in range(FILES):
        assert identity(world.path(i).stat()) in entries, f"{world.path(i)} forgotten"
    for i in range(0, FILES, 100):
        world.write(world.path(i), "after-restart", 1)
    async with running(cfg, Tailer(cfg, clock=clock)) as tailer:
        await until(lambda: True if tailer.sink.delivered >= 10 else tailer.sink.delivered, "the new lines")
        await until(lambda: caught_up(tailer), "everything acknowledged after the restart")
    assert most <= BOUND, most
    recs = await everything(kafka_bootstrap, topic)
    olds = sorted(r["message"] for r in recs if r["message"].startswith("big old"))
    assert olds == old[:len(olds)], "big.log's old generation: what was read before the truncation, once"
    rest = [r for r in recs if not r["message"].startswith("big old")]
    exactly_once(rest, world.expected)
    print(f"{len(recs)} records: {len(olds)} of big.log's old generation read before its copy-truncate, "
          f"{len(rest)} others, every one once")
