"""Shipper benchmark: N realistic log records pre-loaded in Kafka once, then every contender in
turn, in one run, each into its own fresh data streams on the same engine:

  (a) ceiling  pre-built bulk bodies (the shipper's own output for these records) POSTed straight
               to the engine with the shipper's concurrency: no Kafka, no transform
  (b) rsyslog  imkafka -> omelasticsearch (Debian rsyslog-kafka, rsyslog-elasticsearch), in the foreground
  (c) naive    aiokafka + opensearch-py's async_streaming_bulk, stdlib json, the way one writes it first
  (d) ours     `shipper run` as a subprocess, configured through SHIPPER_* env vars, its own consumer group

Measured for each: seconds from its start until all N records are searchable (`_count` of its
streams, polled every 0.25 s, no forced refresh), CPU-seconds of its process(es) per million
records (utime + stime from /proc), its peak RSS (VmHWM), and the engine's CPU meanwhile.

    .venv/bin/python -m bench.bench_shipper --records 1000000      # the full run (preload once, ~1 min)
    .venv/bin/python -m bench.bench_shipper --records 200000 --only ceiling,ours

Servers: the local stack named by STACK_DIR etc. (as for the tests, `python -m stack up`); the
topic `bench-shipper-logs-<N>-<partitions>p-v1` and the ceiling's bodies (in $STACK_DIR/bench)
are reused by later runs with the same N.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import mmap
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from collector.contract.streams import LOGS, data_stream_name
from collector.contract.timefmt import format_ts, now_iso

N_DEFAULT = 1_000_000
GEN_VERSION = "v1"
CONTENDERS = ("ceiling", "rsyslog", "naive", "ours", "ours-alt")
NAMESPACE = {"ceiling": "benchceiling", "rsyslog": "benchrsyslog", "naive": "benchnaive", "ours": "benchours",
             "ours-alt": "benchoursalt"}
RSYSLOG_BIN = "/usr/sbin/rsyslogd"
RSYSLOG_MODULES = Path("/usr/lib/x86_64-linux-gnu/rsyslog")
REPO = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- realistic records

SERVICES: list[tuple[str, str, int]] = [  # (service, version, instances); weights below
    ("api-service", "2.14.1", 3), ("auth-service", "1.8.0", 2), ("payment-service", "3.2.5", 2),
    ("order-worker", "0.9.12", 4), ("frontend-gateway", "5.0.3", 2),
]
SERVICE_WEIGHTS = [40, 15, 10, 20, 15]
LEVELS = ["debug", "info", "warning", "error"]
LEVEL_WEIGHTS = [10, 72, 13, 5]
PATHS = ["/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/users/{id}", "/api/v1/cart", "/login", "/health",
         "/api/v1/payments", "/api/v1/search", "/static/app.js", "/api/v1/inventory/{sku}"]
MESSAGES = {
    "debug": ["cache lookup", "sql query executed", "feature flag evaluated", "retry budget checked",
              "connection pool stats"],
    "info": ["request completed", "user logged in", "order created", "payment authorized", "job finished",
             "token issued", "cart updated", "email queued", "inventory reserved", "session refreshed"],
    "warning": ["slow request", "login failed: bad password", "card declined", "retrying job",
                "rate limit close to quota", "deprecated API version used"],
    "error": ["upstream timeout", "database connection lost", "payment gateway returned 502",
              "unhandled exception in handler", "job failed after 5 attempts"],
}


def _exceptions() -> list[BaseException]:
    """Real exceptions with real tracebacks, a few frames deep, to put in error records."""
    def connect(host: str) -> None:
        raise ConnectionError(f"connection to {host}:5432 refused")

    def query(sql: str) -> None:
        try:
            connect("db-primary.internal")
        except ConnectionError as exc:
            raise RuntimeError(f"query failed: {sql}") from exc

    def handler(order: int) -> None:
        if order % 2:
            query("SELECT * FROM orders WHERE id = %s")
        raise TimeoutError(f"upstream payments-api did not answer within 5.0 s (order {order})")

    out: list[BaseException] = []
    for order in range(6):
        try:
            handler(order)
        except Exception as exc:
            out.append(exc)
    return out


def generate(n: int, seed: int = 42) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs: ECS log records exactly as collector.record.build renders them, for several
    services, instances, levels, with labels, http/url/trace objects and some stack traces."""
    from collector.record import Static, build
    from collector.redact import Redactor

    rnd = random.Random(seed)
    red = Redactor()
    statics = [[Static(svc, ver, "production", f"{svc}-{i + 1}", red) for i in range(inst)]
               for svc, ver, inst in SERVICES]
    errors = _exceptions()
    loggers = ["app", "app.http", "app.db", "app.jobs", "uvicorn.access", "app.payments"]
    start = datetime.now(UTC) - timedelta(hours=1)
    step_ms = 3_600_000 / max(n, 1)
    for i in range(n):
        s = rnd.choices(range(len(SERVICES)), SERVICE_WEIGHTS)[0]
        static = rnd.choice(statics[s])
        level = rnd.choices(LEVELS, LEVEL_WEIGHTS)[0]
        message = rnd.choice(MESSAGES[level])
        fields: dict[str, Any] = {"request_id": f"{rnd.getrandbits(64):016x}"}
        if rnd.random() < 0.6:
            path = rnd.choice(PATHS).replace("{id}", str(rnd.randint(1, 99999))).replace("{sku}", "SKU-"
                                                                                          + str(rnd.randint(1, 999)))
            status = 200 if level in ("debug", "info") else rnd.choice([400, 401, 404, 429, 500, 502, 503])
            fields["ecs"] = {
                "http": {"request": {"method": rnd.choice(["GET", "GET", "GET", "POST", "PUT", "DELETE"])},
                         "response": {"status_code": status}},
                "url": {"path": path},
                "event": {"duration": rnd.randint(200_000, 900_000_000)},
                "trace": {"id": f"{rnd.getrandbits(128):032x}"},
                "span": {"id": f"{rnd.getrandbits(64):016x}"},
            }
            fields["duration_ms"] = round(rnd.uniform(0.2, 900.0), 3)
        if rnd.random() < 0.5:
            fields["user_id"] = rnd.randint(1, 500_000)
        if s == 2:
            fields["amount"] = round(rnd.uniform(1, 500), 2)
            fields["currency"] = rnd.choice(["EUR", "USD", "GBP"])
        if s == 3:
            fields["job"] = rnd.choice(["send-invoice", "reindex", "sync-stock", "cleanup"])
            fields["attempt"] = rnd.randint(1, 5)
        if level == "error" and rnd.random() < 0.6:
            fields["exc_info"] = rnd.choice(errors)
        if rnd.random() < 0.05:
            fields["context"] = {"tenant": f"t-{rnd.randint(1, 40)}", "region": rnd.choice(["eu-west-1", "us-east-1"])}
        record = build(static, rnd.choice(loggers), level, message, fields)
        ts = start + timedelta(milliseconds=i * step_ms)
        record["@timestamp"] = format_ts(ts)
        yield static.service_name.encode(), orjson.dumps(record)


