"""CPU time per record of the shipper's transform, in-process: `prepare` and `bulk_body` over the
shipper benchmark's corpus (bench_shipper.generate), with the null and the real health monitor, and
each step of the chain alone. No servers.

    .venv/bin/python -m bench.profile_transform                     # 100k records, best of 5
    .venv/bin/python -m bench.profile_transform -n 30000 --rounds 3 --steps
    # an older tree (its `prepare` has no fast path: both columns are its one path)
    mkdir /tmp/old && git archive <commit> | tar -x -C /tmp/old && cp bench/profile_transform.py /tmp/old/bench/
    (cd /tmp/old && PYTHONPATH=. /path/to/.venv/bin/python -m bench.profile_transform)

CPU time (time.process_time_ns) of this process, best round; batches of 5,000 records as the
shipper's default. Three columns, alternating round by round: `fast` as the shipper runs (with the
compiled part, native/, when it is built), `python` (the fast path without it), `general`
(`prepare(..., fast=False)`). `--steps` adds the cost of each step: the chain up to it minus the
chain before it.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.bench_shipper import generate
from collector.contract.streams import TOPIC_LOGS
from shipper.bulk import bulk_body, chunks
from shipper.context import Batch, TransformSettings
from shipper.decode import decode
from shipper.enrich import STEPS
from shipper.health.config import HealthSettings
from shipper.health.monitor import HealthMonitor
from shipper.ids import record_id
from shipper.monitor import Monitor, NullMonitor
from shipper.provenance import Meta
from shipper.route import route
from shipper.transform import prepare

try:  # an older tree has none
    from shipper.native import NativeBatch
except ImportError:
    NativeBatch = None

BATCH = 5000
CHUNK_BYTES = 5 * 1024 * 1024


def corpus(n: int) -> list[Meta]:
    now_ms = int(time.time() * 1000)
    return [Meta(TOPIC_LOGS, i % 4, i // 4, now_ms, key, (), value) for i, (key, value) in enumerate(generate(n))]


def batches(messages: list[Meta]) -> list[list[Meta]]:
    return [messages[i:i + BATCH] for i in range(0, len(messages), BATCH)]


def timed(fn: Callable[[], Any]) -> int:
    gc.collect()
    start = time.process_time_ns()
    fn()
    return time.process_time_ns() - start


def run_prepare(parts: list[list[Meta]], make: Callable[[], Monitor], body: bool, path: str = "fast"
                ) -> Callable[[], None]:
    """A fresh monitor each round: one that saw these offsets already skips them as redelivered.
    `path`: "fast" as the shipper runs (with the compiled part when built), "python" (the fast path
    without it), "general"."""
    params = inspect.signature(prepare).parameters
    kw: dict[str, bool] = {"fast": path != "general"} if "fast" in params else {}
    if "native" in params:
        kw["native"] = path == "fast"

    def go() -> None:
        monitor = make()
        settings = TransformSettings(host_name="bench", state_of=monitor.state_of)
        for part in parts:
            prepared = prepare(part, Batch(settings, datetime.now(UTC)), monitor, **kw)
            if body:
                for chunk in chunks(prepared.actions, CHUNK_BYTES):
                    bulk_body(chunk)
    return go


def run_steps(parts: list[list[Meta]], upto: int) -> Callable[[], None]:
    """decode, then the first `upto` of: the enrich steps, route, record_id."""
    settings = TransformSettings(host_name="bench")
    chain: list[Callable[..., Any]] = list(STEPS)

    def go() -> None:
        for part in parts:
            batch = Batch(settings, datetime.now(UTC))
            for message in part:
                record = decode(message.value, settings.max_record_bytes)
                for step in chain[:upto]:
                    record = step(record, message, batch)
                if upto > len(chain):
                    route(record, message, batch)
                if upto > len(chain) + 1:
                    record_id(record, message)
    return go


def best(fn: Callable[[], None], rounds: int, n: int) -> float:
    return min(timed(fn) for _ in range(rounds)) / n / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", action="store_true", help="also the cost of each step of the chain")
    args = parser.parse_args(argv)
    messages = corpus(args.records)
    parts = batches(messages)
    n = len(messages)
    print(f"{n} records, {sum(len(m.value or b'') for m in messages) / n:.0f} bytes on average, "
          f"batches of {BATCH}, CPU time, best of {args.rounds}")
    # as the shipper runs (shipper/app.py): start-up objects frozen, the collector run rarely
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

    def health() -> HealthMonitor:
        return HealthMonitor(HealthSettings(), "default")  # owns every service, as a single replica

    rows = [
        ("prepare, null monitor", lambda path: run_prepare(parts, NullMonitor, False, path)),
        ("prepare, health monitor", lambda path: run_prepare(parts, health, False, path)),
        ("prepare + bulk_body, health monitor", lambda path: run_prepare(parts, health, True, path)),
    ]
    paths = ("fast", "python", "general")
    print(f"compiled part (native/): {'built' if NativeBatch is not None else 'not built: fast = python'}")
    print(f"{'':45s} {'fast':>8s} {'python':>8s} {'general':>8s}  (us/record)")
    for name, make in rows:
        runs = {path: make(path) for path in paths}
        times: dict[str, list[int]] = {path: [] for path in paths}
        for _ in range(args.rounds):  # interleaved, so all see the same load
            for path in paths:
                times[path].append(timed(runs[path]))
        print(f"{name:45s} " + " ".join(f"{min(times[p]) / n / 1000:8.2f}" for p in paths))
    if args.steps:
        names = ["decode (orjson.loads)", *(s.__name__ for s in STEPS), "route", "record_id"]
        previous = 0.0
        for upto, name in enumerate(names):
            total = best(run_steps(parts, upto), args.rounds, n)
            print(f"  {name:43s} {total - previous:6.2f} us/record")
            previous = total
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
