"""What the shipper needs from a search engine, shared by both adapters.

The adapters differ only in the client they wrap and in Elasticsearch-only setup (ILM); bulk
bodies are built by the sink as NDJSON bytes and sent as they are.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_lib
from abc import ABC, abstractmethod
from typing import Any

from shipper.statuses import NO_ANSWER
from shipper.templates import component_templates, index_templates

# Only what the sink reads from a bulk response: the engine skips serialising ids, versions and
# shard counts of every item (a 5,000-item answer shrinks from ~1 MB to a few KB).
BULK_FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by.reason"


class EngineUnavailable(Exception):
    """No usable answer: connection refused, timeout, a 2xx that is not JSON; from calls other than
    bulk also 408/429/5xx. `status`: the HTTP status, or a pseudo-status of shipper.statuses."""

    def __init__(self, reason: str, status: int = NO_ANSWER) -> None:
        super().__init__(reason)
        self.status = status


class EngineRejected(Exception):
    """An HTTP error status for a whole request. From `bulk`: any error status (the sink reads
    shipper.statuses.REQUEST_ROWS); from other calls: a 4xx other than 408/429."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status


def transient(status: int) -> bool:
    """For calls other than bulk (setup, searches): worth waiting for, or a caller's mistake."""
    return status in (NO_ANSWER, 408, 429) or status >= 500


async def gzipped(body: bytes) -> bytes:
    # zlib releases the GIL: compressing in a thread runs beside the next batch's transform
    return await asyncio.to_thread(gzip_lib.compress, body, 1)


class SearchEngine(ABC):
    name: str
    # what setup installs; build_engine sets them from the settings
    replicas: int | None = None
    retention_days: int = 30

    @abstractmethod
    async def bulk(self, body: bytes, gzip: bool = False) -> dict[str, Any]:
        """POST /_bulk (NDJSON bytes, gzip-compressed on the way when asked); the parsed, filtered response.

        Raises EngineUnavailable without an answer or with one that is not JSON (status NOT_BULK),
        EngineRejected with the status of any HTTP error.
        """

    @abstractmethod
    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Any other API call; EngineUnavailable on transport errors and 5xx, EngineRejected on 4xx."""

    @abstractmethod
    async def close(self) -> None: ...

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/")
        return result

    async def ping(self) -> bool:
        try:
            await self.info()
            return True
        except Exception:
            return False

    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", f"/{index}/_search?ignore_unavailable=true", body)
        return result

    async def put_templates(self, component: dict[str, dict[str, Any]], index: dict[str, dict[str, Any]]) -> None:
        """Idempotent: PUT replaces each template with the same content on every start."""
        for name, body in component.items():
            await self.request("PUT", f"/_component_template/{name}", body)
        for name, body in index.items():
            await self.request("PUT", f"/_index_template/{name}", self.adapt_index_template(body))

    async def install_templates(self) -> None:
        await self.put_templates(component_templates(self.replicas), index_templates())

    def adapt_index_template(self, body: dict[str, Any]) -> dict[str, Any]:
        return body
