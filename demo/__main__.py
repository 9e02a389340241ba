"""`make demo`: the whole pipeline on this machine, without Docker, on simulated seed services.

Starts the shipper, the ingest API and the prober against the local Kafka and OpenSearch, runs
api-service-1, api-service-2, auth-service (Python, logging through the collector library) and
an nginx front (access logs through the ingest API), drives traffic with errors and one induced
outage of auth-service, then reads everything back from the engine and prints a summary.
Exits non-zero if the pipeline did not deliver.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opensearchpy import AsyncOpenSearch, TransportError

from collector.contract.streams import (
    LOGS,
    TOPIC_DEAD_LETTER,
    TOPIC_HEALTH,
    TOPIC_LOGS,
    TOPIC_METRICS,
    data_stream_name,
)
from collector.contract.timefmt import now_iso, parse_epoch
from demo.procs import Processes, free_port, wait_http
from demo.summary import collect, render
from stack.localstack import Config

NAMESPACE = "demo"
SERVICES = ("api-service-1", "api-service-2", "auth-service")


def say(message: str) -> None:
    print(f"[demo {now_iso()[11:19]}Z] {message}", flush=True)


class WebhookReceiver:
    """Where the shipper delivers alerts during the demo (a Slack or generic webhook in real life)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    receiver.calls.append(orjson.loads(body))
                except orjson.JSONDecodeError:
                    receiver.calls.append({"raw": body.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


async def reset(cfg: Config) -> None:
    """A clean slate: the demo's topics and data streams from an earlier run are removed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap)
    await admin.start()
    try:
        topics = [TOPIC_LOGS, TOPIC_METRICS, TOPIC_HEALTH, TOPIC_DEAD_LETTER]
        existing = set(await admin.list_topics())
        if existing & set(topics):
            await admin.delete_topics([t for t in topics if t in existing])
            await asyncio.sleep(2)
        for _ in range(20):
            try:
                await admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1) for t in topics])
                break
            except Exception:  # topic deletion is asynchronous in Kafka
                await asyncio.sleep(1)
    finally:
        await admin.close()
    client = AsyncOpenSearch(hosts=[cfg.search_url])
    try:
        await client.indices.delete_data_stream(name=f"*-{NAMESPACE}", ignore=[404])
    finally:
        await client.close()


async def traffic(front: str, seconds: float, outage: tuple[float, float], markers: list[str],
                  services: dict[str, str]) -> int:
    """Requests through nginx at ~25/s, logins at auth-service, and auth-service down for a while."""
    sent = 0
    started = time.monotonic()
    in_outage = False
    async with httpx.AsyncClient(timeout=5) as client:
        while (elapsed := time.monotonic() - started) < seconds:
            if not in_outage and outage[0] <= elapsed < outage[1]:
                in_outage = True
                await client.post(f"{services['auth-service']}/admin/health", params={"ok": "false"})
                say("induced outage: auth-service reports unhealthy and fails its logins")
            elif in_outage and elapsed >= outage[1]:
                in_outage = False
                await client.post(f"{services['auth-service']}/admin/health", params={"ok": "true"})
                say("auth-service recovered")
            batch = [client.get(f"{front}/api/users/{random.randint(1, 500)}") for _ in range(4)]
            batch.append(client.post(f"{services['auth-service']}/auth/login",
                                     json={"user": f"u{random.randint(1, 50)}",
                                           "password": "wrong" if random.random() < 0.1 else "hunter2"}))
            await asyncio.gather(*batch, return_exceptions=True)
            sent += len(batch)
            if int(elapsed) // 3 > len(markers) - 1:  # one latency marker every 3 s
                marker = secrets.token_hex(6)
                markers.append(marker)
                await client.post(f"{services['api-service-1']}/admin/mark", params={"marker": marker})
            if int(elapsed) % 10 == 0 and int(elapsed) != int(elapsed - 0.2):
                say(f"t+{elapsed:4.0f}s  requests sent: {sent}")
            await asyncio.sleep(0.2)
    return sent


async def watch_markers(search_url: str, markers: list[str], latencies: dict[str, float],
                        stop: asyncio.Event, grace: float = 30.0) -> None:
    """Log call -> searchable, while the traffic runs: each marker's own @timestamp against the
    moment a search first finds it (polled every 0.2 s). After `stop`, waits up to `grace`
    seconds for the last ones."""
    client = AsyncOpenSearch(hosts=[search_url])
    stopped_at: float | None = None
    try:
        while True:
            pending = [m for m in markers if m not in latencies]
            if stop.is_set():
                stopped_at = stopped_at or time.monotonic()
                if not pending or time.monotonic() - stopped_at > grace:
                    return
            if pending:
                try:
                    result = await client.search(index=data_stream_name(LOGS, "api-service", NAMESPACE), body={
                        "size": 100, "_source": ["@timestamp", "labels.marker"],
                        "query": {"terms": {"labels.marker": pending}}},
                        params={"ignore_unavailable": "true", "allow_no_indices": "true"})
                except TransportError:
                    # The shipper's first write creates the data stream; until its shard has
                    # started, searches fail with 503. Not an error of the pipeline: poll again.
                    await asyncio.sleep(0.2)
                    continue
                now = time.time()
                for hit in result["hits"]["hits"]:
                    marker = hit["_source"].get("labels", {}).get("marker")
                    if marker in pending:
                        logged = parse_epoch(hit["_source"]["@timestamp"])
                        if logged is not None:
                            latencies[marker] = (now - logged) * 1000
            await asyncio.sleep(0.2)
    finally:
        await client.close()


async def shipper_caught_up(ops_url: str, within: float) -> bool:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=3) as client:
        while time.monotonic() < deadline:
            try:
                text = (await client.get(f"{ops_url}/metrics")).text
                lags = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("shipper_consumer_lag{")]
                if lags and not any(lags):
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    return False


async def run(seconds: float) -> int:
    cfg = Config.from_env()
    say(f"local stack: Kafka {cfg.bootstrap}, OpenSearch {cfg.search_url}")
    await reset(cfg)
    workdir = Path(tempfile.mkdtemp(prefix="elk-demo-"))
    tokens = workdir / "tokens"
    tokens.mkdir()
    nginx_token = secrets.token_urlsafe(24)
    (tokens / "nginx").write_text(nginx_token)
    procs = Processes(workdir / "logs")
    webhook = WebhookReceiver()
    ports = {name: free_port() for name in (*SERVICES, "nginx", "ingest", "shipper")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    kafka = {"KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap}
    try:
        say("starting the shipper, the ingest API and the simulated services")
        shipper = procs.start("shipper", ["-m", "shipper.cli", "run"], {
            **kafka, "SHIPPER_SEARCH_URL": cfg.search_url, "SHIPPER_GROUP_ID": "elk-demo",
            "SHIPPER_NAMESPACE": NAMESPACE, "SHIPPER_HTTP_PORT": str(ports["shipper"]),
            "SHIPPER_BATCH_LINGER_MS": "100", "SHIPPER_HEALTH__WEBHOOK_URLS": webhook.url,
            "SHIPPER_INDEX_REPLICAS": "0",  # the local stack is a single node
        })
        ingest = procs.start("ingest", ["-m", "collector.cli", "serve"], {
            "INGEST_KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap, "INGEST_HOST": "127.0.0.1",
            "INGEST_PORT": str(ports["ingest"]), "INGEST_TOKENS_DIR": str(tokens),
        })
        for name in SERVICES:
            procs.start(name, ["-m", "demo.service", "--instance", name, "--port", str(ports[name])], {
                "COLLECTOR_OUTPUTS": "kafka", "COLLECTOR_KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap,
                "COLLECTOR_METRICS_INTERVAL": "5",
            })
        nginx = procs.start("nginx", ["-m", "demo.service", "--instance", "nginx", "--port", str(ports["nginx"]),
                                      "--upstream", urls["api-service-1"], "--upstream", urls["api-service-2"]],
                            {"DEMO_INGEST_URL": urls["ingest"], "DEMO_INGEST_TOKEN": nginx_token})
        wait_http(f"{urls['shipper']}/health", 90, shipper)
        wait_http(f"{urls['ingest']}/health", 30, ingest)
        for name in SERVICES:
            wait_http(f"{urls[name]}/health", 30)
        wait_http(f"{urls['nginx']}/health", 30, nginx)
        targets = ",".join(f"{name}={urls[name]}/health" for name in (*SERVICES, "nginx"))
        procs.start("prober", ["-m", "collector.cli", "probe"], {
            "PROBE_KAFKA_BOOTSTRAP_SERVERS": cfg.bootstrap, "PROBE_TARGETS": targets,
            "PROBE_INTERVAL_S": "2", "PROBE_TIMEOUT_S": "1",
        })
        say(f"everything is up; driving traffic for {seconds:.0f}s (logs of every process in {procs.logdir})")
        markers: list[str] = []
        latencies: dict[str, float] = {}
        stop_watch = asyncio.Event()
        watcher = asyncio.create_task(watch_markers(cfg.search_url, markers, latencies, stop_watch))
        outage = (seconds * 0.3, seconds * 0.6)
        sent = await traffic(urls["nginx"], seconds, outage, markers, {n: urls[n] for n in SERVICES})
        procs.check_alive()
        say(f"traffic done ({sent} requests); flushing the services and waiting for the shipper to catch up")
        emitted: dict[str, dict[str, Any]] = {}
        async with httpx.AsyncClient(timeout=15) as client:
            for name in SERVICES:
                emitted[name] = (await client.post(f"{urls[name]}/admin/flush")).json()
            await asyncio.sleep(2.5)  # nginx forwards its access log once a second
            emitted["nginx"] = (await client.get(f"{urls['nginx']}/admin/stats")).json()
        await asyncio.sleep(3)
        caught_up = await shipper_caught_up(urls["shipper"], 60)
        stop_watch.set()
        await watcher
        await asyncio.sleep(2)
        data = await collect(cfg.search_url, NAMESPACE)
        print(render(data, list(latencies.values()), cfg.search_url, NAMESPACE))
        print(f"Webhook deliveries received: {len(webhook.calls)} "
              f"({', '.join(sorted({str(c.get('event', {}).get('action')) for c in webhook.calls})) or 'none'})")
        problems = []
        if not caught_up:
            problems.append("the shipper did not catch up within 60 s")
        if len(latencies) < len(markers):
            problems.append(f"only {len(latencies)} of {len(markers)} latency markers became searchable")
        nginx_indexed = sum(data["by_service"].get("nginx", {}).values())
        if nginx_indexed != emitted["nginx"]["accepted"]:
            problems.append(f"nginx: the ingest API accepted {emitted['nginx']['accepted']} records, "
                            f"{nginx_indexed} are indexed")
        if not any(t.get("health", {}).get("to") == "unhealthy" for t in data["transitions"]):
            problems.append("the induced outage produced no unhealthy transition")
        if problems:
            say("the pipeline did not deliver: " + "; ".join(problems) + f" (process logs in {procs.logdir})")
            return 1
        say("done: the pipeline delivered")
        return 0
    finally:
        procs.stop_all()
        webhook.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=90, help="how long to drive traffic (default 90)")
    args = parser.parse_args()
    return asyncio.run(run(args.seconds))


if __name__ == "__main__":
    sys.exit(main())
