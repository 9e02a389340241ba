"""Elasticsearch 8.x/9.x through the official client; ILM is the only Elasticsearch-only setup."""

from __future__ import annotations

from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout, SerializationError
from elasticsearch import ApiError, AsyncElasticsearch

from shipper.engines.base import (
    BULK_FILTER_PATH,
    EngineRejected,
    EngineUnavailable,
    SearchEngine,
    gzipped,
    transient,
)
from shipper.log import get_logger
from shipper.statuses import NOT_BULK
from shipper.templates import ILM_POLICY, ilm_policy

log = get_logger("shipper.engines.elasticsearch")

_ACCEPT = "application/vnd.elasticsearch+json; compatible-with=8"
_NDJSON = {"content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8", "accept": _ACCEPT}
_NDJSON_GZIP = {**_NDJSON, "content-encoding": "gzip"}
_JSON = {"content-type": "application/vnd.elasticsearch+json; compatible-with=8", "accept": _ACCEPT}


def _translate(exc: ApiError) -> Exception:
    status = exc.meta.status
    if transient(status):
        return EngineUnavailable(f"{status}: {exc.message}", status)
    return EngineRejected(status, f"{exc.message} {str(exc.body)[:500]}")


class ElasticsearchEngine(SearchEngine):
    name = "elasticsearch"

    def __init__(self, url: str, *, username: str | None, password: str | None, api_key: str | None,
                 timeout: float, pool: int) -> None:
        # no client-side compression or retries: the sink decides both, per request
        self.client = AsyncElasticsearch(
            hosts=[url], basic_auth=(username, password or "") if username else None, api_key=api_key,
            request_timeout=timeout, http_compress=False, max_retries=0, retry_on_timeout=False,
            connections_per_node=pool,
        )
        self.lifecycle = True  # cleared when the server has no ILM (e.g. an API imitation)

    async def bulk(self, body: bytes, gzip: bool = False) -> dict[str, Any]:
        try:
            response = await self.client.perform_request(
                "POST", "/_bulk", params={"filter_path": BULK_FILTER_PATH},
                body=await gzipped(body) if gzip else body, headers=_NDJSON_GZIP if gzip else _NDJSON)
        except (ESConnectionError, ConnectionTimeout) as exc:
            raise EngineUnavailable(str(exc)) from exc
        except SerializationError as exc:  # a 2xx page from something in front of the engine
            raise EngineUnavailable(f"the bulk answer is not JSON: {str(exc)[:200]}", NOT_BULK) from exc
        except ApiError as exc:
            status = exc.meta.status
            if status < 300:  # e.g. a 2xx without the product header: not the engine answering
                raise EngineUnavailable(f"{status}: {exc.message}", NOT_BULK) from exc
            raise EngineRejected(status, f"{exc.message} {str(exc.body)[:500]}") from exc
        if not isinstance(response.body, dict):
            raise EngineUnavailable(f"the bulk answer is not an object: {str(response.body)[:200]}", NOT_BULK)
        return dict(response.body)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self.client.perform_request(
                method, path, body=body, headers=_JSON if body is not None else {"accept": _ACCEPT})
            return response.body
        except (ESConnectionError, ConnectionTimeout) as exc:
            raise EngineUnavailable(str(exc)) from exc
        except ApiError as exc:
            raise _translate(exc) from exc

    async def install_templates(self) -> None:
        try:
            await self.request("PUT", f"/_ilm/policy/{ILM_POLICY}", ilm_policy(f"{self.retention_days}d"))
        except EngineRejected as exc:
            # a server without ILM still gets the templates, only without a lifecycle
            self.lifecycle = False
            log.warning("no ILM on this server; data streams will have no lifecycle", error=str(exc))
        await super().install_templates()

    def adapt_index_template(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.lifecycle:
            return body
        template = dict(body.get("template") or {})
        template["settings"] = {**template.get("settings", {}), "index.lifecycle.name": ILM_POLICY}
        return {**body, "template": template}

    async def close(self) -> None:
        await self.client.close()