# --------------------------------------------------------------------------- servers and preload

@dataclass
class Env:
    kafka: str
    search: str
    state: Path


def stack_env() -> Env:
    sys.path.insert(0, str(REPO))
    from stack.localstack import Config

    state = Config.from_env().state
    values: dict[str, str] = {}
    envfile = state / "env"
    if envfile.exists():
        for line in envfile.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or values.get("KAFKA_BOOTSTRAP_SERVERS")
    search = os.environ.get("SEARCH_URL") or values.get("SEARCH_URL")
    if not kafka or not search:
        raise SystemExit(f"no stack endpoints in {envfile}: start it with `python -m stack up` (same env)")
    return Env(kafka, search.rstrip("/"), state)


async def _end_offsets(bootstrap: str, topic: str) -> int | None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = await consumer._client.fetch_all_metadata()  # no public call without subscribing
        ids = parts.partitions_for_topic(topic)
        if not ids:
            return None
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in ids])
        begins = await consumer.beginning_offsets([TopicPartition(topic, p) for p in ids])
        return sum(ends.values()) - sum(begins.values())
    finally:
        await consumer.stop()


async def preload(env: Env, topic: str, n: int, partitions: int, spool: Path, chunk_records: int,
                  chunk_bytes: int) -> None:
    """Topic with exactly n records and the ceiling's bulk bodies; both reused when already there."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    have = await _end_offsets(env.kafka, topic)
    if have == n and (spool / "index.json").exists():
        print(f"preload: reusing topic {topic} ({n} records) and {spool}")
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=env.kafka)
    await admin.start()
    try:
        if have is not None:
            await admin.delete_topics([topic])
            await asyncio.sleep(2)
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    await asyncio.to_thread(_fresh_dir, spool)
    builder = CeilingBuilder(spool, chunk_records, chunk_bytes)
    producer = AIOKafkaProducer(bootstrap_servers=env.kafka, linger_ms=20, max_batch_size=512 * 1024,
                                acks=1, max_request_size=4 * 1024 * 1024)
    await producer.start()
    t0 = time.monotonic()
    total = 0
    try:
        futures = []
        for i, (key, value) in enumerate(generate(n)):
            part = i % partitions
            futures.append(await producer.send(topic, value, key=key, partition=part))
            builder.add(topic, part, i // partitions, key, value)
            total += len(value)
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
            if i and i % 200_000 == 0:
                print(f"preload: {i} records, {time.monotonic() - t0:.0f} s")
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    builder.close()
    print(f"preload: {n} records ({total / n:.0f} bytes avg) into {topic} ({partitions} partitions) "
          f"in {time.monotonic() - t0:.1f} s; ceiling bodies in {spool}")


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


class CeilingBuilder:
    """The bulk bodies the shipper would send for these records (its own prepare + bulk_body), spooled
    to a file: the ceiling replays them without doing any of the work being measured."""

    def __init__(self, spool: Path, chunk_records: int, chunk_bytes: int) -> None:
        from shipper.context import TransformSettings

        self.settings = TransformSettings(host_name="bench", namespace=NAMESPACE["ceiling"])
        self.spool = spool
        self.file = (spool / "bodies.ndjson").open("wb")
        self.index: list[tuple[int, int, int]] = []
        self.pending: list[Any] = []
        self.chunk_records = chunk_records
        self.chunk_bytes = chunk_bytes
        self.offset = 0

    def add(self, topic: str, partition: int, offset: int, key: bytes, value: bytes) -> None:
        from shipper.provenance import Meta

        self.pending.append(Meta(topic, partition, offset, int(time.time() * 1000), key, (), value))
        if len(self.pending) >= self.chunk_records:
            self.flush()

    def flush(self) -> None:
        from shipper.bulk import bulk_body, chunks
        from shipper.context import Batch
        from shipper.monitor import NullMonitor
        from shipper.transform import prepare

        if not self.pending:
            return
        prepared = prepare(self.pending, Batch(self.settings, datetime.now(UTC)), NullMonitor())
        assert not prepared.dead, prepared.dead[:1]
        for chunk in chunks(prepared.actions, self.chunk_bytes):
            body = bulk_body(chunk)
            self.file.write(body)
            self.index.append((self.offset, len(body), len(chunk)))
            self.offset += len(body)
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.file.close()
        (self.spool / "index.json").write_text(json.dumps(self.index))


# --------------------------------------------------------------------------- the in-process contenders

async def worker_ceiling(search: str, spool: Path, concurrency: int, max_bodies: int | None = None) -> None:
    import aiohttp

    index = json.loads((spool / "index.json").read_text())[:max_bodies]
    with (spool / "bodies.ndjson").open("rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(data)
    from shipper.engines.base import BULK_FILTER_PATH

    url = f"{search}/_bulk?filter_path={BULK_FILTER_PATH}"
    headers = {"content-type": "application/x-ndjson"}
    slots = asyncio.Semaphore(concurrency)
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def post(offset: int, length: int) -> None:
            nonlocal errors
            async with slots, session.post(url, data=bytes(view[offset:offset + length]), headers=headers) as resp:
                answer = orjson.loads(await resp.read())
                if resp.status != 200 or answer.get("errors"):
                    errors += 1

        tasks: set[asyncio.Task[None]] = set()
        for offset, length, _ in index:
            await slots.acquire()  # keep at most `concurrency` bodies (and tasks) alive
            slots.release()
            task = asyncio.create_task(post(offset, length))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
    print(f"ceiling: {len(index)} bodies posted, {errors} with errors", flush=True)


async def worker_naive(kafka: str, search: str, topic: str, group: str, n: int) -> None:
    """What a first version looks like: consume, json.loads, add a field, async_streaming_bulk."""
    from aiokafka import AIOKafkaConsumer
    from opensearchpy import AsyncOpenSearch
    from opensearchpy.helpers import async_streaming_bulk

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, group_id=group, auto_offset_reset="earliest")
    client = AsyncOpenSearch(hosts=[search])
    await consumer.start()
    ns = NAMESPACE["naive"]

    async def actions() -> Any:
        seen = 0
        async for message in consumer:
            doc = json.loads(message.value)
            service = doc.get("service", {}).get("name", "unknown")
            doc.setdefault("event", {})["ingested"] = now_iso()
            yield {"_op_type": "create", "_index": data_stream_name(LOGS, service, ns), "_source": doc}
            seen += 1
            if seen >= n:
                return

    failed = 0
    try:
        async for ok, _ in async_streaming_bulk(client, actions(), raise_on_error=False, max_retries=3):
            failed += not ok
    finally:
        await consumer.stop()
        await client.close()
    print(f"naive: done, {failed} failed items", flush=True)


def run_worker(args: argparse.Namespace) -> int:
    if args.worker == "ceiling":
        asyncio.run(worker_ceiling(args.search, Path(args.spool), args.concurrency, args.max_bodies))
        if args.max_bodies is not None:  # the warm-up: nothing to measure
            return 0
    else:
        asyncio.run(worker_naive(args.kafka, args.search, args.topic, args.group, args.records))
    # stay alive (the harness reads our CPU and peak RSS, then stops us)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


# --------------------------------------------------------------------------- measuring

def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK


def proc_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Result:
    name: str
    ok: bool = False
    seconds: float = 0.0
    first_s: float = 0.0
    count: int = 0
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    engine_cpu_s: float = 0.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


class Engine:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None) -> Any:
        import urllib.error
        import urllib.request

        data = orjson.dumps(body) if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return orjson.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return {"status": exc.code, "error": exc.read().decode(errors="replace")[:300]}

    def count(self, ns: str) -> int:
        """Service log records only: the shipper's own streams (logs-elk.health, -deadletter) are not counted."""
        answer = self.call("GET", f"/logs-*-{ns},-logs-elk.*/_count?ignore_unavailable=true&allow_no_indices=true")
        return int(answer.get("count", 0))

    def streams(self, ns: str) -> dict[str, int]:
        """Documents per data stream of a contender (service streams and the shipper's own)."""
        answer = self.call("GET", f"/_cat/indices/*-{ns}?format=json&h=index,docs.count&expand_wildcards=all")
        out: dict[str, int] = {}
        for row in answer if isinstance(answer, list) else []:
            name = str(row["index"]).removeprefix(".ds-").rsplit("-", 1)[0]
            out[name] = out.get(name, 0) + int(row.get("docs.count") or 0)
        return out

    def reset(self, ns: str) -> None:
        self.call("DELETE", f"/_data_stream/*-{ns}")
        self.call("DELETE", f"/*-{ns}?ignore_unavailable=true&allow_no_indices=true")


