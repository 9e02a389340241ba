"""OpenSearch 2.x through opensearch-py."""

from __future__ import annotations

from typing import Any

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, TransportError

from shipper.engines.base import EngineUnavailable, SearchEngine

_NDJSON = {"content-type": "application/x-ndjson"}


class OpenSearchEngine(SearchEngine):
    name = "opensearch"

    def __init__(self, url: str, *, username: str | None, password: str | None, timeout: float,
                 gzip: bool, pool: int) -> None:
        auth = (username, password or "") if username else None
        self.client = AsyncOpenSearch(hosts=[url], http_auth=auth, timeout=timeout, http_compress=gzip,
                                      max_retries=0, retry_on_timeout=False, pool_maxsize=pool)

    async def bulk(self, body: bytes) -> dict[str, Any]:
        try:
            response: dict[str, Any] = await self.client.transport.perform_request(
                "POST", "/_bulk", body=body, headers=_NDJSON)
            return response
        except (OSConnectionError, ConnectionTimeout) as exc:
            raise EngineUnavailable(str(exc)) from exc
        except TransportError as exc:
            if isinstance(exc.status_code, int) and (exc.status_code >= 500 or exc.status_code == 429):
                raise EngineUnavailable(f"{exc.status_code}: {exc.error}") from exc
            raise

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return await self.client.transport.perform_request(method, path, body=body)
        except (OSConnectionError, ConnectionTimeout) as exc:
            raise EngineUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self.client.close()
