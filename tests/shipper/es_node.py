"""The product's templates on the stack's Elasticsearch node, which lacks the mapper types of
Elasticsearch's modules and x-pack (docs/ARCHITECTURE.md, "Elasticsearch in the local stack"): those
fields are put with the type Elasticsearch documents as their base (`match_only_text` -> text,
`wildcard` / `constant_keyword` -> keyword, `scaled_float` -> float); everything else is the product's own.
The node has no `GET /` and no ILM either, so the engine is named and has no lifecycle, as
`install_templates` finds on a server without ILM."""

from __future__ import annotations

import copy
from typing import Any

from shipper.config import ShipperSettings
from shipper.engines.detect import build_engine
from shipper.engines.elasticsearch import ElasticsearchEngine
from shipper.templates import COMPONENT_SETTINGS, component_templates

MISSING_ON_THE_NODE = {"match_only_text": "text", "wildcard": "keyword", "constant_keyword": "keyword",
                       "scaled_float": "float"}


def node_types(spec: dict[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    if out.get("type") in MISSING_ON_THE_NODE:
        out = {"type": MISSING_ON_THE_NODE[out["type"]], **({"fields": out["fields"]} if "fields" in out else {})}
    if "fields" in out:
        out["fields"] = {k: node_types(v) for k, v in out["fields"].items()}
    if "properties" in out:
        out["properties"] = {k: node_types(v) for k, v in out["properties"].items()}
    return out


def node_template(body: dict[str, Any]) -> dict[str, Any]:
    """A component or index template of ours in the node's types."""
    body = copy.deepcopy(body)
    mappings = (body.get("template") or {}).get("mappings")
    if mappings:
        mappings["properties"] = {k: node_types(v) for k, v in mappings["properties"].items()}
    return body


async def node_engine(url: str, *, index_mode: str | None = None) -> ElasticsearchEngine:
    """The Elasticsearch adapter on the node, with setup's component templates in place; the stream
    templates the sink puts go in the node's types too."""
    engine = build_engine(ShipperSettings(search_url=url, engine="elasticsearch"), "elasticsearch")
    assert isinstance(engine, ElasticsearchEngine)
    engine.lifecycle = False
    adapt = engine.adapt_index_template
    engine.adapt_index_template = lambda body: node_template(adapt(body))  # type: ignore[method-assign]
    for name, body in component_templates("elasticsearch", (8, 17), replicas=0).items():
        body = node_template(body)
        if name == COMPONENT_SETTINGS and index_mode:
            body["template"]["settings"]["index.mode"] = index_mode
        await engine.request("PUT", f"/_component_template/{name}", body)
    return engine
