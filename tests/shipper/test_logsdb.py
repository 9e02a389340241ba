"""Our templates and documents in `logsdb` index mode (issue 21, B3), on the stack's Elasticsearch node
(OpenSearch has no logsdb mode). Elasticsearch 9.x creates `logs-*-*` streams in it by default; here
the mode comes from the settings component, as a cluster default would put it.

The node lacks some mapper types: tests/shipper/es_node.py puts those fields as their base types; every
other field, the templates and the documents are the product's own."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from collector.contract.streams import OWN_WRITER, OWN_WRITER_FIELD
from collector.contract.timefmt import format_epoch
from shipper.bulk import Action
from shipper.health.restore import apply_hits, restore_query
from shipper.health.state import HealthState, transition
from shipper.provenance import Meta, Provenance
from shipper.sink import BulkSink
from shipper.stats import Stats
from tests.shipper.es_node import node_engine

pytestmark = pytest.mark.stack

def _action(n: int, stream: str, doc: dict[str, Any]) -> Action:
    return Action(f"ldb-{n}", stream, orjson.dumps(doc), Provenance(Meta("t", 0, n, 0), b"", "a"))


async def test_our_streams_work_in_logsdb_mode(elasticsearch_url: str, unique: str) -> None:
    engine = await node_engine(elasticsearch_url, index_mode="logsdb")
    stream = f"logs-ldb{unique}-default"
    now = time.time()
    try:
        health = []
        for n, (to, node) in enumerate((("down", "a"), ("up", "a"), ("down", "b"))):
            doc = transition("instance", "api", node, "up", to, "probe", now + n, 1.0, "t")
            doc.pop("_id"), doc.pop("when")
            doc["@timestamp"] = format_epoch(now + n)
            doc["event"][OWN_WRITER_FIELD.split(".")[1]] = OWN_WRITER
            health.append(_action(n, stream, doc))
        records = [  # dotted and nested names, a keyword array out of order, no host.name on one
            _action(10, stream, {"@timestamp": format_epoch(now), "host.name": "h2", "log.level": "info",
                                 "message": "dotted", "tags": ["b", "a", "b"]}),
            _action(11, stream, {"@timestamp": format_epoch(now), "host": {"name": "h1"}, "message": "nested"}),
            _action(12, stream, {"@timestamp": format_epoch(now), "message": "no host"}),
        ]
        stats = Stats()
        sink = BulkSink(engine, stats, max_bytes=1 << 20, concurrency=1, retry_initial_s=0.01, retry_max_s=0.02)
        assert await sink.write([*health, *records]) == []
        assert stats.indexed == 6
        settings = await engine.request("GET", f"/{stream}/_settings?flat_settings=true")
        assert {s["settings"]["index.mode"] for s in settings.values()} == {"logsdb"}
        mapping = next(iter((await engine.request("GET", f"/{stream}/_mapping")).values()))["mappings"]
        assert mapping["properties"]["host"]["properties"]["name"]["type"] == "keyword"
        assert mapping["properties"]["@timestamp"]["type"] == "date"
        await engine.request("POST", f"/{stream}/_refresh")
        # health is restored from what logsdb gives back (synthetic _source), newest first as at start
        found = await engine.search(stream, restore_query())
        state = HealthState()
        apply_hits(state, list(reversed(found["hits"]["hits"])), now + 10)
        assert {n: state.instance("api", n).state for n in ("a", "b")} == {"a": "up", "b": "down"}  # type: ignore[union-attr]
        hits = (await engine.search(stream, {"size": 10, "query": {"term": {"host.name": "h2"}}}))["hits"]["hits"]
        assert [h["_source"]["message"] for h in hits] == ["dotted"]
    finally:  # the node cannot delete data streams (no data stream APIs); it starts empty every time
        await engine.close()
