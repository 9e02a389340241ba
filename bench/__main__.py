"""`make bench`: every benchmark, one after the other, each printing its own table.

Each one is also runnable alone (`python -m bench.bench_<part> --help`); docs/BENCHMARKS.md has
the figures and the command behind each.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("bench.bench_logging", "bench.bench_ingest", "bench.bench_otlp", "bench.bench_otlp_json",
              "bench.bench_shipper", "bench.bench_health", "bench.bench_tail")


def main() -> int:
    failed = []
    for module in BENCHMARKS:
        print(f"\n=== {module} ===", flush=True)
        if subprocess.run([sys.executable, "-m", module]).returncode != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
