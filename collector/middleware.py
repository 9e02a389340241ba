"""ASGI middleware: one ECS record per HTTP request and the `http.server.duration` histogram.

Honours and echoes `X-Request-ID` and W3C `traceparent`; every record logged while the request
runs (in any task it spawns) carries the same request, trace and transaction ids.
"""

from __future__ import annotations

import time
from typing import Any

from collector.context import request_context
from collector.logger import get_logger
from collector.metrics import REGISTRY

ASGIApp = Any
_log = get_logger("collector.http")
_duration = REGISTRY.histogram("http.server.duration", unit="ms", description="HTTP server request latency")


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class LoggingMiddleware:
    def __init__(self, app: ASGIApp, skip_paths: tuple[str, ...] = ()):
        self.app = app
        self.skip_paths = skip_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        status = 500
        request_id = (_header(scope, b"x-request-id") or "")[:128] or None  # client-supplied: bounded
        with request_context(request_id, _header(scope, b"traceparent")) as ids:
            extra_headers = [(b"x-request-id", ids["request_id"].encode()),
                             (b"traceparent", ids["traceparent"].encode())]

            async def send_wrapper(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
                await send(message)

            error: BaseException | None = None
            try:
                await self.app(scope, receive, send_wrapper)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._record(scope, status, time.perf_counter_ns() - started, error)

    def _record(self, scope: dict[str, Any], status: int, duration_ns: int, error: BaseException | None) -> None:
        path = scope.get("path", "")
        method = scope.get("method", "")
        route = scope.get("route")
        route_path = getattr(route, "path", None) or path
        _duration.observe(duration_ns / 1e6, method=method, route=route_path, status_code=status)
        if path in self.skip_paths:
            return
        client = scope.get("client")
        ecs: dict[str, Any] = {
            "http": {"request": {"method": method}, "response": {"status_code": status},
                     "version": scope.get("http_version", "1.1")},
            "url": {"path": path},
            "event": {"duration": duration_ns, "outcome": "failure" if status >= 500 else "success"},
        }
        query = scope.get("query_string")
        if query:
            ecs["url"]["query"] = query.decode("latin-1")
        if client:
            ecs["client"] = {"ip": client[0]}
        agent = _header(scope, b"user-agent")
        if agent:
            ecs["user_agent"] = {"original": agent}
        level = "error" if status >= 500 else "warning" if status >= 400 else "info"
        fields: dict[str, Any] = {"ecs": ecs}
        if error is not None:
            fields["exc_info"] = error
        getattr(_log, level)(f"{method} {path} {status}", **fields)
