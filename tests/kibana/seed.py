"""Pipeline data for the Kibana checks, written by the real shipper code into the real engine.

Service logs, metrics and probe results go through the shipper's own batch path (decode -> enrich
-> route -> health monitor -> bulk sink -> dead letters) after its setup installed the templates;
pipeline metrics come from the shipper's own document builder. Alert events are written in the
shape docs/ARCHITECTURE.md fixes (the health part that raises them is being built separately).
Every stream lands in one test namespace, so the checks see this data only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from collector.contract.streams import TOPIC_HEALTH, TOPIC_LOGS, TOPIC_METRICS
from shipper.config import ShipperSettings
from shipper.context import TransformSettings
from shipper.health import build_monitor
from shipper.pipeline import Pipeline
from shipper.pipeline_doc import pipeline_doc
from shipper.setup import install
from shipper.sink import BulkSink
from shipper.stats import Stats

SPIKE_SERVICE = "api-service"
SPIKE_ERRORS = 60  # above the error-spike rule's threshold (50 in 5 min)
INSTANCES = {"api-service": ["api-service-1", "api-service-2"], "web-service": ["web-service-1"]}


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Offsets:
    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def message(self, topic: str, value: bytes, when: datetime, key: str | None = None) -> Message:
        offset = self.next.get(topic, 0)
        self.next[topic] = offset + 1
        return Message(topic, 0, offset, int(when.timestamp() * 1000), value, key.encode() if key else None)


def probe(service: str, node: str, ok: bool, when: datetime) -> dict[str, Any]:
    return {
        "@timestamp": _iso(when), "message": f"probe {node} {'ok' if ok else 'failed'}",
        "event": {"kind": "state", "dataset": "elk.health", "action": "health-check",
                  "outcome": "success" if ok else "failure", "duration": 2_500_000 if ok else 5_000_000_000},
        "service": {"name": service, "node": {"name": node}},
        "url": {"full": f"http://{node}:8000/health"},
        "http": {"response": {"status_code": 200 if ok else 503}},
        "health": {"status": "healthy" if ok else "unhealthy", "body_status": "ok" if ok else "down"},
        **({} if ok else {"error": {"message": "HTTP 503"}}),
    }


def log_record(service: str, node: str, level: str, n: int, when: datetime) -> dict[str, Any]:
    record: dict[str, Any] = {
        "@timestamp": _iso(when), "log": {"level": level, "logger": f"{service}.handlers"},
        "message": f"{level} {n} from {node}", "ecs": {"version": "8.11.0"},
        "service": {"name": service, "version": "1.2.3", "environment": "test", "node": {"name": node}},
        "host": {"name": node}, "process": {"pid": 1000 + n % 7},
        "event": {"id": f"{service}-{level}-{n}", "duration": 1_000_000 * (n % 50 + 1)},
        "trace": {"id": uuid.uuid4().hex}, "span": {"id": uuid.uuid4().hex[:16]},
        "http": {"request": {"method": "GET"}, "response": {"status_code": 500 if level == "error" else 200}},
        "url": {"path": f"/items/{n % 5}"},
    }
    if level in ("error", "critical"):
        kind = ("TimeoutError", "KeyError", "ConnectionError")[n % 3]
        record["error"] = {"type": kind, "message": f"{kind}: item {n % 5}",
                           "stack_trace": f"Traceback (most recent call last):\n  ...\n{kind}: item {n % 5}"}
    return record


def metric(service: str, node: str, when: datetime, n: int) -> dict[str, Any]:
    return {
        "@timestamp": _iso(when), "log": {"level": "info"}, "message": "metric http.server.duration",
        "event": {"kind": "metric"}, "service": {"name": service, "node": {"name": node}}, "host": {"name": node},
        "metric": {"name": "http.server.duration", "type": "histogram", "unit": "ms", "count": 40 + n,
                   "sum": 400.0 + n, "min": 1.0, "max": 90.0 + n, "p50": 8.0 + n % 3, "p95": 40.0 + n % 5,
                   "p99": 80.0 + n % 7},
        "labels": {"route": "/items"},
    }


def alert(action: str, service: str, rule_name: str, when: datetime, started: datetime,
          severity: str) -> dict[str, Any]:
    state = "resolved" if action == "resolved" else "open"
    doc: dict[str, Any] = {
        "@timestamp": _iso(when), "message": f"{rule_name} {action} for {service}",
        "event": {"kind": "alert", "action": action, "dataset": "elk.alerts"},
        "rule": {"id": f"elk.{rule_name.replace(' ', '_')}", "name": rule_name},
        "alert": {"id": f"{rule_name}:{service}:{started.timestamp():.0f}", "state": state, "severity": severity,
                  "started": _iso(started)},
        "service": {"name": service},
    }
    if action == "resolved":
        doc["alert"]["resolved"] = _iso(when)
    return doc


def records(now: datetime) -> dict[str, list[tuple[str, str | None, bytes, datetime]]]:
    """(topic, key, value, time) per kind, over the 4 minutes before `now`.

    Probes: everyone healthy, then both api-service instances fail 3 times (service unhealthy), then
    api-service-2 recovers (service degraded). Logs: info/warning/error per service, with an error
    spike in api-service. Metrics: the request-latency histogram per instance. Bad: dead letters.
    """
    start = now - timedelta(minutes=4)
    out: dict[str, list[tuple[str, str | None, bytes, datetime]]] = {"probes": [], "logs": [], "metrics": [],
                                                                     "bad": []}
    for step in range(8):
        when = start + timedelta(seconds=10 * step)
        for service, nodes in INSTANCES.items():
            for node in nodes:
                ok = service != "api-service" or step < 2 or (node == "api-service-2" and step >= 6)
                out["probes"].append((TOPIC_HEALTH, node, orjson.dumps(probe(service, node, ok, when)), when))
    n = 0
    for service, nodes in INSTANCES.items():
        levels = ["info"] * 30 + ["warning"] * 5 + ["error"] * (SPIKE_ERRORS if service == SPIKE_SERVICE else 3)
        levels += ["critical"] if service == SPIKE_SERVICE else []
        for i, level in enumerate(levels):
            n += 1
            when = start + timedelta(seconds=(i * 200) // len(levels) + 30)
            node = nodes[i % len(nodes)]
            out["logs"].append((TOPIC_LOGS, service, orjson.dumps(log_record(service, node, level, n, when)), when))
    for step in range(8):
        when = start + timedelta(seconds=30 * step)
        for service, nodes in INSTANCES.items():
            for node in nodes:
                out["metrics"].append((TOPIC_METRICS, service, orjson.dumps(metric(service, node, when, step)), when))
    out["bad"] = [(TOPIC_LOGS, "api-service", b'{"message": "cut off', now),
                  (TOPIC_LOGS, "web-service", b"[1, 2, 3]", now),
                  (TOPIC_LOGS, None, b"\xff\xfe not utf-8", now)]
    return out


async def seed(search_url: str, namespace: str) -> dict[str, int]:
    """Writes every stream of one namespace; returns how many records went in per kind."""
    settings = ShipperSettings(search_url=search_url, namespace=namespace, stats_interval_s=1.0)
    engine = await install(settings)  # the shipper's own setup: templates in place first
    try:
        stats = Stats()
        monitor = build_monitor(settings)
        await monitor.start(engine)
        # as a consumer-group member: Kafka gives this replica partition 0 of every topic (all the seed writes)
        await monitor.partitions_assigned([(t, 0) for t in settings.topic_list], dict.fromkeys(settings.topic_list, 1))
        sink = BulkSink(engine, stats, max_bytes=settings.batch_max_bytes, concurrency=2,
                        retry_initial_s=0.1, retry_max_s=1.0)
        transform = TransformSettings(host_name="shipper-test", state_of=monitor.state_of, namespace=namespace,
                                      max_record_bytes=settings.max_record_bytes)
        published: list[tuple[bytes | None, bytes]] = []

        async def publish(entries: list[tuple[bytes | None, bytes]]) -> None:
            published.extend(entries)

        pipeline = Pipeline(sink=sink, stats=stats, settings=transform, monitor=monitor, publish_dead=publish)
        now = datetime.now(UTC)
        start = now - timedelta(minutes=4)
        offsets = _Offsets()
        batches = {kind: [offsets.message(topic, value, when, key) for topic, key, value, when in items]
                   for kind, items in records(now).items()}
        probes, logs, metrics, bad = batches["probes"], batches["logs"], batches["metrics"], batches["bad"]
        counts = {"probes": len(probes), "logs": len(logs), "metrics": len(metrics), "dead": len(bad),
                  "alerts": 0, "pipeline": 0}
        await pipeline.process(probes)  # first, so the logs get the health state stamped
        await pipeline.process(logs + metrics + bad)
        assert len(published) == len(bad), "the bad records must be dead-lettered"

        # pipeline metrics: the shipper's own document builder over its stats, three intervals
        last: dict[str, float] = {}
        docs = []
        for i, lag in enumerate((120, 40, 0)):
            stats.lag = {f"{TOPIC_LOGS}/0": lag}
            stats.retried += i
            stats.bulk.observe(0.05)
            when = now - timedelta(seconds=30 * (3 - i))
            docs.append(pipeline_doc(stats, last, host="shipper-test", namespace=namespace, now=when, window_s=10.0))
            last = stats.snapshot()
        await pipeline.write_docs(docs)
        counts["pipeline"] = len(docs)

        stream = {"type": "logs", "dataset": "elk.alerts", "namespace": namespace}
        fired = start + timedelta(seconds=60)
        alerts = [
            alert("fired", "api-service", "service unhealthy", fired, fired, "critical"),
            alert("renotified", "api-service", "service unhealthy", now - timedelta(seconds=20), fired, "critical"),
            alert("fired", "web-service", "error spike", start, start, "warning"),
            alert("resolved", "web-service", "error spike", start + timedelta(seconds=90), start, "warning"),
        ]
        await pipeline.write_docs([(f"alert-{i}", {**a, "data_stream": stream}) for i, a in enumerate(alerts)])
        counts["alerts"] = len(alerts)
        await engine.request("POST", f"/*-{namespace}/_refresh")
        return counts
    finally:
        await engine.close()
