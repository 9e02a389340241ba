"""What the shipper needs from a search engine, shared by both adapters.

The adapters differ only in the client they wrap and in Elasticsearch-only setup (ILM); bulk
bodies are built by the sink as NDJSON bytes and sent as they are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from shipper.templates import component_templates, index_templates


class EngineUnavailable(Exception):
    """The engine did not answer (connection refused, timeout, 5xx on the whole request)."""


class SearchEngine(ABC):
    name: str

    @abstractmethod
    async def bulk(self, body: bytes) -> dict[str, Any]:
        """POST /_bulk; returns the parsed response. Raises EngineUnavailable when it cannot be sent."""

    @abstractmethod
    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Any other API call (templates, search, count); raises EngineUnavailable on transport errors."""

    @abstractmethod
    async def close(self) -> None: ...

    async def ping(self) -> bool:
        try:
            await self.request("GET", "/")
            return True
        except Exception:
            return False

    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", f"/{index}/_search?ignore_unavailable=true", body)
        return result

    async def install_templates(self) -> None:
        """Idempotent: PUT replaces each template with the same content every start."""
        for name, body in component_templates().items():
            await self.request("PUT", f"/_component_template/{name}", body)
        for name, body in index_templates().items():
            await self.request("PUT", f"/_index_template/{name}", self.adapt_index_template(body))

    def adapt_index_template(self, body: dict[str, Any]) -> dict[str, Any]:
        return body
