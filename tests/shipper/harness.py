"""Running the real shipper as a subprocess against the real broker and engine, and counting."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opensearchpy import AsyncOpenSearch

STARTING = b'"message":"starting"'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Run:
    """One test's isolated world: its own topics, consumer group and data-stream namespace."""

    bootstrap: str
    search_url: str
    unique: str
    logdir: Path

    @property
    def namespace(self) -> str:
        return f"t{self.unique}"

    @property
    def logs_topic(self) -> str:
        return f"logs-{self.unique}"

    @property
    def health_topic(self) -> str:
        """The topic in the health role (SHIPPER_HEALTH_TOPICS); a test that wants it adds it to SHIPPER_TOPICS."""
        return f"health-{self.unique}"

    @property
    def dead_topic(self) -> str:
        return f"dead-{self.unique}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPPER_")}
        env.update({
            "SHIPPER_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "SHIPPER_SEARCH_URL": self.search_url,
            "SHIPPER_GROUP_ID": f"g-{self.unique}",
            "SHIPPER_TOPICS": self.logs_topic,
            "SHIPPER_HEALTH_TOPICS": self.health_topic,
            "SHIPPER_DEAD_LETTER_TOPIC": self.dead_topic,
            "SHIPPER_NAMESPACE": self.namespace,
            "SHIPPER_HTTP_PORT": "0",
            "SHIPPER_BATCH_LINGER_MS": "100",
        })
        env.update(extra)
        return env

    def start_shipper(self, name: str = "shipper", **extra: str) -> subprocess.Popen[bytes]:
        """Returns once the shipper has logged "starting": from then on SIGTERM is a clean stop."""
        path = self.logdir / f"{name}.log"
        before = path.read_bytes().count(STARTING) if path.exists() else 0
        with open(path, "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen([sys.executable, "-m", "shipper.cli", "run"], env=self.env(**extra),
                                    stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while path.read_bytes().count(STARTING) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return proc


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, values: Iterable[bytes], key: bytes | None = None) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024,
                                linger_ms=5)
    await producer.start()
    n = 0
    try:
        futures = []
        for value in values:
            futures.append(await producer.send(topic, value, key=key))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


def log_record(n: int, service: str = "api-service", **fields: Any) -> bytes:
    record = {"@timestamp": "2026-11-28T12:00:00.000Z", "log": {"level": "INFO"}, "message": f"request {n}",
              "service": {"name": service}, "event": {"id": f"rec-{n}"}, **fields}
    return orjson.dumps(record)


def record_key(hit: dict[str, Any]) -> str:
    """What names a test record: its event.id (the _id is derived from it and the raw bytes), else its _id."""
    own = ((hit.get("_source") or {}).get("event") or {}).get("id")
    return own if isinstance(own, str) else str(hit["_id"])


async def ids_in(search_url: str, index: str) -> list[str]:
    """The record key (see record_key) of every document in `index`: a record indexed twice shows twice."""
    client = AsyncOpenSearch(hosts=[search_url])
    try:
        await client.indices.refresh(index=index, ignore_unavailable=True)
        out: list[str] = []
        response = await client.search(index=index, body={"size": 5000, "_source": ["event.id"], "sort": ["_doc"]},
                                       params={"scroll": "1m", "ignore_unavailable": "true"})
        while True:
            hits = response["hits"]["hits"]
            if not hits:
                break
            out += [record_key(h) for h in hits]
            response = await client.scroll(scroll_id=response["_scroll_id"], params={"scroll": "1m"})
        return out
    finally:
        await client.close()


async def count(search_url: str, index: str) -> int:
    client = AsyncOpenSearch(hosts=[search_url])
    try:
        await client.indices.refresh(index=index, ignore_unavailable=True)
        result = await client.count(index=index, params={"ignore_unavailable": "true"})
        return int(result["count"])
    except Exception:
        return 0
    finally:
        await client.close()


async def wait_count(search_url: str, index: str, want: int, within: float = 60.0) -> int:
    deadline = time.monotonic() + within
    got = 0
    while time.monotonic() < deadline:
        got = await count(search_url, index)
        if got >= want:
            return got
        await asyncio.sleep(0.5)
    return got


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


async def delete_namespace(search_url: str, namespace: str) -> None:
    client = AsyncOpenSearch(hosts=[search_url])
    try:
        await client.indices.delete_data_stream(name=f"*-{namespace}", ignore=[404])
    finally:
        await client.close()


async def ops_metrics(port: int) -> dict[str, float]:
    """A shipper's /metrics as {name with labels: value}."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


async def sources_in(search_url: str, index: str, fields: list[str]) -> list[dict[str, Any]]:
    """`_id` and the given source fields of every document in `index`."""
    client = AsyncOpenSearch(hosts=[search_url])
    try:
        await client.indices.refresh(index=index, ignore_unavailable=True)
        out: list[dict[str, Any]] = []
        response = await client.search(index=index, body={"size": 5000, "_source": fields, "sort": ["_doc"]},
                                       params={"scroll": "1m", "ignore_unavailable": "true"})
        while hits := response["hits"]["hits"]:
            out += [{"_id": h["_id"], **h["_source"]} for h in hits]
            response = await client.scroll(scroll_id=response["_scroll_id"], params={"scroll": "1m"})
        return out
    finally:
        await client.close()