def engine_pid(state: Path) -> int | None:
    try:
        return int((state / "opensearch" / "opensearch.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Every thread of a process (the engine's JVM) onto these CPUs; threads it starts later inherit it."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cpus)


def measure(name: str, cmd: list[str], env: dict[str, str], engine: Engine, ns: str, n: int, log: Path,
            epid: int | None, timeout: float, cwd: Path = REPO, cpus: set[int] | None = None,
            copies: int = 1) -> Result:
    """`copies` processes of `cmd` side by side (shipper replicas in one consumer group): CPU summed,
    peak RSS the largest."""
    engine.reset(ns)
    res = Result(name)
    engine_cpu0 = proc_cpu_s(epid) if epid else 0.0
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context((log if i == 0 else log.with_suffix(f".{i}.log")).open("wb"))
                for i in range(copies)]
        t0 = time.monotonic()
        procs = [subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                  start_new_session=True,
                                  preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
                 for out in outs]
        try:
            while True:
                time.sleep(0.25)
                res.count = engine.count(ns)
                now = time.monotonic() - t0
                if res.count and not res.first_s:
                    res.first_s = now
                # before they may exit
                cpu, hwm = sum(proc_cpu_s(p.pid) for p in procs), max(proc_hwm_mb(p.pid) for p in procs)
                if res.count >= n:
                    res.ok, res.seconds, res.cpu_s, res.rss_mb = True, now, cpu, hwm
                    break
                exited = next((p for p in procs if p.poll() is not None), None)
                if exited is not None:
                    res.note = f"exited with {exited.returncode} at {res.count} records (see {log})"
                    res.seconds, res.cpu_s, res.rss_mb = now, cpu, hwm
                    break
                if now > timeout:
                    res.note = f"timeout after {timeout:.0f} s at {res.count} records"
                    res.seconds, res.cpu_s, res.rss_mb = now, cpu, hwm
                    break
        finally:
            res.engine_cpu_s = (proc_cpu_s(epid) - engine_cpu0) if epid else 0.0
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    time.sleep(1.5)
    res.count = max(res.count, engine.count(ns))
    engine.call("POST", f"/*-{ns}/_refresh?ignore_unavailable=true&allow_no_indices=true")
    res.extra["streams"] = engine.streams(ns)
    own = {k: v for k, v in res.extra["streams"].items() if k.startswith("logs-elk.") or k.startswith("metrics-")}
    if own:
        res.note = (res.note + "; besides: " + ", ".join(f"{v} in {k}" for k, v in sorted(own.items()))).lstrip("; ")
    return res


