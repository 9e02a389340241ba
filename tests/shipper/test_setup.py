"""Setup against the real OpenSearch: idempotent, and our templates beat competing `logs-*-*` ones."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opensearchpy import AsyncOpenSearch

from shipper.config import ShipperSettings
from shipper.setup import install
from shipper.templates import (
    COMPONENT_SETTINGS,
    PRIORITY,
    TOTAL_FIELDS_LIMIT,
    component_templates,
    index_templates,
    stream_template_name,
)

pytestmark = pytest.mark.stack


@pytest.fixture
async def client(search_url: str) -> AsyncIterator[AsyncOpenSearch]:
    client = AsyncOpenSearch(hosts=[search_url])
    yield client
    await client.close()


async def _install(search_url: str) -> str:
    engine = await install(ShipperSettings(search_url=search_url))
    await engine.close()
    return engine.name


async def test_setup_is_idempotent(search_url: str, client: AsyncOpenSearch) -> None:
    assert await _install(search_url) == "opensearch"
    first = await client.indices.get_index_template(name="elk-pipeline-*")
    assert await _install(search_url) == "opensearch"
    second = await client.indices.get_index_template(name="elk-pipeline-*")
    assert first == second
    names = {t["name"] for t in second["index_templates"]}
    assert set(index_templates()) <= names
    components = await client.cluster.get_component_template(name="elk-pipeline-*")
    assert set(component_templates()) <= {c["name"] for c in components["component_templates"]}


async def _prepared(search_url: str, stream: str, **settings: int) -> None:
    """Setup, then the stream's template as the sink puts it before the first write."""
    engine = await install(ShipperSettings(search_url=search_url, **settings))
    try:
        await engine.prepare_streams([stream])
    finally:
        await engine.close()


async def test_our_templates_win_over_competing_ones(search_url: str, client: AsyncOpenSearch, unique: str) -> None:
    stream = f"logs-api_service-t{unique}"
    await _prepared(search_url, stream)
    competitors = {f"zz-competitor-{unique}-{p}": p for p in (100, 200)}
    for name, priority in competitors.items():
        await client.indices.put_index_template(name=name, body={
            "index_patterns": [f"logs-*-t{unique}"], "priority": priority, "data_stream": {},
            "template": {"mappings": {"properties": {"service": {"properties": {"name": {"type": "text"}}}}}}})
    try:
        simulated = await client.transport.perform_request("POST", f"/_index_template/_simulate_index/{stream}")
        assert simulated["template"]["mappings"]["properties"]["service"]["properties"]["name"]["type"] == "keyword"
        assert {o["name"] for o in simulated.get("overlapping", [])} >= set(competitors)
        await client.indices.create_data_stream(name=stream)
        backing = (await client.indices.get_data_stream(name=stream))["data_streams"][0]["template"]
        assert backing == stream_template_name("logs", "api_service")
        settings = await client.indices.get_settings(index=stream)
        index_settings = next(iter(settings.values()))["settings"]["index"]
        assert int(index_settings["mapping"]["total_fields"]["limit"]) == TOTAL_FIELDS_LIMIT
        assert PRIORITY > max(competitors.values())
    finally:
        await client.indices.delete_data_stream(name=stream, ignore=[404])
        for name in competitors:
            await client.indices.delete_index_template(name=name, ignore=[404])


async def test_replicas_setting_reaches_new_backing_indices(search_url: str, client: AsyncOpenSearch,
                                                            unique: str) -> None:
    stream = f"logs-replicas-t{unique}"
    await _prepared(search_url, stream, index_replicas=0)
    try:
        await client.indices.create_data_stream(name=stream)
        settings = next(iter((await client.indices.get_settings(index=stream)).values()))["settings"]["index"]
        assert settings["number_of_replicas"] == "0"
        health = await client.cluster.health(index=stream, wait_for_status="green", timeout="10s",
                                             request_timeout=20)
        assert health["status"] == "green"  # a single node: with the default (1 replica) it stays yellow
    finally:
        await client.indices.delete_data_stream(name=stream, ignore=[404])
        await _install(search_url)  # the defaults again, for the tests after this one
    default = await client.cluster.get_component_template(name=COMPONENT_SETTINGS)
    assert "number_of_replicas" not in str(default)
