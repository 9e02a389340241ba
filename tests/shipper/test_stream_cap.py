"""The cap on service data streams (issue 20 item 7): pure routing tests, then the real shipper
driven past the cap against the real broker and OpenSearch, with exact counts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from shipper.context import Batch, TransformSettings
from shipper.provenance import Meta
from shipper.route import route
from shipper.streamcap import StreamCap
from tests.shipper.harness import (
    Run,
    create_topic,
    delete_namespace,
    free_port,
    ids_in,
    log_record,
    ops_metrics,
    produce,
    sources_in,
    stop,
    wait_count,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _route(cap: StreamCap, service: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    record = {"service": {"name": service}, **fields}
    batch = Batch(TransformSettings(host_name="h", namespace="prod", streams=cap), NOW)
    return route(record, Meta("elk-logs", 0, 0, 0), batch), record


def test_past_the_cap_new_datasets_go_to_the_catch_all_and_admitted_ones_keep_theirs() -> None:
    cap = StreamCap(3)
    assert [_route(cap, f"svc-{n}")[0] for n in range(3)] == [f"logs-svc_{n}-prod" for n in range(3)]
    stream, record = _route(cap, "svc-3")
    assert stream == "logs-overflow-prod"
    assert record["data_stream"] == {"type": "logs", "dataset": "overflow", "namespace": "prod"}
    assert record["event"]["dataset"] == "overflow" and record["service"]["name"] == "svc-3"
    # a metric document of an admitted service is a new stream as well: past the cap, the metrics catch-all
    assert _route(cap, "svc-0", event={"kind": "metric"})[0] == "metrics-overflow-prod"
    # admitted streams keep their records, whatever came since; health is never capped
    assert _route(cap, "svc-1")[0] == "logs-svc_1-prod"
    health = Batch(TransformSettings(host_name="h", namespace="prod", streams=cap), NOW)
    assert route({"service": {"name": "x"}}, Meta("elk-health", 0, 0, 0), health) == "logs-elk.health-prod"
    assert (cap.admitted, cap.overflowed, cap.hit) == (3, 2, True)
    metrics = "\n".join(cap.metrics())
    assert "shipper_stream_overflow_total 2" in metrics and "shipper_streams 3" in metrics


def test_a_service_named_like_the_catch_all_shares_it_outside_the_count() -> None:
    cap = StreamCap(1)
    assert _route(cap, "overflow")[0] == "logs-overflow-prod"
    assert _route(cap, "api-service")[0] == "logs-api_service-prod"
    assert (cap.admitted, cap.overflowed) == (1, 0)


def test_existing_streams_of_the_namespace_count_against_the_cap() -> None:
    cap = StreamCap(3)
    cap.load(["logs-a-prod", "metrics-a-prod", "logs-elk.health-prod", "logs-overflow-prod", "logs-b-test",
              "logs-b-prod", "weird-c-prod"], "prod")
    assert cap.admitted == 3  # logs-a, metrics-a, logs-b: the own streams, the catch-all and other namespaces not
    assert _route(cap, "b")[0] == "logs-b-prod"
    assert _route(cap, "c")[0] == "logs-overflow-prod"
    crowded = StreamCap(1)
    crowded.load(["logs-a-prod", "logs-b-prod"], "prod")  # more than the cap already: all of them kept
    assert [_route(crowded, s)[0] for s in ("a", "b", "c")] == ["logs-a-prod", "logs-b-prod", "logs-overflow-prod"]


async def _templates(search_url: str, pattern: str) -> list[str]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{search_url}/_index_template/{pattern}")
        return sorted(t["name"] for t in r.json().get("index_templates", [])) if r.status_code == 200 else []


async def _streams(search_url: str, namespace: str) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{search_url}/_data_stream/logs-*-{namespace},metrics-*-{namespace}")
        names = [s["name"] for s in r.json()["data_streams"]]
        await client.post(f"{search_url}/*-{namespace}/_refresh")
        out = {}
        for name in names:
            out[name] = int((await client.get(f"{search_url}/{name}/_count")).json()["count"])
        return out


async def _metrics_when(port: int, name: str, want: float) -> dict[str, float]:
    seen: dict[str, float] = {}
    for _ in range(240):
        try:
            seen = await ops_metrics(port)
        except httpx.HTTPError:
            seen = {}
        if seen.get(name, -1) >= want:
            break
        await asyncio.sleep(0.25)
    return seen


@pytest.mark.stack
async def test_a_producer_inventing_names_is_capped_and_the_others_are_indexed(run: Run) -> None:
    """SHIPPER_MAX_STREAMS=5: a well-behaved service, then 20 invented names (10 records each,
    round robin) and metric documents of one more, then the well-behaved service again. Exactly 5
    service streams and 5 service templates are made, every record is indexed once (in its own
    stream below the cap, in the catch-all above), the counter says how many went to the catch-all
    and one log line says the cap was hit. After a restart the existing streams still count."""
    await create_topic(run.bootstrap, run.logs_topic, partitions=1)
    ns, u = run.namespace, run.unique
    good = [log_record(n, "api-service") for n in range(50)]
    hostile = [log_record(1000 + 20 * i + h, f"h{h}-{u}") for i in range(10) for h in range(20)]
    metric = [log_record(2000 + n, f"m-{u}", event={"id": f"rec-{2000 + n}", "kind": "metric"}) for n in range(5)]
    later = [log_record(3000 + n, "api-service") for n in range(50)]
    await produce(run.bootstrap, run.logs_topic, good + hostile + metric + later)
    port = free_port()
    env = {"SHIPPER_MAX_STREAMS": "5", "SHIPPER_HTTP_PORT": str(port)}
    shipper = run.start_shipper(**env)
    try:
        seen = await _metrics_when(port, "shipper_indexed_total", 305)
        # the one alert that says so (health rule stream_cap), written while the shipper runs
        alerts = await wait_count(run.search_url, f"logs-elk.alerts-{ns}", 1, within=60)
    finally:
        assert stop(shipper) == 0
    try:
        assert seen["shipper_indexed_total"] == 305 and seen["shipper_dead_lettered_total"] == 0
        assert seen["shipper_streams"] == 5 and seen["shipper_streams_max"] == 5
        assert seen["shipper_stream_overflow_total"] == 16 * 10 + 5
        streams = await _streams(run.search_url, ns)
        admitted = {f"logs-h{h}_{u}-{ns}": 10 for h in range(4)}  # the first four names that came
        assert streams == {f"logs-api_service-{ns}": 100, **admitted, f"logs-overflow-{ns}": 160,
                           f"metrics-overflow-{ns}": 5, f"logs-elk.alerts-{ns}": 1}
        assert alerts == 1
        [alert] = await sources_in(run.search_url, f"logs-elk.alerts-{ns}", ["rule", "event.action"])
        assert (alert["rule"]["id"], alert["event"]["action"]) == ("stream_cap", "fired")
        ids = await ids_in(run.search_url, f"logs-*-{ns},metrics-*-{ns},-*elk.*")
        assert sorted(ids) == sorted(orjson.loads(v)["event"]["id"] for v in good + hostile + metric + later)
        overflow = await ids_in(run.search_url, f"logs-overflow-{ns}")
        assert {f"rec-{1000 + 20 * i + h}" for i in range(10) for h in range(4, 20)} == set(overflow)
        assert await _templates(run.search_url, f"elk-pipeline-*-*{u}") == \
            sorted(f"elk-pipeline-logs-h{h}_{u}" for h in range(4))
        log_text = (run.logdir / "shipper.log").read_text()
        assert log_text.count('"message":"stream cap reached') == 1  # once (the alert's reason says it too)

        # a restart: the five streams in the namespace count, so a new name goes to the catch-all
        await produce(run.bootstrap, run.logs_topic, [log_record(4000, f"new-{u}"), log_record(4001, "api-service")])
        again = run.start_shipper("again", **env)
        try:
            seen = await _metrics_when(port, "shipper_indexed_total", 2)
        finally:
            assert stop(again) == 0
        assert seen["shipper_streams"] == 5 and seen["shipper_stream_overflow_total"] == 1
        assert await wait_count(run.search_url, f"logs-overflow-{ns}", 161) == 161
        assert await wait_count(run.search_url, f"logs-api_service-{ns}", 101) == 101
        assert f"logs-new_{u}-{ns}" not in await _streams(run.search_url, ns)
        assert await _templates(run.search_url, f"elk-pipeline-logs-new_{u}") == []
    finally:  # this test's templates go too (a template in use by a stream cannot be deleted)
        await delete_namespace(run.search_url, ns)
        async with httpx.AsyncClient(timeout=60) as client:
            gone = await client.delete(f"{run.search_url}/_index_template/elk-pipeline-*-*{u}")
            assert gone.status_code in (200, 404), gone.text