def rsyslog_conf(workdir: Path, kafka: str, search: str, topic: str, group: str, concurrency: int,
                 max_bytes: int) -> Path:
    host, _, port = search.removeprefix("http://").partition(":")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{workdir}" maxMessageSize="1m")
module(load="{RSYSLOG_MODULES}/imkafka.so")
module(load="{RSYSLOG_MODULES}/omelasticsearch.so")
template(name="raw" type="string" string="%rawmsg%")
template(name="bulkid" type="string" string="%uuid%")
input(type="imkafka" broker="{kafka}" topic="{topic}" consumergroup="{group}" ruleset="es"
      confParam=["auto.offset.reset=earliest"])
ruleset(name="es" queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="5000"
        queue.workerThreads="{concurrency}") {{
  action(type="omelasticsearch" server="{host}" serverport="{port}"
         searchIndex="logs-rsyslog-{NAMESPACE['rsyslog']}" esVersion.major="8" bulkmode="on"
         maxbytes="{max_bytes}" template="raw" writeoperation="create" bulkid="bulkid" dynbulkid="on"
         errorFile="{workdir}/omes.err" action.resumeRetryCount="-1")
}}
""")
    return conf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", "-n", type=int, default=N_DEFAULT, help="records pre-loaded in Kafka")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--only", help="contenders, comma-separated (default: all; ours-alt only with "
                        "--alt-tree or --alt-env): " + ",".join(CONTENDERS))
    parser.add_argument("--timeout", type=float, default=1800.0, help="per contender, seconds")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds, contenders in alternating order; the best round of each counts")
    parser.add_argument("--alt-tree", help="contender ours-alt: the shipper from this source tree (a patched "
                        "copy of the repository), to compare a change with the current code in the same rounds")
    parser.add_argument("--alt-env", action="append", default=[], metavar="SHIPPER_X=V",
                        help="contender ours-alt: extra settings (repeatable), e.g. to compare a tuning")
    parser.add_argument("--processes", type=int, default=1,
                        help="shipper processes per `ours`/`ours-alt` run, one consumer group (CPU summed)")
    parser.add_argument("--pin", action="store_true", help="engine threads on the last CPU, contenders on the "
                        "others (the broker floats): contender and engine no longer compete for a core")
    parser.add_argument("--markdown", help="also write the result table (markdown) to this file")
    parser.add_argument("--worker", choices=["ceiling", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--kafka", help=argparse.SUPPRESS)
    parser.add_argument("--search", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--spool", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-bodies", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up of the engine")
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)

    from shipper.config import ShipperSettings

    defaults = ShipperSettings.model_construct()
    concurrency = int(os.environ.get("SHIPPER_BULK_CONCURRENCY", defaults.bulk_concurrency))
    batch_records = int(os.environ.get("SHIPPER_BATCH_MAX_RECORDS", defaults.batch_max_records))
    batch_bytes = int(os.environ.get("SHIPPER_BATCH_MAX_BYTES", defaults.batch_max_bytes))
    alt_env = dict(item.split("=", 1) for item in args.alt_env)
    default_only = [c for c in CONTENDERS if c != "ours-alt" or args.alt_tree or alt_env]
    only = [c.strip() for c in (args.only or ",".join(default_only)).split(",") if c.strip()]
    unknown = set(only) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {sorted(unknown)}")
    # a shipper installed by pip runs from compiled bytecode, which a checkout may lack (with
    # PYTHONDONTWRITEBYTECODE each start would compile every module again): compiled once here
    for tree in [REPO, *([Path(args.alt_tree)] if args.alt_tree else [])]:
        for package in ("collector", "shipper"):
            compileall.compile_dir(str(tree / package), quiet=1)
    env = stack_env()
    n = args.records
    topic = f"bench-shipper-logs-{n}-{args.partitions}p-{GEN_VERSION}"
    bench_dir = env.state / "bench"
    spool = bench_dir / topic
    asyncio.run(preload(env, topic, n, args.partitions, spool, batch_records, batch_bytes))
    engine = Engine(env.search)
    epid = engine_pid(env.state)
    run_id = f"{int(time.time())}"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPPER_", "COLLECTOR_"))}
    results: list[Result] = []
    py = sys.executable

    # the templates first (the shipper installs them too, idempotently): every contender writes into
    # data streams with the same mappings
    setup_env = {**child_env, "SHIPPER_SEARCH_URL": env.search, "SHIPPER_KAFKA_BOOTSTRAP_SERVERS": env.kafka}
    subprocess.run([py, "-m", "shipper.cli", "setup"], env=setup_env, check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    if not args.no_warmup:  # JIT, caches, first data-stream creation: paid before anyone is timed
        engine.reset(NAMESPACE["ceiling"])
        subprocess.run([py, "-m", "bench.bench_shipper", "--worker", "ceiling", "--search", env.search,
                        "--spool", str(spool), "--concurrency", str(concurrency), "--max-bodies", "20"],
                       env=child_env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        engine.reset(NAMESPACE["ceiling"])
        time.sleep(3)
    all_cpus = set(os.sched_getaffinity(0))
    contender_cpus: set[int] | None = None
    if args.pin and epid and len(all_cpus) >= 2:
        engine_cpus = {max(all_cpus)}
        contender_cpus = all_cpus - engine_cpus
        pin_threads(epid, engine_cpus)
        print(f"pinned: engine on CPU {sorted(engine_cpus)}, contenders on {sorted(contender_cpus)}", flush=True)
    for rnd in range(args.rounds):
        order = only if rnd % 2 == 0 else only[::-1]  # alternate: no contender always goes first
        for name in order:
            ns = NAMESPACE[name]
            log = bench_dir / f"{name}-{run_id}-{rnd}.log"
            cmd: list[str]
            cenv = dict(child_env)
            if name == "ceiling":
                cmd = [py, "-m", "bench.bench_shipper", "--worker", "ceiling", "--search", env.search,
                       "--spool", str(spool), "--concurrency", str(concurrency)]
            elif name == "naive":
                cmd = [py, "-m", "bench.bench_shipper", "--worker", "naive", "--kafka", env.kafka, "--search",
                       env.search, "--topic", topic, "--group", f"bench-naive-{run_id}-{rnd}",
                       "--records", str(n)]
            elif name == "rsyslog":
                if not (Path(RSYSLOG_BIN).exists() and (RSYSLOG_MODULES / "imkafka.so").exists()
                        and (RSYSLOG_MODULES / "omelasticsearch.so").exists()):
                    results.append(Result(name, note="rsyslog-kafka/rsyslog-elasticsearch not installed "
                                                     "(`make bench-deps`)"))
                    continue
                work = bench_dir / f"rsyslog-{run_id}-{rnd}"
                conf = rsyslog_conf(work, env.kafka, env.search, topic, f"bench-rsyslog-{run_id}-{rnd}",
                                    concurrency, batch_bytes)
                cmd = [RSYSLOG_BIN, "-n", "-f", str(conf), "-i", str(work / "rsyslogd.pid")]
            else:
                cmd = [py, "-m", "shipper.cli", "run"]
                cenv.update({
                    "SHIPPER_KAFKA_BOOTSTRAP_SERVERS": env.kafka, "SHIPPER_SEARCH_URL": env.search,
                    "SHIPPER_TOPICS": topic, "SHIPPER_GROUP_ID": f"bench-{name}-{run_id}-{rnd}",
                    "SHIPPER_NAMESPACE": ns, "SHIPPER_HTTP_PORT": "0",
                    "SHIPPER_DEAD_LETTER_TOPIC": f"bench-dead-letter-{run_id}-{rnd}",
                })
                cenv.update({k: v for k, v in os.environ.items() if k.startswith("SHIPPER_")})  # caller's tuning
                if name == "ours-alt":
                    cenv.update(alt_env)
            print(f"{name}: running ({' '.join(cmd[:6])} ...), log {log}", flush=True)
            res = measure(name, cmd, cenv, engine, ns, n, log, epid, args.timeout,
                          cwd=Path(args.alt_tree) if name == "ours-alt" and args.alt_tree else REPO,
                          cpus=contender_cpus, copies=args.processes if name.startswith("ours") else 1)
            if name == "rsyslog":
                err = bench_dir / f"rsyslog-{run_id}-{rnd}" / "omes.err"
                if err.exists() and err.stat().st_size:
                    res.note = (res.note + f"; item errors in {err}").lstrip("; ")
            res.extra["round"] = rnd + 1
            results.append(res)
            engine.reset(ns)  # the next contender starts on an engine without this one's segments to merge
            time.sleep(3)
            print(f"round {rnd + 1}, {name}: {'done' if res.ok else 'FAILED'} {res.count}/{n} in "
                  f"{res.seconds:.1f} s, {res.rate():,.0f} rec/s, cpu {res.cpu_s:.1f} s, "
                  f"peak RSS {res.rss_mb:.0f} MB {res.note}",
                  flush=True)
    if contender_cpus and epid:
        pin_threads(epid, all_cpus)
    report = render(results, n, concurrency, batch_records, batch_bytes,
                    f", engine pinned to CPU {max(all_cpus)}, contenders to the others" if contender_cpus else "")
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    return 0 if all(r.ok for r in results) else 1


LABELS = {"ceiling": "(a) engine ceiling (pre-built bulk bodies)",
          "rsyslog": "(b) rsyslog imkafka -> omelasticsearch",
          "naive": "(c) naive aiokafka + async_streaming_bulk", "ours": "**(d) shipper run**",
          "ours-alt": "(d') shipper run, variant (--alt-tree/--alt-env)"}


def best_of(results: list[Result]) -> dict[str, Result]:
    """Per contender: its fastest complete round (failed rounds only when none completed)."""
    out: dict[str, Result] = {}
    for r in results:
        old = out.get(r.name)
        if old is None or (r.ok, -r.seconds) > (old.ok, -old.seconds):
            out[r.name] = r
    return out


def render(results: list[Result], n: int, concurrency: int, batch_records: int, batch_bytes: int,
           setup: str = "") -> str:
    rounds = max((int(r.extra.get("round", 1)) for r in results), default=1)
    lines = [f"{n:,} records, bulk concurrency {concurrency}, batches of {batch_records} records / "
             f"{batch_bytes // 1024 // 1024} MB, {os.cpu_count()} CPUs{setup}, {rounds} round(s), best round shown, "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
             "| contender | all searchable after s | first after s | records/s | CPU-s per million | peak RSS MB "
             "| engine CPU-s | note |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    by = best_of(results)
    peak = {name: max(r.rss_mb for r in results if r.name == name) for name in by}
    for r in by.values():
        if r.count == 0 and not r.ok:
            lines.append(f"| {LABELS[r.name]} | - | - | - | - | - | - | {r.note} |")
            continue
        per_m = r.cpu_s / max(r.count, 1) * 1e6
        lines.append(f"| {LABELS[r.name]} | {r.seconds:.1f} | {r.first_s:.1f} | {r.rate():,.0f} | {per_m:.1f} | "
                     f"{peak[r.name]:.0f} | {r.engine_cpu_s:.0f} | {r.note} |")
    ours = by.get("ours")
    if ours and ours.ok:
        lines.append("")
        for peer, target, what in (("ceiling", 0.9, "ours / ceiling"), ("rsyslog", 1.0, "ours / rsyslog"),
                                   ("naive", 3.0, "ours / naive")):
            other = by.get(peer)
            if other and other.ok:
                ratio = ours.rate() / other.rate()
                lines.append(f"- {what} (throughput): **{ratio:.2f}x** (target >= {target:g}x): "
                             f"{'met' if ratio >= target else 'missed'}")
        rsyslog = by.get("rsyslog")
        if rsyslog and rsyslog.ok:  # issue 24: CPU per record against rsyslog's, in the same run
            ratio = (ours.cpu_s / ours.count) / (rsyslog.cpu_s / rsyslog.count)
            lines.append(f"- ours / rsyslog (CPU-s per million, best rounds): **{ratio:.2f}x** (target <= 1.25x, "
                         f"goal 1.0x): {'met' if ratio <= 1.25 else 'missed'}")
        lines.append(f"- peak RSS of the shipper: **{peak['ours']:.0f} MB** (target < 300 MB): "
                     f"{'met' if peak['ours'] < 300 else 'missed'}")
        alt = by.get("ours-alt")
        if alt and alt.ok:
            lines.append(f"- variant / ours: throughput **{alt.rate() / ours.rate():.2f}x**, CPU-s per million "
                         f"{alt.cpu_s / alt.count * 1e6:.1f} vs {ours.cpu_s / ours.count * 1e6:.1f} "
                         f"(**{alt.cpu_s / alt.count / (ours.cpu_s / ours.count):.2f}x**), "
                         f"peak RSS {peak['ours-alt']:.0f} MB")
    if rounds > 1:
        lines += ["", "Every round (records/s, CPU-s per million, peak RSS MB):", ""]
        for r in results:
            lines.append(f"- round {r.extra.get('round', 1)} {r.name}: {r.rate():,.0f} rec/s, "
                         f"{r.cpu_s / max(r.count, 1) * 1e6:.1f} CPU-s/M, {r.rss_mb:.0f} MB"
                         + ("" if r.ok else f" (FAILED: {r.note})"))
    return "\n".join(lines)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
