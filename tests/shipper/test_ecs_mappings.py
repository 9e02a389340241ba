"""ECS-typed mappings from Elastic's generated definitions, per engine, and a good neighbour in a shared
cluster: real OpenSearch from the local stack, and the Elasticsearch imitation on the wire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from opensearchpy import AsyncOpenSearch

from collector.contract.ecs import ECS_VERSION
from shipper.config import ShipperSettings
from shipper.engines.base import SearchEngine
from shipper.engines.detect import build_engine, detect_kind
from shipper.setup import install
from shipper.sink import Action, BulkSink
from shipper.stats import Stats
from shipper.templates import (
    COMPONENT_MAPPINGS,
    LEGACY_TEMPLATES,
    PRODUCT_PROPERTIES,
    ecs_definitions,
    field_types,
    for_engine,
    index_templates,
    stream_template,
    stream_template_name,
)
from tests.shipper.test_elasticsearch_adapter import es_url  # noqa: F401  (the imitation's fixture)

ECS_TYPED = {  # field -> (Elasticsearch type, OpenSearch 2.19 type), as the ECS definitions give them
    "source.ip": ("ip", "ip"), "destination.ip": ("ip", "ip"), "host.ip": ("ip", "ip"),
    "client.ip": ("ip", "ip"), "source.geo.location": ("geo_point", "geo_point"),
    "url.original": ("wildcard", "wildcard"), "url.path": ("wildcard", "wildcard"),
    "error.stack_trace": ("wildcard", "wildcard"), "process.command_line": ("wildcard", "wildcard"),
    "user_agent.original": ("keyword", "keyword"), "user_agent.original.text": ("match_only_text", "match_only_text"),
    "message": ("match_only_text", "match_only_text"), "event.original": ("keyword", "keyword"),
    "container.labels": ("object", "object"), "process.env_vars": ("keyword", "keyword"),
}


# ---- pure: the artifact and the properties built from it

def test_definitions_are_the_generated_ones_of_the_claimed_version() -> None:
    data = ecs_definitions()
    assert data["ecs_version"] == ECS_VERSION
    assert data["source"].startswith("npm @elastic/ecs@8.11.")
    assert len(data["fields"]) > 1500  # every field, not a hand-picked few


def test_every_ecs_field_is_mapped_with_its_ecs_type() -> None:
    types = field_types()
    for name, spec in ecs_definitions()["fields"].items():
        assert types.get(name) == spec["type"], name
        for sub, sub_spec in (spec.get("fields") or {}).items():
            assert types.get(f"{name}.{sub}") == sub_spec["type"], f"{name}.{sub}"
    assert {k: types[k] for k in ECS_TYPED} == {k: es for k, (es, _) in ECS_TYPED.items()}
    assert types["data_stream.dataset"] == "constant_keyword"


def test_custom_roots_are_not_ecs_field_sets() -> None:
    ecs_roots = {name.split(".")[0] for name in ecs_definitions()["fields"]}
    assert not set(PRODUCT_PROPERTIES) & ecs_roots


def test_opensearch_fallbacks_by_version() -> None:
    flat = {"a": {"type": "flattened"}, "b": {"type": "wildcard", "fields": {"text": {"type": "match_only_text"}}},
            "c": {"type": "match_only_text"}, "d": {"type": "constant_keyword"}, "e": {"type": "ip"}}
    new = for_engine(flat, "opensearch", (2, 19))
    assert new == {"a": {"type": "flat_object"}, "b": flat["b"], "c": flat["c"], "d": flat["d"], "e": flat["e"]}
    old = for_engine(flat, "opensearch", (2, 11))
    assert old["a"] == {"type": "flat_object"}
    assert old["b"] == {"type": "keyword", "ignore_above": 8191, "fields": {"text": {"type": "text"}}}
    assert old["c"] == {"type": "text"} and old["d"]["type"] == "keyword"
    assert for_engine(flat, "elasticsearch") == flat
    # OpenSearch's constant_keyword needs its value: type and dataset are fixed per template
    ds = stream_template("logs", "api_service", "opensearch")["template"]["mappings"]["properties"]["data_stream"]
    assert ds["properties"]["dataset"] == {"type": "constant_keyword", "value": "api_service"}
    assert ds["properties"]["namespace"]["type"] == "keyword"


def test_every_document_the_shipper_writes_itself_gets_them() -> None:
    from shipper.transform import doc_action

    stream = {"type": "logs", "dataset": "elk.health", "namespace": "default"}
    transition = {"@timestamp": "2026-12-02T00:00:00.000Z", "event": {"action": "health-transition"},
                  "data_stream": stream}
    assert orjson.loads(doc_action("t1", transition).source)["ecs"] == {"version": ECS_VERSION}
    claimed = {**transition, "ecs": {"version": "8.0.0"}}  # a document that says its own version keeps it
    assert orjson.loads(doc_action("t2", claimed).source)["ecs"] == {"version": "8.0.0"}


# ---- real OpenSearch

@pytest.fixture
async def client(search_url: str) -> AsyncIterator[AsyncOpenSearch]:
    client = AsyncOpenSearch(hosts=[search_url])
    yield client
    await client.close()


def _leaf(props: dict[str, Any], dotted: str) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = props
    for part in parents:
        node = node[part].get("properties") or node[part]["fields"]
    spec: dict[str, Any] = node[last]
    return spec


DOC = {
    "@timestamp": "2026-12-01T10:00:00.000Z", "message": "GET /a", "log": {"level": "info"},
    "source": {"ip": "10.1.2.3", "geo": {"location": {"lat": 48.1, "lon": 11.6}}},
    "destination": {"ip": "2001:db8::1"}, "host": {"ip": ["10.0.0.2", "::1"], "name": "h1"},
    "client": {"ip": "192.0.2.7"}, "url": {"original": "https://x.example/a?b=c", "path": "/a"},
    "user_agent": {"original": "Mozilla/5.0 (X11; Linux x86_64)"},
    "process": {"command_line": "python -m app --port 8080", "env_vars": ["A=1"]},
    "container": {"labels": {"app": "api"}},
    "event": {"original": "o" * 40_000},  # over 32 KB: stored, never indexed (ECS: index and doc_values off)
    "error": {"stack_trace": "Traceback (most recent call last):\n" * 2_000},  # ~70 KB into a wildcard field
}


async def test_opensearch_maps_written_documents_with_ecs_types(search_url: str, client: AsyncOpenSearch,
                                                                unique: str) -> None:
    settings = ShipperSettings(search_url=search_url)
    engine = build_engine(settings, await detect_kind(settings))
    dataset = f"ecsmap{unique}"
    stream = f"logs-{dataset}-default"
    try:
        await engine.install_templates()
        sink = BulkSink(engine, Stats(), max_bytes=1 << 20, concurrency=1, retry_initial_s=0.01, retry_max_s=0.05)
        doc = {**DOC, "data_stream": {"type": "logs", "dataset": dataset, "namespace": "default"}}
        assert await sink.write([Action("d1", stream, orjson.dumps(doc), origin="d1")]) == []
        mapping = await client.indices.get_mapping(index=stream)
        props = next(iter(mapping.values()))["mappings"]["properties"]
        for name, (_, os_type) in ECS_TYPED.items():
            assert _leaf(props, name).get("type", "object") == os_type, name
        assert _leaf(props, "event.original") == {"type": "keyword", "index": False, "doc_values": False}
        assert _leaf(props, "data_stream.dataset") == {"type": "constant_keyword", "value": dataset}
        stream_info = await client.indices.get_data_stream(name=stream)
        assert stream_info["data_streams"][0]["template"] == stream_template_name("logs", dataset)
        await client.indices.refresh(index=stream)
        found = await client.search(index=stream, body={"query": {"bool": {"filter": [
            {"term": {"source.ip": "10.1.2.0/24"}}, {"wildcard": {"url.original": {"value": "*example/a*"}}},
            {"geo_distance": {"distance": "10km", "source.geo.location": {"lat": 48.1, "lon": 11.6}}}]}}})
        assert found["hits"]["total"]["value"] == 1  # CIDR, wildcard and geo queries: the types are real
    finally:
        await client.indices.delete_data_stream(name=stream, ignore=[404])
        await client.indices.delete_index_template(name=stream_template_name("logs", dataset), ignore=[404])
        await engine.close()


async def _names_matching(client: AsyncOpenSearch, stream: str) -> set[str]:
    """Every index template whose patterns match the stream name, whatever its priority."""
    import fnmatch

    found = await client.indices.get_index_template()
    return {t["name"] for t in found["index_templates"]
            if any(fnmatch.fnmatchcase(stream, p) for p in t["index_template"]["index_patterns"])}


async def test_setup_leaves_other_producers_streams_alone(search_url: str, client: AsyncOpenSearch,
                                                         unique: str) -> None:
    """An integration-like template for another dataset (Fleet's priority 200): `shipper setup` and the
    shipper writing its own streams change nothing for that dataset's new streams; ours get ours."""
    theirs = f"zz-integration-{unique}"
    other_dataset = f"nginx.access{unique}"
    await client.indices.put_index_template(name=theirs, body={
        "index_patterns": [f"logs-{other_dataset}-*"], "priority": 200, "data_stream": {},
        "template": {"mappings": {"properties": {"source": {"properties": {"ip": {"type": "keyword"}}},
                                                 "nginx": {"properties": {"bytes": {"type": "long"}}}}}},
        "_meta": {"managed_by": "fleet"}})
    other_stream = f"logs-{other_dataset}-default"
    ours_dataset = f"api{unique}"
    ours_stream = f"logs-{ours_dataset}-default"
    before = await _names_matching(client, other_stream)
    engine: SearchEngine = await install(ShipperSettings(search_url=search_url))
    try:
        await engine.prepare_streams([ours_stream])
        our_names = set(index_templates()) | {stream_template_name("logs", ours_dataset)}
        after = await _names_matching(client, other_stream)
        assert after == before and theirs in after
        assert not our_names & after  # nothing the product puts reaches the other dataset's streams
        # the former broad templates (logs-*-* at 600), while an older checkout still puts them into a
        # shared development cluster, outrank the integration; in a cluster without them theirs must win
        if not after & set(LEGACY_TEMPLATES):
            await client.indices.create_data_stream(name=other_stream)
            created = await client.indices.get_data_stream(name=other_stream)
            assert created["data_streams"][0]["template"] == theirs
            mapping = next(iter((await client.indices.get_mapping(index=other_stream)).values()))["mappings"]
            assert mapping["properties"]["source"]["properties"]["ip"]["type"] == "keyword"
            assert "message" not in mapping["properties"]  # none of our ECS mappings
        ours = await client.transport.perform_request("POST", f"/_index_template/_simulate_index/{ours_stream}")
        assert ours["template"]["mappings"]["properties"]["source"]["properties"]["ip"]["type"] == "ip"
        assert stream_template_name("logs", ours_dataset) in await _names_matching(client, ours_stream)
    finally:
        await client.indices.delete_data_stream(name=other_stream, ignore=[404])
        await client.indices.delete_index_template(name=theirs, ignore=[404])
        await client.indices.delete_index_template(name=stream_template_name("logs", ours_dataset), ignore=[404])
        await engine.close()


async def test_setup_removes_only_our_former_broad_templates(search_url: str, client: AsyncOpenSearch,
                                                             unique: str) -> None:
    mine, foreign = f"zz-legacy-{unique}", f"zz-foreign-{unique}"
    for name, owner in ((mine, "elk-pipeline"), (foreign, "someone-else")):
        await client.indices.put_index_template(name=name, body={
            "index_patterns": [f"legacy{unique}-{name}-*"], "priority": 1, "_meta": {"managed_by": owner}})
    engine = await install(ShipperSettings(search_url=search_url))
    try:
        removed = await engine.remove_legacy_templates([mine, foreign, f"zz-absent-{unique}"], components=[])
        assert removed == [mine]
        left = {t["name"] for t in (await client.indices.get_index_template(name=f"zz-*-{unique}"))["index_templates"]}
        assert left == {foreign}
    finally:
        for name in (mine, foreign):
            await client.indices.delete_index_template(name=name, ignore=[404])
        await engine.close()


async def test_a_former_template_still_in_use_is_narrowed_not_a_setup_failure(
    search_url: str, client: AsyncOpenSearch, unique: str
) -> None:
    # an upgraded cluster: the old broad template (ours) is used by streams written before the upgrade,
    # so the engine refuses to delete it; setup narrows it to those streams and goes on
    legacy, stream, other = f"zz-legacy-{unique}", f"inuse{unique}-api_service-default", f"inuse{unique}-theirs-x"
    await client.indices.put_index_template(name=legacy, body={
        "index_patterns": [f"inuse{unique}-*-*"], "data_stream": {}, "priority": 1,
        "_meta": {"managed_by": "elk-pipeline"}})
    await client.indices.create_data_stream(name=stream)
    engine = await install(ShipperSettings(search_url=search_url))
    try:
        assert await engine.remove_legacy_templates([legacy], components=[]) == []
        left = (await client.indices.get_index_template(name=legacy))["index_templates"][0]["index_template"]
        assert left["index_patterns"] == [stream]
        assert (await client.indices.get_data_stream(name=stream))["data_streams"][0]["template"] == legacy
        # a new stream of someone else's is no longer caught by it
        await client.index(index=other, body={"@timestamp": "2026-12-02T00:00:00.000Z"}, op_type="create")
        assert not (await client.indices.get_data_stream(name=other, ignore=[404])).get("data_streams")
    finally:
        await client.indices.delete_data_stream(name=stream, ignore=[404])
        await client.indices.delete(index=other, ignore=[404])
        await client.indices.delete_index_template(name=legacy, ignore=[404])
        await engine.close()


# ---- the Elasticsearch imitation, on the wire

async def test_elasticsearch_gets_the_ecs_types(es_url: str) -> None:  # noqa: F811
    settings = ShipperSettings(search_url=es_url)
    engine = build_engine(settings, await detect_kind(settings))
    try:
        await engine.install_templates()
        await engine.prepare_streams(["logs-api_service-default"])
        component = await engine.request("GET", f"/_component_template/{COMPONENT_MAPPINGS}")
        props = component["component_templates"][0]["component_template"]["template"]["mappings"]["properties"]
        for name, (es_type, _) in ECS_TYPED.items():
            assert _leaf(props, name).get("type", "object") == es_type, name
        assert _leaf(props, "process.env_vars")["type"] == "keyword"
        flattened = [n for n, s in ecs_definitions()["fields"].items() if s["type"] == "flattened"]
        assert flattened and all(_leaf(props, n)["type"] == "flattened" for n in flattened)
        template = await engine.request("GET", "/_index_template/" + stream_template_name("logs", "api_service"))
        body = template["index_templates"][0]["index_template"]
        assert body["index_patterns"] == ["logs-api_service-*"]
        assert json.dumps(body["template"]["mappings"]["properties"]["data_stream"], sort_keys=True) == json.dumps(
            {"properties": {k: {"type": "constant_keyword"} for k in ("dataset", "namespace", "type")}},
            sort_keys=True)
    finally:
        await engine.close()
