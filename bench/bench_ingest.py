"""Ingest API benchmark: records/s accepted (202, i.e. acknowledged by Kafka with acks=all) with
500-record NDJSON batches against one real uvicorn worker on loopback and the real broker, vs the
ceiling: the same records produced straight to the broker by aiokafka in one process (same
producer settings, same batches, same concurrency).

    .venv/bin/python -m bench.bench_ingest                 # 200k records, 4 requests in flight
    .venv/bin/python -m bench.bench_ingest --records 50000 --concurrency 2
    .venv/bin/python -m bench.bench_ingest --alt-tree /tmp/before   # also the API of another source tree

`--alt-tree` runs a second API from a copy of the repository (e.g. `git archive` of an older commit)
in the same rounds, in alternating order, so a change is compared with its baseline under the same
load: on a shared machine, per-round ratios mean more than absolute figures.

The broker is KAFKA_BOOTSTRAP_SERVERS, else the local stack's $STACK_DIR/env (`make stack-up`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-" + uuid.uuid4().hex  # throwaway, only for this run


def bootstrap() -> str:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    from stack.localstack import Config

    envfile = Config.from_env().state / "env"
    for line in envfile.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "KAFKA_BOOTSTRAP_SERVERS":
            return value.strip()
    raise SystemExit("no broker: set KAFKA_BOOTSTRAP_SERVERS or run `make stack-up`")


def make_records(n: int) -> list[bytes]:
    """Records as the library renders them (so both sides produce the same bytes)."""
    import collector
    from collector.record import build
    from collector.state import STATE

    collector.configure(service="api-service", outputs="memory", metrics_interval=0, capture_stdlib=False)
    assert STATE.static is not None
    out = [orjson.dumps(build(STATE.static, "api.users", "info", "user logged in",
                              {"user_id": i, "path": "/api/users/login", "ms": 12.5})) for i in range(n)]
    collector.shutdown()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _end_offsets(bs: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bs)
    await producer.start()
    try:
        parts = await producer.partitions_for(topic)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bs)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def ceiling(bs: str, batches: list[list[bytes]], concurrency: int, topic: str, batched: bool) -> float:
    from aiokafka import AIOKafkaProducer

    from collector.ingest.producer import BatchSender

    producer = AIOKafkaProducer(bootstrap_servers=bs, acks="all", enable_idempotence=False,
                                max_batch_size=1 << 20, linger_ms=0, request_timeout_ms=5000)
    await producer.start()
    sender = BatchSender(producer)
    key = b"api-service"
    try:
        await (await producer.send(topic, batches[0][0], key=key))  # metadata, topic creation
        queue = list(reversed(batches))

        async def worker() -> None:
            while queue:
                batch = queue.pop()
                if batched:  # ready-made record batches, as the ingest API produces them
                    futures = await sender.send(topic, [(key, rec) for rec in batch])
                else:
                    futures = [await producer.send(topic, rec, key=key) for rec in batch]
                await asyncio.gather(*futures)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - t0
    finally:
        await producer.stop()
    return sum(len(b) for b in batches) / took


async def through_api(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    accepted = 0
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        warm = await client.post("/v1/logs", content=bodies[0], headers=headers)
        assert warm.status_code == 202, warm.text
        warm_n = warm.json()["accepted"]
        queue = list(reversed(bodies))

        async def worker() -> None:
            nonlocal accepted
            while queue:
                body = queue.pop()
                resp = await client.post("/v1/logs", content=body, headers=headers)
                assert resp.status_code == 202, (resp.status_code, resp.text[:300])
                doc = resp.json()
                assert not doc["rejected"], doc["rejected"][:3]
                accepted += doc["accepted"]

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - t0
    return accepted / took, accepted + warm_n


def start_server(bs: str, topic: str, port: int, command: str = "serve",
                 port_var: str = "INGEST_PORT", tree: Path = REPO) -> subprocess.Popen[bytes]:
    """`collector serve` (or `collector otlp`, port in INGEST_OTLP_PORT) with a throwaway token."""
    env = {**os.environ, "INGEST_KAFKA_BOOTSTRAP_SERVERS": bs, port_var: str(port),
           "INGEST_TOPIC_LOGS": topic, "INGEST_TOPIC_METRICS": topic + "-m", "INGEST_TOPIC_HEALTH": topic + "-h",
           "INGEST_TOKENS": orjson.dumps({"api-service": hashlib.sha256(TOKEN.encode()).hexdigest()}).decode(),
           "COLLECTOR_OUTPUTS": "stdout", "COLLECTOR_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "collector.cli", command], cwd=tree, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"collector {command} did not start")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight at once (both sides)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each side counts")
    parser.add_argument("--alt-tree", type=Path, help="also run the API of this source tree, in the same rounds")
    args = parser.parse_args()
    bs = bootstrap()
    records = make_records(args.records)
    batches = [records[i:i + args.batch] for i in range(0, len(records), args.batch)]
    bodies = [b"\n".join(batch) + b"\n" for batch in batches]
    run = uuid.uuid4().hex[:8]
    print(f"broker {bs}; {len(records)} records of ~{sum(map(len, records)) // len(records)} bytes in "
          f"{len(batches)} NDJSON batches of {args.batch}; {args.concurrency} in flight; {os.cpu_count()} CPUs")
    api_topic = f"bench-ingest-api-{run}"
    servers = {"api": (api_topic, free_port(), REPO)}
    if args.alt_tree:
        servers["alt"] = (f"bench-ingest-alt-{run}", free_port(), args.alt_tree.resolve())
    procs = {name: start_server(bs, topic, port, tree=tree) for name, (topic, port, tree) in servers.items()}
    best = {"send": 0.0, "batch": 0.0, "api": 0.0, "alt": 0.0}
    sent = {"api": 0, "alt": 0}
    try:
        for round_ in range(args.rounds):
            rate: dict[str, float] = {}
            rate["send"] = await ceiling(bs, batches, args.concurrency, f"bench-ingest-send-{run}-{round_}", False)
            rate["batch"] = await ceiling(bs, batches, args.concurrency, f"bench-ingest-batch-{run}-{round_}", True)
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for name in order:
                rate[name], n = await through_api(f"http://127.0.0.1:{servers[name][1]}", bodies, args.concurrency)
                sent[name] += n
            line = (f"round {round_ + 1}: aiokafka send() {rate['send']:,.0f} rec/s   aiokafka send_batch() "
                    f"{rate['batch']:,.0f} rec/s   ingest API {rate['api']:,.0f} rec/s   (this round: "
                    f"{rate['api'] / rate['send']:.2f} of send(), {rate['api'] / rate['batch']:.2f} of send_batch())")
            if "alt" in rate:
                line += f"   alt-tree API {rate['alt']:,.0f} rec/s (API / alt-tree: {rate['api'] / rate['alt']:.2f})"
            print(line, flush=True)
            for name, value in rate.items():
                best[name] = max(best[name], value)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(15)
    print(f"\naiokafka send() per record:      {best['send']:,.0f} records/s")
    print(f"aiokafka send_batch() per batch: {best['batch']:,.0f} records/s")
    print(f"ingest API (1 uvicorn worker):   {best['api']:,.0f} records/s")
    for name, base in (("send() per record", best["send"]), ("send_batch()", best["batch"])):
        ratio = best["api"] / base
        print(f"ratio vs {name}: {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'missed'})")
    if "alt" in servers:
        print(f"alt-tree API ({servers['alt'][2]}): {best['alt']:,.0f} records/s; "
              f"API / alt-tree best to best: {best['api'] / best['alt']:.2f}")
    for name, (topic, _port, _tree) in servers.items():
        in_kafka = await _end_offsets(bs, topic)
        label = {"api": "API", "alt": "alt-tree API"}[name]
        print(f"records accepted by the {label}: {sent[name]}; in its Kafka topic: {in_kafka}"
              f" ({'equal' if in_kafka == sent[name] else 'MISMATCH'})")


if __name__ == "__main__":
    asyncio.run(main())
