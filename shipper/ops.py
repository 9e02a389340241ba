"""/health and /metrics over a tiny asyncio HTTP server: no framework on the shipper's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson


class OpsServer:
    def __init__(self, host: str, port: int, metrics: Callable[[], str], ready: Callable[[], bool],
                 detail: Callable[[], dict[str, object]]) -> None:
        self.host = host
        self.port = port
        self.metrics = metrics
        self.ready = ready
        self.detail = detail
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            ready = self.ready()
            if path == "/health":
                status = 200 if ready else 503
                body = orjson.dumps({"status": "healthy" if ready else "unhealthy", **self.detail()})
                ctype = "application/json"
            elif path == "/metrics":
                status, body, ctype = 200, self.metrics().encode(), "text/plain; version=0.0.4"
            else:
                status, body, ctype = 404, b'{"error":"not found"}', "application/json"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
