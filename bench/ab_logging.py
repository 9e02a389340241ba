"""A/B of the logging library's per-call cost between two trees of this repository (e.g. before
and after a change): the same cases as bench_logging's library rows, each tree in fresh processes
taking turns, CPU time, best of 5 rounds per process, median over the processes.

    mkdir /tmp/before && git archive <commit> collector | tar -x -C /tmp/before
    .venv/bin/python -m bench.ab_logging --old-tree /tmp/before --pairs 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = ("floor", "get_logger().info", "stdlib bridge", "debug() below the level")


def measure(n: int, rounds: int = 5) -> list[float]:
    """In the tree on sys.path: CPU ns per call of each case, best of `rounds` interleaved rounds."""
    import logging

    import orjson

    import collector
    from collector.record import build

    # a tree from before the split keeps its state in collector.pipeline
    root = Path(collector.__file__).parent
    module = "collector.state" if (root / "state.py").exists() else "collector.pipeline"
    state = __import__(module, fromlist=["STATE"]).STATE

    collector.configure(service="bench-service", outputs="memory", metrics_interval=0)
    mem = collector.outputs()["memory"]
    log = collector.get_logger("bench")
    record = build(state.static, "bench", "info", "user logged in", {"user_id": 42, "path": "/login"})
    std = logging.getLogger("bench.stdlib")
    std.setLevel(logging.INFO)

    def ours() -> None:
        log.info("user logged in", user_id=42, path="/login")
        mem.records.clear()

    def bridged() -> None:
        std.info("user logged in", extra={"user_id": 42, "path": "/login"})
        mem.records.clear()

    fns = (lambda: orjson.dumps(record), ours, bridged, lambda: log.debug("not shown", user_id=42))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.process_time_ns()
            for _ in range(n):
                fn()
            best[i] = min(best[i], (time.process_time_ns() - t0) / n)
    return best


def run_tree(tree: Path, n: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # this file loaded by path: the tree's own `collector` (first on the path) is the one measured
    code = ("import importlib.util as u; "
            f"s = u.spec_from_file_location('ab_logging', {str(Path(__file__).resolve())!r}); "
            f"m = u.module_from_spec(s); s.loader.exec_module(m); print(*m.measure({n}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=True)
    return [float(x) for x in out.stdout.split()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old-tree", type=Path, required=True)
    parser.add_argument("--new-tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("-n", type=int, default=40_000)
    args = parser.parse_args(argv)
    old: list[list[float]] = []
    new: list[list[float]] = []
    for _ in range(args.pairs):
        new.append(run_tree(args.new_tree.resolve(), args.n))
        old.append(run_tree(args.old_tree.resolve(), args.n))
    # the floor is the same C call in both trees: its ratio is the run's own bias (load, order),
    # and dividing by it leaves the code's
    medians = [(statistics.median(r[i] for r in old), statistics.median(r[i] for r in new)) for i in range(len(CASES))]
    bias = medians[0][1] / medians[0][0]
    print(f"{'case':26} {'old ns':>8} {'new ns':>8} {'new/old':>8} {'/ floor':>8}")
    for case, (before, after) in zip(CASES, medians, strict=True):
        print(f"{case:26} {before:8.0f} {after:8.0f} {after / before:8.2f} {after / before / bias:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
