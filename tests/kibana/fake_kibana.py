"""A stand-in Kibana on loopback for the loader tests (Kibana cannot run here): it records every
request and checks what real Kibana checks: the kbn-xsrf header, the credentials, the multipart
`file` field of an import, create-vs-update of connectors and rules under fixed ids."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    files: dict[str, tuple[str | None, bytes]] = field(default_factory=dict)


class FakeKibana:
    def __init__(self, *, user: str | None = None, password: str | None = None, api_key: str | None = None) -> None:
        self.user, self.password, self.api_key = user, password, api_key
        self.requests: list[Seen] = []
        self.import_mode = "ok"  # ok | errors | success_false | partial_count | http500 | not_json
        self.not_ready = 0  # answer 503 to this many status calls first
        self.status_level = "available"
        self.connectors: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []  # request defects the fake noticed (the test asserts none)
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    # ---- lifecycle

    def start(self) -> FakeKibana:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    # ---- requests

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.api_key is not None:
            return header == f"ApiKey {self.api_key}"
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return header == f"Basic {token}"
        return header == ""

    async def handle(self, request: web.Request) -> web.Response:
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers))
        self.requests.append(seen)
        if not self.authorized(request):
            return web.json_response({"statusCode": 401, "error": "Unauthorized"}, status=401)
        path = request.path
        space = ""
        if path.startswith("/s/"):
            _, _, space_id, rest = path.split("/", 3)
            space, path = space_id, "/" + rest
        del space
        if request.method != "GET" and request.headers.get("kbn-xsrf") != "true":
            self.problems.append(f"{request.method} {request.path} without kbn-xsrf")
            return web.json_response({"statusCode": 400, "message": 'Request must contain a kbn-xsrf header.'},
                                     status=400)
        if path == "/api/status" and request.method == "GET":
            if self.not_ready > 0:
                self.not_ready -= 1
                return web.json_response({"status": {"overall": {"level": "unavailable"}}}, status=503)
            return web.json_response({"version": {"number": "8.15.0"},
                                      "status": {"overall": {"level": self.status_level, "summary": "fake"}}})
        if path == "/api/saved_objects/_import" and request.method == "POST":
            return await self.import_(request, seen)
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "actions", "connector"] and len(parts) == 4:
            return await self.upsert(request, seen, self.connectors, parts[3],
                                     create_only={"connector_type_id"}, required={"name", "config"})
        if parts[:3] == ["api", "alerting", "rule"] and len(parts) == 4:
            return await self.upsert(request, seen, self.rules, parts[3],
                                     create_only={"rule_type_id", "consumer", "enabled"},
                                     required={"name", "schedule", "params"})
        return web.json_response({"statusCode": 404}, status=404)

    async def import_(self, request: web.Request, seen: Seen) -> web.Response:
        if request.query.get("overwrite") != "true":
            self.problems.append("import without overwrite=true")
        if not request.content_type.startswith("multipart/form-data"):
            self.problems.append(f"import content type {request.content_type}")
            return web.json_response({"statusCode": 415}, status=415)
        reader = await request.multipart()
        async for part in reader:
            name = getattr(part, "name", None)
            seen.files[str(name)] = (getattr(part, "filename", None), await part.read())  # type: ignore[union-attr]
        if "file" not in seen.files or not seen.files["file"][0]:
            return web.json_response({"statusCode": 400, "message": "[request body.file]: expected a file"},
                                     status=400)
        objects = [json.loads(line) for line in seen.files["file"][1].splitlines() if line.strip()]
        n = len(objects)
        if self.import_mode == "http500":
            return web.json_response({"statusCode": 500}, status=500)
        if self.import_mode == "not_json":
            return web.Response(text="<html>proxy page</html>", status=200)
        if self.import_mode == "errors":
            first = objects[-1]
            error = {"id": first["id"], "type": first["type"], "title": "x",
                     "error": {"type": "missing_references",
                               "references": [{"type": "index-pattern", "id": "elk-nope"}]}}
            return web.json_response({"success": False, "successCount": n - 1, "errors": [error]})
        if self.import_mode == "success_false":
            return web.json_response({"success": False, "successCount": 0})
        if self.import_mode == "success_with_errors":
            return web.json_response({"success": True, "successCount": n,
                                      "errors": [{"id": "x", "type": "lens", "error": {"type": "unknown"}}]})
        if self.import_mode == "partial_count":
            return web.json_response({"success": True, "successCount": n - 2, "successResults": []})
        return web.json_response({"success": True, "successCount": n, "successResults": [
            {"type": o["type"], "id": o["id"]} for o in objects]})

    async def upsert(self, request: web.Request, seen: Seen, store: dict[str, dict[str, Any]], id_: str, *,
                     create_only: set[str], required: set[str]) -> web.Response:
        seen.body = await request.json()
        missing = required - set(seen.body)
        if missing:
            return web.json_response({"statusCode": 400, "message": f"missing {sorted(missing)}"}, status=400)
        if request.method == "POST":
            if id_ in store:
                return web.json_response({"statusCode": 409, "error": "Conflict"}, status=409)
            store[id_] = dict(seen.body)
            return web.json_response({"id": id_, **seen.body})
        if request.method == "PUT":
            if id_ not in store:
                return web.json_response({"statusCode": 404}, status=404)
            extra = create_only & set(seen.body)
            if extra:  # Kibana's update schema rejects them
                return web.json_response({"statusCode": 400, "message": f"definition for {sorted(extra)} not allowed"},
                                         status=400)
            store[id_].update(seen.body)
            return web.json_response({"id": id_, **store[id_]})
        return web.json_response({"statusCode": 405}, status=405)
