"""Exactly once end to end: `collector tail` SIGKILLed several times while the service writes, the
real shipper indexing into the real engine; every line is in the index once, by its id."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson

from tests.kafka_io import consume
from tests.shipper.conftest import run as shipper_world
from tests.shipper.harness import Run, create_topic, ids_in, stop, wait_count

N = 6000


def _writer(log: Path, n: int, done: threading.Event) -> None:
    """pino lines, about 1500 a second, with a rename rotation half way (as logrotate does it)."""
    out = open(log, "ab", buffering=0)
    try:
        for i in range(n):
            if i == n // 2:
                out.close()
                os.rename(log, log.with_name(log.name + ".1"))
                out = open(log, "ab", buffering=0)
            out.write(orjson.dumps({"level": 30, "time": 1796205600000 + i, "pid": 1, "msg": f"req {i:05d}"}) + b"\n")
            if i % 50 == 0:
                time.sleep(0.03)
    finally:
        out.close()
        done.set()


async def _registry_written(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not await asyncio.to_thread(os.path.exists, path):
        assert time.monotonic() < deadline, "the tailer never wrote its registry"
        await asyncio.sleep(0.05)


def _start_tailer(run: Run, log: Path, tmp: Path, name: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAIL_")}
    env.update({"TAIL_KAFKA_BOOTSTRAP_SERVERS": run.bootstrap, "TAIL_TOPIC": run.logs_topic,
                "TAIL_REGISTRY_PATH": str(tmp / "registry.json"), "TAIL_SCAN_INTERVAL_S": "0.2",
                "TAIL_REGISTRY_FLUSH_S": "0.3", "TAIL_CLOSE_INACTIVE_S": "1",
                "TAIL_INPUTS": orjson.dumps([{"paths": [str(log)], "service": "api-service"}]).decode()})
    with open(tmp / f"{name}.out", "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "collector.cli", "tail"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


run = shipper_world  # the shipper tests' isolated world (topics, group, namespace), as a fixture here


async def test_sigkilled_tailer_every_line_once_in_the_index(run: Run, tmp_path: Path) -> None:
    await create_topic(run.bootstrap, run.logs_topic, partitions=3)
    log = tmp_path / "app.log"
    log.touch()
    shipper = run.start_shipper()
    done = threading.Event()
    writer = threading.Thread(target=_writer, args=(log, N, done))
    kills = 0
    try:
        for round_ in range(4):
            tailer = _start_tailer(run, log, tmp_path, f"tail-{round_}")
            if round_ == 0:  # the service starts writing once the tailer knows its file
                await _registry_written(tmp_path / "registry.json")
                writer.start()
            await asyncio.sleep(0.9 + 0.3 * round_)
            tailer.send_signal(signal.SIGKILL)
            tailer.wait()
            kills += 1
        final = _start_tailer(run, log, tmp_path, "tail-final")
        await asyncio.to_thread(done.wait, 60)
        index = f"logs-api_service-{run.namespace}"
        assert await wait_count(run.search_url, index, N, within=60) == N
        await asyncio.sleep(1.0)  # a duplicate would have its chance to show up
        ids = await ids_in(run.search_url, index)
        assert stop(final) == 0
    finally:
        if writer.is_alive():
            writer.join()
        stop(shipper)
    assert kills == 4
    assert len(ids) == N and len(set(ids)) == N
    sent = await consume(run.bootstrap, run.logs_topic, N)
    messages = Counter(orjson.loads(m.value)["message"] for m in sent)
    assert set(messages) == {f"req {i:05d}" for i in range(N)}
    print(f"{len(sent)} records on the topic for {N} lines: {len(sent) - N} re-sent after the kills, "
          f"{N} documents in the index")
