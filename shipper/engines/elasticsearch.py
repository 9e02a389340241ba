"""Elasticsearch 8.x/9.x through the official client; ILM is the only Elasticsearch-only setup."""

from __future__ import annotations

from typing import Any

from elastic_transport import ConnectionError as ESConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch

from shipper.engines.base import EngineUnavailable, SearchEngine
from shipper.templates import ILM_POLICY, ilm_policy

_NDJSON = {"content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
           "accept": "application/vnd.elasticsearch+json; compatible-with=8"}
_JSON = {"content-type": "application/vnd.elasticsearch+json; compatible-with=8",
         "accept": "application/vnd.elasticsearch+json; compatible-with=8"}


class ElasticsearchEngine(SearchEngine):
    name = "elasticsearch"

    def __init__(self, url: str, *, username: str | None, password: str | None, api_key: str | None,
                 timeout: float, gzip: bool, pool: int) -> None:
        self.client = AsyncElasticsearch(
            hosts=[url], basic_auth=(username, password or "") if username else None, api_key=api_key,
            request_timeout=timeout, http_compress=gzip, max_retries=0, retry_on_timeout=False,
            connections_per_node=pool,
        )

    async def bulk(self, body: bytes) -> dict[str, Any]:
        try:
            response = await self.client.perform_request("POST", "/_bulk", body=body, headers=_NDJSON)
            return dict(response.body)
        except (ESConnectionError, ConnectionTimeout) as exc:
            raise EngineUnavailable(str(exc)) from exc
        except ApiError as exc:
            if exc.meta.status >= 500 or exc.meta.status == 429:
                raise EngineUnavailable(f"{exc.meta.status}: {exc.message}") from exc
            raise

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self.client.perform_request(
                method, path, body=body, headers=_JSON if body is not None else {"accept": _JSON["accept"]})
            return response.body
        except (ESConnectionError, ConnectionTimeout) as exc:
            raise EngineUnavailable(str(exc)) from exc

    async def install_templates(self) -> None:
        await self.request("PUT", f"/_ilm/policy/{ILM_POLICY}", ilm_policy())
        await super().install_templates()

    def adapt_index_template(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "template": {"settings": {"index.lifecycle.name": ILM_POLICY}}}

    async def close(self) -> None:
        await self.client.close()
