"""Health-alerting benchmark: flip a real loopback HTTP service's /health N times and measure
fail -> alert and recover -> resolve latency (webhook arrival and alert document searchable),
then blip it (one failed answer) and count the alerts that raises (target: none).

Real prober (2 s interval, 1 s timeout, confirmation probes every 0.25 s after a failure), real
broker, real shipper (subprocess, 3 failures to go down, 1 success to come back), real engine,
real webhook receiver. Run once with one shipper and once with three replicas in one consumer
group (topics of 6 partitions; the service's owner is whichever replica holds its partition).
Flap suppression is switched off (SHIPPER_HEALTH__FLAP_CHANGES=1000): 20 flips in a few minutes
*is* flapping, and with the default the alert would (correctly) stay open through them. Each flip
and blip starts at a random point of the probe cycle.

    make stack-up
    .venv/bin/python -m bench.bench_health --flips 20            # both runs: 1 and 3 replicas
    .venv/bin/python -m bench.bench_health --flips 20 --replicas 3
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from collector.probe.config import ProbeSettings
from collector.probe.prober import run as run_prober
from tests.health.loopback import FlipService, WebhookReceiver, wait_for
from tests.shipper.harness import Run, create_topic, delete_namespace, stop

TARGET_S = 3.0
NAMES = {"fail_webhook": "fail -> alert webhook", "fail_doc": "fail -> alert doc searchable",
         "recover_webhook": "recover -> resolved webhook", "recover_doc": "recover -> resolved doc searchable"}


def _stack_env() -> dict[str, str]:
    from stack.localstack import Config

    envfile = Config.from_env().state / "env"
    pairs = (line.partition("=") for line in envfile.read_text().splitlines()) if envfile.exists() else ()
    return {**{k: v for k, _, v in pairs if k}, **{k: v for k in ("KAFKA_BOOTSTRAP_SERVERS", "SEARCH_URL")
                                                      if (v := os.environ.get(k))}}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def count_alerts(client: httpx.AsyncClient, search_url: str, namespace: str, action: str) -> int:
    body = {"query": {"term": {"event.action": action}}}
    r = await client.post(f"{search_url}/logs-elk.alerts-{namespace}/_count?ignore_unavailable=true", json=body)
    return int(r.json().get("count", 0))


async def one_run(flips: int, blips: int, replicas: int, rnd: random.Random) -> tuple[dict[str, list[float]], int]:
    """Latencies per measure, and the alerts the blips raised."""
    env = _stack_env()
    unique = uuid.uuid4().hex[:10]
    world = Run(env["KAFKA_BOOTSTRAP_SERVERS"], env["SEARCH_URL"], unique, Path(tempfile.mkdtemp()))
    health_topic = f"health-{unique}"
    partitions = 6 if replicas > 1 else 1
    for topic in (world.logs_topic, health_topic):
        await create_topic(world.bootstrap, topic, partitions=partitions)
    service, hooks = FlipService(), WebhookReceiver()
    service.start()
    hooks.start()
    procs: list[subprocess.Popen[bytes]] = [
        world.start_shipper(f"shipper-{n}", SHIPPER_TOPICS=f"{world.logs_topic},{health_topic}",
                            SHIPPER_HEALTH_TOPICS=health_topic,
                            SHIPPER_HEALTH__WEBHOOK_URLS=hooks.url("hook"), SHIPPER_HEALTH__FLAP_CHANGES="1000")
        for n in range(replicas)]
    stop_probe = asyncio.Event()
    probe = asyncio.create_task(run_prober(ProbeSettings(
        kafka_bootstrap_servers=world.bootstrap, topic=health_topic, interval_s=2.0, timeout_s=1.0,
        confirm_interval_s=0.25, confirm_failures=3, targets=f"api-service-1={service.url}"), stop_probe))
    lat: dict[str, list[float]] = {key: [] for key in NAMES}
    blip_alerts = 0
    try:
        async with httpx.AsyncClient() as client:
            async def healthy_seen() -> bool:
                body = {"query": {"term": {"event.action": "health-transition"}}}
                r = await client.post(f"{world.search_url}/logs-elk.health-{world.namespace}/_count"
                                      "?ignore_unavailable=true", json=body)
                return int(r.json().get("count", 0)) > 0

            assert await wait_for(healthy_seen, 60), "shipper/prober not running"
            await asyncio.sleep(5 if replicas > 1 else 0)  # the group settles before the clock starts
            for i in range(flips):
                for healthy, action, key in ((False, "fired", "fail"), (True, "resolved", "recover")):
                    await asyncio.sleep(rnd.uniform(0.5, 2.5))  # a random phase of the probe cycle
                    flipped = time.time()
                    service.healthy = healthy

                    async def doc(action: str = action, i: int = i) -> bool:
                        return await count_alerts(client, world.search_url, world.namespace, action) > i

                    async def hook(action: str = action, i: int = i) -> bool:
                        return sum(r.body["event"]["action"] == action for r in hooks.received) > i

                    hook_at = await wait_for(hook, 60, every=0.05)
                    doc_at = await wait_for(doc, 10, every=0.1)
                    assert doc_at and hook_at, f"flip {i}: no {action}"
                    arrived = [r.at for r in hooks.received if r.body["event"]["action"] == action][i]
                    lat[f"{key}_webhook"].append(arrived - flipped)
                    lat[f"{key}_doc"].append(doc_at - flipped)
                print(f"[{replicas} replica(s)] flip {i + 1}/{flips}: fail->alert webhook "
                      f"{lat['fail_webhook'][-1]:.2f}s doc {lat['fail_doc'][-1]:.2f}s; recover->resolve webhook "
                      f"{lat['recover_webhook'][-1]:.2f}s doc {lat['recover_doc'][-1]:.2f}s", flush=True)
            before, probes_before = len(hooks.received), len(service.probes)
            for _ in range(blips):
                await asyncio.sleep(rnd.uniform(0.5, 2.5))
                service.fail_next = 1
                await asyncio.sleep(4.0)  # two probe intervals: any alert it raised has arrived
            blip_alerts = len(hooks.received) - before
            failed = sum(not ok for _, ok in service.probes[probes_before:])
            print(f"[{replicas} replica(s)] {blips} blips ({failed} failed answers): {blip_alerts} alerts", flush=True)
    finally:
        stop_probe.set()
        await probe
        codes = [stop(proc) for proc in procs]
        service.stop()
        hooks.stop()
        await delete_namespace(world.search_url, world.namespace)
    assert codes == [0] * replicas, f"shipper exit codes {codes}"
    return lat, blip_alerts


async def main(flips: int, seed: int, replicas: list[int]) -> int:
    rnd = random.Random(seed)
    ok = True
    results = [(n, *await one_run(flips, max(1, flips // 2), n, rnd)) for n in replicas]
    for n, lat, blip_alerts in results:
        print(f"\n{n} shipper replica(s), {flips} flips, {max(1, flips // 2)} blips -> {blip_alerts} alerts "
              f"(target 0); latencies in seconds (target p95 <= {TARGET_S:g})\n")
        print("| measure | p50 | p95 | max |\n| --- | ---: | ---: | ---: |")
        for key, values in lat.items():
            print(f"| {NAMES[key]} | {statistics.median(values):.2f} | {p95(values):.2f} | {max(values):.2f} |")
        ok = ok and blip_alerts == 0 and p95(lat["fail_webhook"]) <= TARGET_S \
            and p95(lat["recover_webhook"]) <= TARGET_S
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--replicas", default="1,3", help="comma list of shipper replica counts, one run each")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.flips, args.seed, [int(n) for n in args.replicas.split(",")])))
