"""A stand-in for the Docker Engine API on a unix socket (no Docker engine on this machine): the
two read-only endpoints the prober uses, GET /containers/json and the streaming GET /events,
with the field names and shapes of the Engine API (v1.41+)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


class FakeDocker:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.containers: list[dict[str, Any]] = []
        self.subscribers: list[asyncio.Queue[bytes]] = []
        self.event_filters: list[str] = []
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    def container(self, cid: str, name: str, status: str, service: str | None = None) -> None:
        labels = {"com.docker.compose.service": service} if service else {}
        self.containers.append({"Id": cid, "Names": [f"/{name}"], "Labels": labels, "State": "running",
                                "Status": f"Up 3 minutes{f' ({status})' if status else ''}"})

    def emit(self, cid: str, name: str, action: str, **attributes: str) -> None:
        event = {"Type": "container", "Action": action, "status": action, "id": cid,
                 "Actor": {"ID": cid, "Attributes": {"name": name, **attributes}}, "scope": "local",
                 "time": 1_790_000_000, "timeNano": 1_790_000_000_000_000_000}
        for queue in self.subscribers:
            queue.put_nowait(orjson.dumps(event) + b"\n")

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/containers/json")
        async def containers() -> list[dict[str, Any]]:
            return self.containers

        @app.get("/events")
        async def events(request: Request) -> StreamingResponse:
            self.event_filters.append(request.query_params.get("filters", ""))
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            self.subscribers.append(queue)

            async def stream() -> AsyncIterator[bytes]:
                try:
                    while line := await queue.get():  # b"": the daemon is going away
                        yield line
                finally:
                    self.subscribers.remove(queue)

            return StreamingResponse(stream(), media_type="application/json")

        return app

    async def start(self) -> None:
        config = uvicorn.Config(self.app(), uds=str(self.socket_path), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(1000):
            if self.server.started:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("the fake Docker API did not start")

    async def stop(self) -> None:
        assert self.server is not None and self.task is not None
        for queue in self.subscribers:
            queue.put_nowait(b"")
        self.server.should_exit = True
        self.server.force_exit = True  # the event streams never end on their own
        await asyncio.wait_for(self.task, 10)
        self.socket_path.unlink(missing_ok=True)
