"""A good neighbour on a shared cluster (issue 21, part B): another producer's streams keep their
template and lifecycle (on the stack's OpenSearch and Elasticsearch nodes), and narrowing a former broad
template survives Elasticsearch 9.2's read-only template fields (through a proxy in front of OpenSearch
that answers as 9.2 does: the Elasticsearch node has no data stream APIs to narrow by) and never fails
silently."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from opensearchpy import AsyncOpenSearch

import shipper.engines.base as engine_base
from shipper.bulk import Action
from shipper.config import ShipperSettings
from shipper.engines.base import EngineRejected, SearchEngine
from shipper.provenance import Meta, Provenance
from shipper.setup import install
from shipper.sink import BulkSink
from shipper.stats import Stats
from shipper.templates import claims_dataset, stream_template_name, writable_index_template
from tests.shipper.es_node import node_engine
from tests.shipper.proxy import EngineProxy

pytestmark = pytest.mark.stack


@pytest.fixture
async def client(search_url: str) -> AsyncIterator[AsyncOpenSearch]:
    client = AsyncOpenSearch(hosts=[search_url])
    yield client
    await client.close()


# ---- pure

@pytest.mark.parametrize(("patterns", "claimed"), [
    (["logs-nginx.access-*"], True),            # a Fleet integration's
    (["logs-nginx.access-prod"], True),         # one namespace of the family is still the family's
    (["logs-nginx*"], True), (["logs-*.access-*"], True),
    (["logs-*-*"], False), (["logs-*"], False), (["*"], False),  # catch-alls: built-ins, an operator's
    (["logs-nginx-*"], False), (["logs-nginx.error-*"], False), (["metrics-nginx.access-*"], False),
    (["logs-*-prod"], False),                   # every dataset of a namespace
    (["other-*", "logs-nginx.access-*"], True),
])
def test_which_patterns_claim_a_dataset(patterns: list[str], claimed: bool) -> None:
    assert claims_dataset(patterns, "logs", "nginx.access") is claimed


def test_a_template_read_back_is_reduced_to_what_a_put_takes() -> None:
    read = {"index_patterns": ["a-*"], "priority": 1, "composed_of": [], "template": {}, "_meta": {"x": 1},
            "data_stream": {"hidden": False}, "version": 3, "created_date_millis": 1, "modified_date_millis": 2}
    assert writable_index_template(read) == {k: v for k, v in read.items() if not k.endswith("_date_millis")}


# ---- B1: an integration's template (priority 200) stays in charge of its streams

def _action(n: int, stream: str, doc: dict[str, Any]) -> Action:
    return Action(f"nb-{n}", stream, orjson.dumps(doc), Provenance(Meta("t", 0, n, 0), b"", "a"))


async def _setup(kind: str, url: str) -> SearchEngine:
    """The shipper's engine after setup (on the Elasticsearch node: tests/shipper/es_node.py)."""
    if kind == "opensearch":
        return await install(ShipperSettings(search_url=url))
    return await node_engine(url)


async def _gone(engine: SearchEngine, path: str) -> None:
    with contextlib.suppress(EngineRejected):  # absent, or (the Elasticsearch node) not deletable
        await engine.request("DELETE", path)


