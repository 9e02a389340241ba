"""The Elasticsearch adapter on the wire, against noida-db's imitation of the Elasticsearch 8.15 API.

It answers like Elasticsearch (product header, bulk item results, templates) but has no data
streams and no ILM, so these tests cover what it serves: detection, setup without ILM, and the
sink's per-item handling, gzip included; the per-item handling also runs against the stack's
Elasticsearch node. Everything else runs against the real OpenSearch.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.bulk import Action
from shipper.config import ShipperSettings
from shipper.engines.base import EngineRejected, EngineUnavailable, SearchEngine
from shipper.engines.detect import build_engine, detect_kind
from shipper.engines.elasticsearch import ElasticsearchEngine
from shipper.provenance import Meta, Provenance
from shipper.sink import BulkSink
from shipper.stats import Stats
from tests.shipper.harness import free_port, record_key

NOIDA = Path(sys.executable).with_name("noida-db")


_DATA: dict[str, Path] = {}  # es_url -> noida-db data dir (to stop and start its service)


def _noida(*args: str) -> None:
    subprocess.run([str(NOIDA), *args], capture_output=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def es_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("noida")
    port = free_port()
    started = subprocess.run([str(NOIDA), "up", "--data-dir", str(data), "--only", "elasticsearch",
                              "--elasticsearch-port", str(port)], capture_output=True, timeout=120, check=False)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"noida-db did not start: {started.stdout!r} {started.stderr!r}")
        _DATA[url] = data
        yield url
    finally:
        subprocess.run([str(NOIDA), "down", "--data-dir", str(data)], capture_output=True, timeout=60, check=False)


async def _engine(url: str) -> SearchEngine:
    settings = ShipperSettings(search_url=url)
    return build_engine(settings, await detect_kind(settings))


def _action(doc_id: str, doc: dict[str, Any], index: str) -> Action:
    return Action(doc_id, index, orjson.dumps(doc), origin=Provenance(Meta(index, 0, 0, 0), b"", "a"))


async def test_detected_as_elasticsearch_and_setup_without_ilm(es_url: str) -> None:
    engine = await _engine(es_url)
    try:
        assert isinstance(engine, ElasticsearchEngine)
        assert (await engine.info())["version"]["number"].startswith("8.")
        await engine.install_templates()  # ILM refused: templates still go in, without a lifecycle
        await engine.install_templates()  # and again: idempotent
        assert engine.lifecycle is False
        installed = await engine.request("GET", "/_index_template/elk-pipeline-logs-elk.health")
        assert installed["index_templates"][0]["index_template"]["priority"] > 600
    finally:
        await engine.close()


@pytest.fixture(params=["imitation", "elasticsearch"])
async def wire_engine(request: pytest.FixtureRequest) -> SearchEngine:
    """The adapter against the imitation and against the stack's Elasticsearch node (real bulk item
    answers; tests/shipper/es_node.py for what the node lacks)."""
    if request.param == "imitation":
        return await _engine(request.getfixturevalue("es_url"))
    from tests.shipper.es_node import node_engine

    return await node_engine(request.getfixturevalue("elasticsearch_url"))


@pytest.mark.parametrize("gzip", [False, True])
async def test_sink_items_created_duplicate_and_mapping_error(wire_engine: SearchEngine, gzip: bool) -> None:
    engine = wire_engine
    index = f"logs-es_adapter-g{int(gzip)}{time.monotonic_ns()}"
    stats = Stats()
    sink = BulkSink(engine, stats, max_bytes=1 << 20, concurrency=2, retry_initial_s=0.01, retry_max_s=0.05,
                    gzip=gzip)
    try:
        first = [_action(f"d{i}", {"@timestamp": "2026-11-28T12:00:00.000Z", "custom": {"an": "object"}}, index)
                 for i in range(50)]
        assert await sink.write(first) == []
        assert stats.indexed == 50
        again = first[:10]  # redelivery: 409 on create = already there
        clash = [_action("bad", {"custom": "a string now"}, index)]
        failures = await sink.write(again + clash)
        assert stats.indexed == 60 and stats.duplicates == 10
        assert [(f.action.doc_id, f.error_type) for f in failures] == [("bad", "document_parsing_exception")]
        assert "custom" in failures[0].reason
        await engine.request("POST", f"/{index}/_refresh")
        found = await engine.search(index, {"query": {"match_all": {}}, "size": 0, "track_total_hits": True})
        assert found["hits"]["total"]["value"] == 50
    finally:
        await engine.close()


@pytest.mark.stack
async def test_shipper_run_into_elasticsearch(es_url: str, kafka_bootstrap: str, unique: str,
                                              tmp_path: Path) -> None:
    from tests.shipper.harness import Run, create_topic, log_record, produce, stop

    run = Run(kafka_bootstrap, es_url, unique, tmp_path)
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    await produce(run.bootstrap, run.logs_topic, [log_record(n) for n in range(200)] + [b"[]"])
    shipper = run.start_shipper()
    engine = await _engine(es_url)
    try:
        got = 0
        for _ in range(120):
            await engine.request("POST", f"/logs-*-{run.namespace}/_refresh")
            found = await engine.search(f"logs-*-{run.namespace}", {"size": 0, "track_total_hits": True})
            got = found["hits"]["total"]["value"]
            if got >= 201:
                break
            await asyncio.sleep(0.25)
    finally:
        await engine.close()
        assert stop(shipper) == 0
    assert got == 201


async def _es_ids(engine: SearchEngine, index: str) -> list[str]:
    try:
        await engine.request("POST", f"/{index}/_refresh")
    except EngineRejected:  # not created yet
        return []
    found = await engine.search(index, {"size": 10000, "_source": ["event.id"], "query": {"match_all": {}}})
    return [record_key(hit) for hit in found["hits"]["hits"]]


async def _es_count(engine: SearchEngine, index: str) -> int:
    try:
        await engine.request("POST", f"/{index}/_refresh")
    except EngineRejected:  # not created yet
        return 0
    return int((await engine.request("POST", f"/{index}/_count", {"query": {"match_all": {}}}))["count"])


async def _wait_for_count(engine: SearchEngine, index: str, wanted: int, stalled_s: float = 20.0) -> int:
    """Until `wanted` documents are there, giving up once the count has not moved for `stalled_s`."""
    count, last, moved = -1, -1, time.monotonic()
    while time.monotonic() - moved < stalled_s:
        try:
            count = await _es_count(engine, index)
        except EngineUnavailable:
            count = last
        if count >= wanted:
            break
        if count != last:
            last, moved = count, time.monotonic()
        await asyncio.sleep(0.2)
    return count


# The imitation spends time per indexed document and per search hit in proportion to the index's mapping,
# and the ECS templates map ~2,000 fields (real Elasticsearch does not slow down so): a few hundred
# records, progress counted with _count, keep the test in bounds.
HALF = 300


@pytest.mark.stack
async def test_engine_stopped_and_restarted_nothing_lost_nothing_twice(es_url: str, kafka_bootstrap: str,
                                                                       unique: str, tmp_path: Path) -> None:
    import httpx

    from tests.shipper.harness import Run, create_topic, log_record, produce, stop

    run = Run(kafka_bootstrap, es_url, unique, tmp_path)
    index = f"logs-api_service-{run.namespace}"
    await create_topic(run.bootstrap, run.logs_topic, partitions=2)
    await produce(run.bootstrap, run.logs_topic, [log_record(n) for n in range(HALF)])
    port = free_port()
    shipper = run.start_shipper(SHIPPER_HTTP_PORT=str(port), SHIPPER_RETRY_MAX_S="0.5")
    engine = await _engine(es_url)
    try:
        assert await _wait_for_count(engine, index, HALF) >= HALF
        _noida("stop", "elasticsearch", "--data-dir", str(_DATA[es_url]))
        await produce(run.bootstrap, run.logs_topic, [log_record(n) for n in range(HALF, 2 * HALF)])
        await asyncio.sleep(3)
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://127.0.0.1:{port}/health")
        assert health.status_code == 503  # not ready while the engine does not answer
        assert shipper.poll() is None  # waiting, with Kafka as the buffer
        _noida("start", "elasticsearch", "--data-dir", str(_DATA[es_url]))
        await engine.close()
        engine = await _engine(es_url)
        await _wait_for_count(engine, index, 2 * HALF)
        ids = await _es_ids(engine, index)
    finally:
        await engine.close()
        assert stop(shipper) == 0
    assert sorted(ids) == sorted(f"rec-{n}" for n in range(2 * HALF))
