"""OTLP/JSON decoding with and without the record count read from the bytes first (issue 23 item 4),
one core, no HTTP, no Kafka: `collector.otlp.decode.parse` as committed ("after") against the same
call with `bound.scan_json` switched off ("before": orjson parses, then the count). Bodies: a
500-record request like bench_otlp's (as OTLP/JSON), one of 9,000 records (~3 MB), and three floods
over the record limit of 10,000 (10 MiB of `{}` records, of `{}` resources, of small lists).

    .venv/bin/python -m bench.bench_otlp_json              # best of 5 per body
    .venv/bin/python -m bench.bench_otlp_json --rounds 3

Prints seconds per call (best of the rounds) and the peak traced memory (tracemalloc) of one call.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from bench.bench_otlp import otlp_body
from collector.otlp import bound, decode

LIMIT = 10_000


def json_body(n: int) -> bytes:
    return orjson.dumps(json_format.MessageToDict(ExportLogsServiceRequest.FromString(otlp_body(0, n))))


def bodies() -> dict[str, bytes]:
    records = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":['
    return {
        "500 records (bench_otlp's, JSON)": json_body(500),
        "9,000 records": json_body(9_000),
        "10 MiB of {} records (413)": records + b"{}," * 3_500_000 + b"{}]}]}]}",
        "10 MiB of {} resources (413)": b'{"resourceLogs":[' + b"{}," * 3_500_000 + b"{}]}",
        "10 MiB of [[[[0]]]] records (413)": records + b"[[[[0]]]]," * 1_000_000 + b"{}]}]}]}",
    }


def parse(body: bytes) -> Any:
    try:
        return decode.parse(body, decode.JSON, ExportLogsServiceRequest, bound.LOGS, LIMIT)
    except bound.TooMany:
        return None


def measure(call: Callable[[], Any], rounds: int) -> tuple[float, int]:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scan = bound.scan_json
    print(f"{'body':36} {'bytes':>10} {'before s':>9} {'after s':>9} {'ratio':>6} {'before MB':>10} {'after MB':>9}")
    for name, body in bodies().items():
        bound.scan_json = lambda *a: None  # type: ignore[assignment]
        try:
            before, before_peak = measure(lambda: parse(body), args.rounds)  # noqa: B023
        finally:
            bound.scan_json = scan  # type: ignore[assignment]
        after, after_peak = measure(lambda: parse(body), args.rounds)  # noqa: B023
        print(f"{name:36} {len(body):>10,} {before:>9.4f} {after:>9.4f} {after / before:>6.2f} "
              f"{before_peak / 1e6:>10.1f} {after_peak / 1e6:>9.1f}")


if __name__ == "__main__":
    main()
