"""Real HTTP services on loopback for the health tests and the benchmark: a service whose /health
can be flipped, and a webhook receiver that records what arrives and when."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.server.started, "loopback server did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


class FlipService(_Server):
    """GET /health answers 200 {"status": "ok"} or 503 {"status": "unhealthy"}; `fail_next` fails N probes."""

    def __init__(self) -> None:
        self.healthy = True
        self.fail_next = 0
        self.probes: list[tuple[float, bool]] = []
        app = FastAPI()

        @app.get("/health")
        async def health() -> JSONResponse:
            ok = self.healthy and self.fail_next <= 0
            if self.fail_next > 0:
                self.fail_next -= 1
            self.probes.append((time.time(), ok))
            return JSONResponse({"status": "ok" if ok else "unhealthy"}, status_code=200 if ok else 503)

        super().__init__(app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"


class SwitchService:
    """A /health on loopback, in the test's own event loop, that can answer 200, answer 503, refuse
    connections (nothing listens) or hang (accepts and never answers); counts the requests hanging at
    once."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.failed: list[float] = []  # when each failing request came (503 answered or hang accepted)
        self.hang_next = 0  # hang this many requests, then answer as `mode` says
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.hanging = self.most_hanging = 0
        self._release = asyncio.Event()
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", self.port, reuse_address=True)

    async def set(self, mode: str) -> None:
        if mode == "refused" and self.server is not None:
            self.server.close()
            for writer in list(self._open):  # kept-alive connections too: nothing answers any more
                writer.close()
            await self.server.wait_closed()
            self.server = None
        elif mode != "refused" and self.server is None:
            await self.listen()
        self.mode = mode

    async def close(self) -> None:
        self._release.set()
        await self.set("refused")
        await asyncio.sleep(0)  # the handlers see their connections closed and end

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if self.mode != "ok" or self.hang_next > 0:
                    self.failed.append(time.time())
                if self.mode == "hang" or self.hang_next > 0:
                    self.hang_next = max(0, self.hang_next - 1)
                    self.hanging += 1
                    self.most_hanging = max(self.most_hanging, self.hanging)
                    # until the prober gives up on it (closes the connection) or the test ends
                    waits = {asyncio.ensure_future(reader.read(1)), asyncio.ensure_future(self._release.wait())}
                    try:
                        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        self.hanging -= 1
                        for w in waits:
                            w.cancel()
                    return
                ok = self.mode == "ok"
                body = b'{"status": "ok"}' if ok else b'{"status": "unhealthy"}'
                writer.write(b"HTTP/1.1 " + (b"200 OK" if ok else b"503 Service Unavailable") +
                             b"\r\ncontent-type: application/json\r\ncontent-length: " + str(len(body)).encode() +
                             b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()


@dataclass
class Received:
    at: float
    path: str
    body: dict[str, Any]


@dataclass
class WebhookReceiver(_Server):
    """POST /hook/... records JSON bodies; POST /flaky/... fails `fail_first` times with 503 first."""

    fail_first: int = 0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        app = FastAPI()

        @app.post("/{path:path}")
        async def hook(path: str, request: Request) -> Response:
            body = orjson.loads(await request.body())
            if path.startswith("flaky") and self.fail_first > 0:
                self.fail_first -= 1
                return Response(status_code=503)
            if path.startswith("hang"):
                await asyncio.sleep(30)
            self.received.append(Received(time.time(), path, body))
            return Response(status_code=204)

        super().__init__(app)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def json_events(self, path: str = "hook") -> list[Received]:
        return [r for r in self.received if r.path.startswith(path)]


async def stream_docs(search_url: str, stream: str, **terms: str) -> list[dict[str, Any]]:
    """Documents of a data stream, oldest first, filtered by term (`event__action="fired"` for
    event.action). Refreshed first: what the shipper wrote a moment ago (just before it stopped, or
    just after the webhook it reports went out) is there, but searchable only after a refresh."""
    filters = [{"term": {k.replace("__", "."): v}} for k, v in terms.items()]
    body = {"size": 500, "sort": [{"@timestamp": "asc"}], "query": {"bool": {"filter": filters}}}
    async with httpx.AsyncClient() as client:
        await client.post(f"{search_url}/{stream}/_refresh?ignore_unavailable=true")
        r = await client.post(f"{search_url}/{stream}/_search?ignore_unavailable=true", json=body)
        return [h["_source"] for h in r.json().get("hits", {}).get("hits", [])]


async def alert_docs(search_url: str, namespace: str, **terms: str) -> list[dict[str, Any]]:
    """Alert events in logs-elk.alerts-<namespace>."""
    return await stream_docs(search_url, f"logs-elk.alerts-{namespace}", **terms)


async def transitions(search_url: str, namespace: str, **terms: str) -> list[dict[str, Any]]:
    """Health transitions in logs-elk.health-<namespace>."""
    return await stream_docs(search_url, f"logs-elk.health-{namespace}", event__action="health-transition", **terms)


async def wait_progress(measure: Any, target: float, stall_s: float = 30.0, every: float = 0.5) -> float | None:
    """Polls an async measure (a count that grows) until it reaches `target`: the time.time() at which
    it did, or None once it has not moved for `stall_s` seconds. Bounded by progress, not by a guess
    of how fast a loaded machine is."""
    last, moved = None, time.monotonic()
    while True:
        value = await measure()
        if value >= target:
            return time.time()
        if value != last:
            last, moved = value, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            return None
        await asyncio.sleep(every)


async def wait_for(predicate: Any, within: float, every: float = 0.25) -> float | None:
    """Polls an async predicate; the time.time() at which it first held, or None."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return time.time()
        await asyncio.sleep(every)
    return None
