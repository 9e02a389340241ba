"""What the demo prints at the end: read back from the search engine, never from our own counters."""

from __future__ import annotations

from typing import Any

from opensearchpy import AsyncOpenSearch

from collector.contract.streams import (
    DATASET_ALERTS,
    DATASET_DEAD_LETTER,
    DATASET_HEALTH,
    LOGS,
    METRICS,
    OWN_DATASET_PREFIX,
    data_stream_name,
    data_stream_pattern,
)


async def _search(client: AsyncOpenSearch, index: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await client.search(index=index, body=body,
                                                 params={"ignore_unavailable": "true", "allow_no_indices": "true"})
    return result


async def collect(search_url: str, namespace: str) -> dict[str, Any]:
    client = AsyncOpenSearch(hosts=[search_url])
    everything = data_stream_pattern("*", namespace=namespace)
    health = data_stream_name(LOGS, DATASET_HEALTH, namespace)
    try:
        # Streams created in the last moments (an alert, a dead letter) may still be starting
        # their shard; a search before that fails with 503 instead of counting them.
        await client.cluster.health(index=everything, wait_for_status="yellow", timeout="30s",
                                    request_timeout=40)
        await client.indices.refresh(index=everything, params={"ignore_unavailable": "true",
                                                                      "allow_no_indices": "true"})
        logs = await _search(client, data_stream_pattern(LOGS, namespace=namespace), {
            "size": 0, "track_total_hits": True,
            "query": {"bool": {"must_not": [{"prefix": {"data_stream.dataset": OWN_DATASET_PREFIX}}]}},
            "aggs": {"service": {"terms": {"field": "service.name", "size": 50},
                                 "aggs": {"level": {"terms": {"field": "log.level", "size": 10}}}}},
        })
        metrics = await _search(client, data_stream_pattern(METRICS, namespace=namespace),
                                {"size": 0, "track_total_hits": True})
        transitions = await _search(client, health, {
            "size": 100, "sort": [{"@timestamp": "asc"}],
            "query": {"term": {"event.action": "health-transition"}},
            "_source": ["@timestamp", "service.name", "service.node.name", "health"],
        })
        checks = await _search(client, health, {
            "size": 0, "track_total_hits": True, "query": {"term": {"event.action": "health-check"}}})
        alerts = await _search(client, data_stream_name(LOGS, DATASET_ALERTS, namespace), {
            "size": 100, "sort": [{"@timestamp": "asc"}],
            "_source": ["@timestamp", "event.action", "rule.name", "service.name", "message"],
        })
        dead = await _search(client, data_stream_name(LOGS, DATASET_DEAD_LETTER, namespace), {
            "size": 0, "track_total_hits": True,
            "aggs": {"reason": {"terms": {"field": "error.type", "size": 20}}},
        })
    finally:
        await client.close()
    return {
        "logs_total": logs["hits"]["total"]["value"],
        "by_service": {
            b["key"]: {lv["key"]: lv["doc_count"] for lv in b["level"]["buckets"]}
            for b in logs["aggregations"]["service"]["buckets"]
        } if "aggregations" in logs else {},
        "metrics_total": metrics["hits"]["total"]["value"],
        "health_checks": checks["hits"]["total"]["value"],
        "transitions": [h["_source"] for h in transitions["hits"]["hits"]],
        "alerts": [h["_source"] for h in alerts["hits"]["hits"]],
        "dead_letters": dead["hits"]["total"]["value"],
        "dead_by_reason": {b["key"]: b["doc_count"] for b in dead.get("aggregations", {}).get("reason", {})
                           .get("buckets", [])},
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def render(data: dict[str, Any], latencies_ms: list[float], search_url: str, namespace: str) -> str:
    lines = ["", "=" * 72, "elk-pipeline demo: summary", "=" * 72, "",
             f"Log records indexed: {data['logs_total']}   metric documents: {data['metrics_total']}   "
             f"probe results: {data['health_checks']}", ""]
    levels = sorted({lv for per in data["by_service"].values() for lv in per})
    header = f"  {'service':<18}" + "".join(f"{lv:>10}" for lv in levels) + f"{'total':>10}"
    lines += ["Records per service and level:", header]
    for service, per in sorted(data["by_service"].items()):
        lines.append(f"  {service:<18}" + "".join(f"{per.get(lv, 0):>10}" for lv in levels)
                     + f"{sum(per.values()):>10}")
    lines += ["", "Health transitions:"]
    for t in data["transitions"] or [{"none": True}]:
        if "none" in t:
            lines.append("  (none)")
            continue
        health = t.get("health", {})
        who = t.get("service", {}).get("node", {}).get("name") or t.get("service", {}).get("name")
        lines.append(f"  {t['@timestamp']}  {health.get('scope', ''):<8} {who:<16} "
                     f"{health.get('from')} -> {health.get('to')}  ({health.get('reason', '')})")
    lines += ["", "Alerts:"]
    for a in data["alerts"] or [{"none": True}]:
        if "none" in a:
            lines.append("  (none)")
            continue
        lines.append(f"  {a['@timestamp']}  {a.get('event', {}).get('action', ''):<10} "
                     f"{a.get('rule', {}).get('name', ''):<22} {a.get('service', {}).get('name', '')}")
    lines += ["", f"Dead letters: {data['dead_letters']} {data['dead_by_reason'] or ''}", ""]
    if latencies_ms:
        lines.append(f"End-to-end latency, log call -> searchable ({len(latencies_ms)} markers): "
                     f"p50 {percentile(latencies_ms, 0.5):.0f} ms, p95 {percentile(latencies_ms, 0.95):.0f} ms")
    lines += [
        "",
        "Query it yourself:",
        f"  curl -s '{search_url}/{data_stream_pattern(LOGS, namespace=namespace)}/_search"
        "?q=log.level:error&size=3&pretty'",
        f"  curl -s '{search_url}/{data_stream_name(LOGS, DATASET_HEALTH, namespace)}/_search"
        "?q=event.action:health-transition&pretty'",
        f"  curl -s '{search_url}/_cat/indices/*{namespace}*?v'",
        "The same data in Kibana: run the Compose stack (docker compose -f docker-compose.yml "
        "-f docker-compose.monitoring.yml up -d)",
        "and open http://localhost:5601 -> Dashboards -> 'Services overview'.",
        "",
    ]
    return "\n".join(lines)
