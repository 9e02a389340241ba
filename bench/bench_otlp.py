"""OTLP intake benchmark: log records/s accepted (200, i.e. acknowledged by Kafka with acks=all) as
500-record OTLP/HTTP protobuf requests to `collector otlp`, next to the NDJSON ingest API with the
same records and batches (bench.bench_ingest) and the raw producer ceiling (aiokafka send_batch()
in one process, same settings). One uvicorn worker each, loopback, the real broker.

    .venv/bin/python -m bench.bench_otlp                  # 100k records, 4 requests in flight, 2 rounds
    .venv/bin/python -m bench.bench_otlp --records 50000 --rounds 1

The broker is KAFKA_BOOTSTRAP_SERVERS, else the local stack's $STACK_DIR/env (`make stack-up`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from bench.bench_ingest import (
    TOKEN,
    _end_offsets,
    bootstrap,
    ceiling,
    free_port,
    make_records,
    start_server,
    through_api,
)


def otlp_body(first: int, n: int) -> bytes:
    """One ExportLogsServiceRequest with the records bench_ingest sends as NDJSON (same fields)."""
    now = time.time_ns()
    records = [LogRecord(
        time_unix_nano=now, observed_time_unix_nano=now, severity_number=9, severity_text="INFO",
        body=AnyValue(string_value="user logged in"),
        attributes=[KeyValue(key="user_id", value=AnyValue(int_value=i)),
                    KeyValue(key="path", value=AnyValue(string_value="/api/users/login")),
                    KeyValue(key="ms", value=AnyValue(double_value=12.5))],
    ) for i in range(first, first + n)]
    scope = ScopeLogs(log_records=records)
    scope.scope.name = "api.users"
    resource = ResourceLogs(scope_logs=[scope])
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="api-service")))
    return ExportLogsServiceRequest(resource_logs=[resource]).SerializeToString()


async def through_otlp(url: str, bodies: list[tuple[bytes, int]], concurrency: int) -> tuple[float, int]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
    accepted = 0
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        warm = await client.post("/v1/logs", content=bodies[0][0], headers=headers)
        assert warm.status_code == 200, warm.content
        queue = list(reversed(bodies))

        async def worker() -> None:
            nonlocal accepted
            while queue:
                body, n = queue.pop()
                resp = await client.post("/v1/logs", content=body, headers=headers)
                assert resp.status_code == 200, (resp.status_code, resp.content[:300])
                answer = ExportLogsServiceResponse.FromString(resp.content)
                assert not answer.partial_success.rejected_log_records, answer
                accepted += n

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - t0
    return accepted / took, accepted + bodies[0][1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (every side)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each side counts")
    args = parser.parse_args()
    bs = bootstrap()
    records = make_records(args.records)
    batches = [records[i:i + args.batch] for i in range(0, len(records), args.batch)]
    ndjson = [b"\n".join(batch) + b"\n" for batch in batches]
    otlp = [(otlp_body(i, len(batch)), len(batch)) for i, batch in zip(range(0, len(records), args.batch), batches,
                                                                       strict=True)]
    run = uuid.uuid4().hex[:8]
    print(f"broker {bs}; {len(records)} records in {len(batches)} requests of {args.batch}; NDJSON "
          f"~{sum(map(len, ndjson)) // len(ndjson)} bytes, OTLP protobuf ~{sum(len(b) for b, _ in otlp) // len(otlp)}"
          f" bytes per request; {args.concurrency} in flight; {os.cpu_count()} CPUs")
    ndjson_topic, otlp_topic = f"bench-otlp-ndjson-{run}", f"bench-otlp-otlp-{run}"
    ingest_port, otlp_port = free_port(), free_port()
    ingest = start_server(bs, ndjson_topic, ingest_port)
    os.environ["INGEST_OTLP_GRPC_PORT"] = "0"  # HTTP only: no fixed port to collide with
    intake = start_server(bs, otlp_topic, otlp_port, command="otlp", port_var="INGEST_OTLP_PORT")
    best = {"ceiling": 0.0, "ndjson": 0.0, "otlp": 0.0}
    sent = {"ndjson": 0, "otlp": 0}
    try:
        for round_ in range(args.rounds):
            c = await ceiling(bs, batches, args.concurrency, f"bench-otlp-ceiling-{run}-{round_}", True)
            n, n_sent = await through_api(f"http://127.0.0.1:{ingest_port}", ndjson, args.concurrency)
            o, o_sent = await through_otlp(f"http://127.0.0.1:{otlp_port}", otlp, args.concurrency)
            sent["ndjson"] += n_sent
            sent["otlp"] += o_sent
            print(f"round {round_ + 1}: producer send_batch() {c:,.0f} rec/s   NDJSON intake {n:,.0f} rec/s   "
                  f"OTLP intake {o:,.0f} rec/s")
            best = {"ceiling": max(best["ceiling"], c), "ndjson": max(best["ndjson"], n), "otlp": max(best["otlp"], o)}
    finally:
        for proc in (ingest, intake):
            proc.terminate()
            proc.wait(15)
    print(f"\nproducer ceiling (send_batch): {best['ceiling']:,.0f} records/s")
    print(f"NDJSON ingest API:             {best['ndjson']:,.0f} records/s")
    print(f"OTLP/HTTP protobuf intake:     {best['otlp']:,.0f} records/s")
    ratio = best["otlp"] / best["ndjson"]
    print(f"OTLP / NDJSON: {ratio:.2f} (target >= 1.00: {'met' if ratio >= 1 else 'missed'}); "
          f"OTLP / ceiling: {best['otlp'] / best['ceiling']:.2f}; "
          f"NDJSON / ceiling: {best['ndjson'] / best['ceiling']:.2f}")
    for name, topic in (("ndjson", ndjson_topic), ("otlp", otlp_topic)):
        in_kafka = await _end_offsets(bs, topic)
        same = "equal" if in_kafka == sent[name] else "MISMATCH"
        print(f"{name}: accepted {sent[name]}, in Kafka {in_kafka} ({same})")


if __name__ == "__main__":
    asyncio.run(main())
