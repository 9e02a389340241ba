"""OpenSearch 2.x through opensearch-py."""

from __future__ import annotations

from typing import Any

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import ConnectionTimeout, SerializationError, TransportError

from shipper.engines.base import (
    BULK_FILTER_PATH,
    EngineRejected,
    EngineUnavailable,
    SearchEngine,
    gzipped,
    transient,
)
from shipper.statuses import NOT_BULK

_NDJSON = {"content-type": "application/x-ndjson"}
_NDJSON_GZIP = {**_NDJSON, "content-encoding": "gzip"}


def _status(exc: TransportError) -> int:
    return exc.status_code if isinstance(exc.status_code, int) else 0


def _translate(exc: TransportError) -> Exception:
    status = _status(exc)
    if transient(status):
        return EngineUnavailable(f"{status}: {exc.error}", status)
    return EngineRejected(status, f"{exc.error} {str(exc.info)[:500]}")


class OpenSearchEngine(SearchEngine):
    name = "opensearch"

    def __init__(self, url: str, *, username: str | None, password: str | None, timeout: float, pool: int) -> None:
        auth = (username, password or "") if username else None
        # no client-side compression or retries: the sink decides both, per request
        self.client = AsyncOpenSearch(hosts=[url], http_auth=auth, timeout=timeout, http_compress=False,
                                      max_retries=0, retry_on_timeout=False, pool_maxsize=pool)

    async def bulk(self, body: bytes, gzip: bool = False) -> dict[str, Any]:
        try:
            response: dict[str, Any] = await self.client.transport.perform_request(
                "POST", "/_bulk", params={"filter_path": BULK_FILTER_PATH},
                body=await gzipped(body) if gzip else body, headers=_NDJSON_GZIP if gzip else _NDJSON)
        except (OSConnectionError, ConnectionTimeout) as exc:
            raise EngineUnavailable(str(exc)) from exc
        except SerializationError as exc:  # a 2xx page from something in front of the engine
            raise EngineUnavailable(f"the bulk answer is not JSON: {str(exc)[:200]}", NOT_BULK) from exc
        except TransportError as exc:
            raise EngineRejected(_status(exc), f"{exc.error} {str(exc.info)[:500]}") from exc
        if not isinstance(response, dict):
            raise EngineUnavailable(f"the bulk answer is not an object: {str(response)[:200]}", NOT_BULK)
        return response

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return await self.client.transport.perform_request(method, path, body=body)
        except (OSConnectionError, ConnectionTimeout) as exc:
            raise EngineUnavailable(str(exc)) from exc
        except TransportError as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        await self.client.close()
