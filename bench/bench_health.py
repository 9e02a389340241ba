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

`--kind` says how the service fails: `503` (the documented default), `refused` (nothing listens)
or `hang` (accepts, never answers); `--timeout` is the prober's PROBE_TIMEOUT_S. Besides the
latencies from the flip, "first failing probe -> alert webhook" is measured from the start of the
first failing probe (its searchable result: @timestamp minus event.duration), which takes the
phase of the probe cycle out.

    make stack-up
    .venv/bin/python -m bench.bench_health --flips 20            # both runs: 1 and 3 replicas
    .venv/bin/python -m bench.bench_health --flips 20 --replicas 3
    .venv/bin/python -m bench.bench_health --flips 10 --replicas 1 --kind hang --timeout 1.5
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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from collector.probe.config import ProbeSettings
from collector.probe.prober import run as run_prober
from tests.health.loopback import FlipService, SwitchService, WebhookReceiver, wait_for
from tests.shipper.harness import Run, create_topic, delete_namespace, stop

TARGET_S = 3.0
NAMES = {"probe_webhook": "first failing probe -> alert webhook",
         "fail_webhook": "fail -> alert webhook", "fail_doc": "fail -> alert doc searchable",
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


class Switched:
    """The service under test as the bench drives it: FlipService for 503 (as documented before),
    SwitchService (in this event loop) for a refused connection or a hang."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.flip = FlipService() if kind == "503" else None
        self.switch = SwitchService()  # unused for 503

    @property
    def url(self) -> str:
        return self.flip.url if self.flip else self.switch.url

    async def start(self) -> None:
        if self.flip:
            self.flip.start()
        else:
            await self.switch.listen()

    async def set(self, healthy: bool) -> None:
        if self.flip:
            self.flip.healthy = healthy
        else:
            await self.switch.set("ok" if healthy else self.kind)

    async def blip(self) -> None:
        """One failed answer (503 or hang); a refusal of 0.1 s, which at most one probe meets."""
        if self.flip:
            self.flip.fail_next = 1
        elif self.kind == "hang":
            self.switch.hang_next = 1
        else:
            await self.set(False)
            await asyncio.sleep(0.1)
            await self.set(True)

    def failed_answers(self) -> int | None:
        if self.flip:
            return sum(not ok for _, ok in self.flip.probes)
        return None if self.kind == "refused" else len(self.switch.failed)

    async def stop(self) -> None:
        if self.flip:
            self.flip.stop()
        else:
            await self.switch.close()


async def first_failing_probe(client: httpx.AsyncClient, search_url: str, namespace: str, since: float) -> float | None:
    """time.time() at which the first probe that failed after `since` started (its result's @timestamp
    minus its duration)."""
    body: dict[str, Any] = {"size": 20, "sort": [{"@timestamp": "asc"}], "query": {"bool": {"filter": [
        {"term": {"event.action": "health-check"}}, {"term": {"health.status": "unhealthy"}},
        {"range": {"@timestamp": {"gte": int(since * 1000), "format": "epoch_millis"}}}]}}}
    stream = f"logs-elk.health-{namespace}"
    await client.post(f"{search_url}/{stream}/_refresh?ignore_unavailable=true")
    r = await client.post(f"{search_url}/{stream}/_search?ignore_unavailable=true", json=body)
    starts = [datetime.fromisoformat(h["_source"]["@timestamp"].replace("Z", "+00:00")).timestamp()
              - h["_source"]["event"]["duration"] / 1e9 for h in r.json().get("hits", {}).get("hits", [])]
    starts = [t for t in starts if t >= since - 0.01]
    return min(starts) if starts else None


async def one_run(flips: int, blips: int, replicas: int, rnd: random.Random, kind: str = "503",
                  timeout_s: float = 1.0) -> tuple[dict[str, list[float]], int]:
    """Latencies per measure, and the alerts the blips raised."""
    env = _stack_env()
    unique = uuid.uuid4().hex[:10]
    world = Run(env["KAFKA_BOOTSTRAP_SERVERS"], env["SEARCH_URL"], unique, Path(tempfile.mkdtemp()))
    health_topic = f"health-{unique}"
    partitions = 6 if replicas > 1 else 1
    for topic in (world.logs_topic, health_topic):
        await create_topic(world.bootstrap, topic, partitions=partitions)
    service, hooks = Switched(kind), WebhookReceiver()
    await service.start()
    hooks.start()
    procs: list[subprocess.Popen[bytes]] = [
        world.start_shipper(f"shipper-{n}", SHIPPER_TOPICS=f"{world.logs_topic},{health_topic}",
                            SHIPPER_HEALTH_TOPICS=health_topic,
                            SHIPPER_HEALTH__WEBHOOK_URLS=hooks.url("hook"), SHIPPER_HEALTH__FLAP_CHANGES="1000")
        for n in range(replicas)]
    stop_probe = asyncio.Event()
    probe = asyncio.create_task(run_prober(ProbeSettings(
        kafka_bootstrap_servers=world.bootstrap, topic=health_topic, interval_s=2.0, timeout_s=timeout_s,
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
                    await service.set(healthy)

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
                    if not healthy:
                        async def probed(since: float = flipped) -> float | None:
                            return await first_failing_probe(client, world.search_url, world.namespace, since)

                        first = None
                        for _ in range(40):
                            if (first := await probed()) is not None:
                                break
                            await asyncio.sleep(0.25)
                        assert first is not None, f"flip {i}: no failing probe result"
                        lat["probe_webhook"].append(arrived - first)
                print(f"[{replicas} replica(s)] flip {i + 1}/{flips} ({kind}): first failing probe->alert webhook "
                      f"{lat['probe_webhook'][-1]:.2f}s; fail->alert webhook "
                      f"{lat['fail_webhook'][-1]:.2f}s doc {lat['fail_doc'][-1]:.2f}s; recover->resolve webhook "
                      f"{lat['recover_webhook'][-1]:.2f}s doc {lat['recover_doc'][-1]:.2f}s", flush=True)
            before, failed_before = len(hooks.received), service.failed_answers()
            for _ in range(blips):
                await asyncio.sleep(rnd.uniform(0.5, 2.5))
                await service.blip()
                await asyncio.sleep(4.0)  # two probe intervals: any alert it raised has arrived
            blip_alerts = len(hooks.received) - before
            failed_after = service.failed_answers()
            failed = "?" if failed_after is None or failed_before is None else failed_after - failed_before
            print(f"[{replicas} replica(s)] {blips} {kind} blips ({failed} failed answers): {blip_alerts} alerts",
                  flush=True)
    finally:
        stop_probe.set()
        await probe
        codes = [stop(proc) for proc in procs]
        await service.stop()
        hooks.stop()
        await delete_namespace(world.search_url, world.namespace)
    assert codes == [0] * replicas, f"shipper exit codes {codes}"
    return lat, blip_alerts


async def main(flips: int, seed: int, replicas: list[int], kind: str = "503", timeout_s: float = 1.0) -> int:
    rnd = random.Random(seed)
    ok = True
    results = [(n, *await one_run(flips, max(1, flips // 2), n, rnd, kind, timeout_s)) for n in replicas]
    for n, lat, blip_alerts in results:
        print(f"\n{n} shipper replica(s), failure kind {kind}, probe timeout {timeout_s:g} s, {flips} flips, "
              f"{max(1, flips // 2)} blips -> {blip_alerts} alerts "
              f"(target 0); latencies in seconds (target p95 <= {TARGET_S:g})\n")
        print("| measure | p50 | p95 | max |\n| --- | ---: | ---: | ---: |")
        for key, values in lat.items():
            print(f"| {NAMES[key]} | {statistics.median(values):.2f} | {p95(values):.2f} | {max(values):.2f} |")
        # from the flip includes the phase of the 2 s cycle: the documented 503 run is held to it too
        ok = ok and blip_alerts == 0 and p95(lat["probe_webhook"]) <= TARGET_S \
            and p95(lat["recover_webhook"]) <= TARGET_S and (kind != "503" or p95(lat["fail_webhook"]) <= TARGET_S)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--replicas", default="1,3", help="comma list of shipper replica counts, one run each")
    parser.add_argument("--kind", choices=("503", "refused", "hang"), default="503", help="how the service fails")
    parser.add_argument("--timeout", type=float, default=1.0, help="the prober's timeout, seconds")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.flips, args.seed, [int(n) for n in args.replicas.split(",")],
                                      args.kind, args.timeout)))