async def test_an_integrations_streams_keep_its_template_and_get_our_records(
    engine_url: tuple[str, str], unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, url = engine_url
    dataset, theirs = f"fleet{unique}.access", f"zz-integration-{unique}"
    stream = f"logs-{dataset}-default"
    body = {"index_patterns": [f"logs-{dataset}-*"], "priority": 200, "data_stream": {},
            "template": {"mappings": {"properties": {"message": {"type": "long"},
                                                     "nginx": {"properties": {"bytes": {"type": "long"}}}}}},
            "_meta": {"managed_by": "fleet", "package": {"name": "nginx"}}}
    warnings: list[tuple[str, dict[str, Any]]] = []

    class Recording:
        def __getattr__(self, level: str) -> Any:
            def record(event: str, **fields: Any) -> None:
                if level == "warning":
                    warnings.append((event, fields))
            return record

    engine = await _setup(kind, url)
    await engine.request("PUT", f"/_index_template/{theirs}", body)
    monkeypatch.setattr(engine_base, "log", Recording())
    before = (await engine.request("GET", f"/_index_template/{theirs}"))["index_templates"][0]["index_template"]
    stats = Stats()
    sink = BulkSink(engine, stats, max_bytes=1 << 20, concurrency=2, retry_initial_s=0.01, retry_max_s=0.02)
    try:
        fits = [_action(n, stream, {"@timestamp": "2026-12-06T00:00:00.000Z", "nginx": {"bytes": n}})
                for n in range(3)]
        conflict = _action(9, stream, {"@timestamp": "2026-12-06T00:00:00.000Z", "message": "GET / 200"})
        failures = await sink.write([*fits, conflict])
        failures += await sink.write([_action(10, stream, {"@timestamp": "2026-12-06T00:00:01.000Z"})])
        # the conflicting record is a failure with the engine's reason (the caller dead-letters it)
        assert [f.action.doc_id for f in failures] == ["nb-9"]
        assert failures[0].error_type in ("mapper_parsing_exception", "document_parsing_exception")
        assert "message" in failures[0].reason
        assert stats.indexed == 4 and stats.foreign_families == 1
        assert [fields["family"] for _, fields in warnings] == [f"logs-{dataset}"]  # said once
        assert theirs in warnings[0][1]["owner"]
        # their template untouched, none of ours over the same names, the stream made by theirs
        after = (await engine.request("GET", f"/_index_template/{theirs}"))["index_templates"][0]["index_template"]
        assert after == before
        with pytest.raises(EngineRejected) as absent:
            await engine.request("GET", f"/_index_template/{stream_template_name('logs', dataset)}")
        assert absent.value.status == 404
        mappings = await engine.request("GET", f"/{stream}/_mapping")
        assert all(index.startswith(".ds-") for index in mappings)  # a data stream, by their template
        mapping = next(iter(mappings.values()))["mappings"]
        assert mapping["properties"]["nginx"]["properties"]["bytes"]["type"] == "long"
        assert "service" not in mapping["properties"]  # none of our ECS mappings reached it
        settings = await engine.request("GET", f"/{stream}/_settings?flat_settings=true")
        assert not any("index.lifecycle.name" in s["settings"] for s in settings.values())  # nor our ILM
    finally:
        await _gone(engine, f"/_data_stream/{stream}")
        await _gone(engine, f"/_index_template/{theirs}")
        await engine.close()


async def test_a_stream_made_under_another_template_gets_no_template_of_ours(
    search_url: str, client: AsyncOpenSearch, unique: str
) -> None:
    # a stream of the family already exists under a catch-all that is not ours (say the built-in
    # `logs-*-*`): a template of ours would take it over at its next rollover, lifecycle and all
    dataset, catchall = f"generic{unique}", f"zz-catchall-{unique}"
    existing, new = f"logs-{dataset}-default{unique}", f"logs-{dataset}-other"
    await client.indices.put_index_template(name=catchall, body={
        "index_patterns": [f"logs-*-default{unique}"], "priority": 1, "data_stream": {}})
    assert not claims_dataset([f"logs-*-default{unique}"], "logs", dataset)  # not the template check
    await client.indices.create_data_stream(name=existing)
    engine = await install(ShipperSettings(search_url=search_url))
    stats = Stats()
    sink = BulkSink(engine, stats, max_bytes=1 << 20, concurrency=2, retry_initial_s=0.01, retry_max_s=0.02)
    try:
        assert await sink.write([_action(1, new, {"@timestamp": "2026-12-06T00:00:00.000Z"})]) == []
        assert stats.foreign_families == 1
        ours = await client.indices.get_index_template(name=stream_template_name("logs", dataset), ignore=[404])
        assert not ours.get("index_templates")
    finally:
        await client.indices.delete_data_stream(name=f"logs-{dataset}-*", ignore=[404])
        await client.indices.delete(index=new, ignore=[404])  # a plain index: no template matched it
        await client.indices.delete_index_template(name=catchall, ignore=[404])
        await engine.close()


# ---- B2: narrowing a former broad template on Elasticsearch 9.2+

READ_ONLY = {"created_date_millis": 1764979200000, "modified_date_millis": 1764979200000}


def _as_9_2(method: str, path: str, status: int, body: Any) -> Any:
    """GET /_index_template answers carry 9.2's read-only dates."""
    if method == "GET" and path.startswith("/_index_template") and isinstance(body, dict):
        for entry in body.get("index_templates", []):
            entry["index_template"].update(READ_ONLY)
    return body


def _refuse_read_only(method: str, path: str, body: Any) -> tuple[int, Any] | None:
    """9.2 refuses them in a PUT (elastic/elasticsearch#132083: 'bad_request')."""
    if method == "PUT" and path.startswith("/_index_template/") and isinstance(body, dict):
        for field in READ_ONLY:
            if field in body:
                reason = f"[index_template] unknown field [{field}]"
                return 400, {"error": {"type": "x_content_parse_exception", "reason": reason}, "status": 400}
    return None


async def _legacy_in_use(client: AsyncOpenSearch, unique: str) -> tuple[str, str]:
    legacy, stream = f"zz-legacy92-{unique}", f"inuse92{unique}-api_service-default"
    await client.indices.put_index_template(name=legacy, body={
        "index_patterns": [f"inuse92{unique}-*-*"], "data_stream": {}, "priority": 1,
        "_meta": {"managed_by": "elk-pipeline"}})
    await client.indices.create_data_stream(name=stream)
    return legacy, stream


async def test_a_former_template_is_narrowed_on_an_engine_with_read_only_template_fields(
    search_url: str, client: AsyncOpenSearch, unique: str
) -> None:
    legacy, stream = await _legacy_in_use(client, unique)
    try:
        with EngineProxy(search_url, rewrite=_refuse_read_only, answer=_as_9_2) as proxy:
            engine = await install(ShipperSettings(search_url=proxy.url, engine="opensearch"))
            try:
                assert await engine.remove_legacy_templates([legacy], components=[]) == []
            finally:
                await engine.close()
            assert ("PUT", f"/_index_template/{legacy}", 200) in proxy.seen
        left = (await client.indices.get_index_template(name=legacy))["index_templates"][0]["index_template"]
        assert left["index_patterns"] == [stream]
        assert left["_meta"]["narrowed_to_existing_streams"] is True
    finally:
        await client.indices.delete_data_stream(name=stream, ignore=[404])
        await client.indices.delete_index_template(name=legacy, ignore=[404])


async def test_a_refused_narrowing_fails_setup(search_url: str, client: AsyncOpenSearch, unique: str) -> None:
    legacy, stream = await _legacy_in_use(client, unique)

    def refuse(method: str, path: str, body: Any) -> tuple[int, Any] | None:
        if method == "PUT" and path == f"/_index_template/{legacy}":
            return 400, {"error": {"type": "illegal_argument_exception", "reason": "refused"}, "status": 400}
        return None

    try:
        with EngineProxy(search_url, rewrite=refuse) as proxy:
            engine = await install(ShipperSettings(search_url=proxy.url, engine="opensearch"))
            try:
                with pytest.raises(EngineRejected) as refused:
                    await engine.remove_legacy_templates([legacy], components=[])
                assert refused.value.status == 400
            finally:
                await engine.close()
        left = (await client.indices.get_index_template(name=legacy))["index_templates"][0]["index_template"]
        assert left["index_patterns"] == [f"inuse92{unique}-*-*"]  # as it was, and setup said so
    finally:
        await client.indices.delete_data_stream(name=stream, ignore=[404])
        await client.indices.delete_index_template(name=legacy, ignore=[404])


async def test_a_template_read_back_from_elasticsearch_goes_back_in(elasticsearch_url: str, unique: str) -> None:
    """What the proxy above imitates, on the stack's Elasticsearch node: from 9.2 (ELASTICSEARCH_VERSION)
    a template read back carries the read-only dates and a PUT of it whole is refused; on every version
    the template reduced to what a PUT takes goes back in."""
    engine = await node_engine(elasticsearch_url)
    name = f"zz-readback-{unique}"
    try:
        nodes = await engine.request("GET", "/_nodes/_local?filter_path=nodes.*.version")
        version = tuple(int(p) for p in next(iter(nodes["nodes"].values()))["version"].split(".")[:2])
        await engine.request("PUT", f"/_index_template/{name}", {
            "index_patterns": [f"readback{unique}-*"], "priority": 1, "_meta": {"managed_by": "elk-pipeline"}})
        read = (await engine.request("GET", f"/_index_template/{name}"))["index_templates"][0]["index_template"]
        if version >= (9, 2):
            assert set(READ_ONLY) <= set(read)
            with pytest.raises(EngineRejected) as refused:
                await engine.request("PUT", f"/_index_template/{name}", read)
            assert refused.value.status == 400 and "managed by the system" in str(refused.value)
        else:
            assert not set(READ_ONLY) & set(read)
        await engine.request("PUT", f"/_index_template/{name}", {**writable_index_template(read), "priority": 2})
        again = (await engine.request("GET", f"/_index_template/{name}"))["index_templates"][0]["index_template"]
        assert again["priority"] == 2
    finally:
        await _gone(engine, f"/_index_template/{name}")
        await engine.close()
