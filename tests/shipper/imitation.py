"""An imitation search engine on loopback: answers POST /_bulk from a script, for the statuses a
real OpenSearch will not produce on demand (408, 503, a proxy's HTML page, a dropped connection);
any PUT (the index templates the sink puts before a stream's first write) is acknowledged, and a GET
(its look for another producer's templates and streams first) finds none.
OverloadProxy: a real engine behind a proxy that answers like an overloaded Elasticsearch."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

DROP = "drop"  # close the connection without an answer


class Answer:
    def __init__(self, status: int = 200, body: bytes | dict[str, Any] = b"", content_type: str = "application/json"):
        self.status = status
        self.body = orjson.dumps(body) if isinstance(body, dict) else body
        self.content_type = content_type


def items(ids: list[str], item: Callable[[str], dict[str, Any]]) -> Answer:
    """A bulk answer with one item per action, from `item(doc_id)`."""
    results = [{"create": item(doc_id)} for doc_id in ids]
    errors = any(r["create"].get("status") not in (200, 201) for r in results)
    return Answer(200, {"took": 1, "errors": errors, "items": results})


Script = Callable[[int, list[str]], "Answer | str"]  # (request number, ids in the body) -> answer or DROP


class ImitationEngine:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[list[str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_PUT(self) -> None:  # templates the sink puts before a stream's first write
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self._answer(Answer(200, {"acknowledged": True}))

            def do_GET(self) -> None:  # an empty cluster: no templates, no data streams
                self._answer(Answer(200, {"index_templates": [], "data_streams": []}))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                ids = [orjson.loads(line)["create"]["_id"] for line in body.split(b"\n")[0::2] if line]
                outer.requests.append(ids)
                answer = outer.script(len(outer.requests) - 1, ids)
                if answer == DROP:
                    self.close_connection = True
                    return
                assert isinstance(answer, Answer)
                self._answer(answer)

            def _answer(self, answer: Answer) -> None:
                self.send_response(answer.status)
                self.send_header("content-type", answer.content_type)
                if answer.content_type == "application/json":
                    self.send_header("x-elastic-product", "Elasticsearch")
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> ImitationEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rejected(doc_id: str) -> dict[str, Any]:
    """An item as an Elasticsearch whose write thread pool is full answers it (inside a 200 bulk answer)."""
    return {"create": {"_id": doc_id, "status": 429, "error": {
        "type": "es_rejected_execution_exception",
        "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, "
                  "all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]"}}}


class OverloadProxy:
    """A loopback proxy in front of a real engine that answers like an overloaded Elasticsearch:
    every bulk item is rejected with a per-item 429 `es_rejected_execution_exception` inside a 200
    answer the first `rejections` times its `_id` is sent, then passed through. Items already past
    their rejections in the same request are forwarded (a partly accepted bulk, as a busy cluster
    answers), and the engine's items are merged back in order. Anything else passes through."""

    def __init__(self, upstream: str, rejections: int) -> None:
        import httpx

        self.upstream = upstream.rstrip("/")
        self.rejections = rejections
        self.seen: dict[str, int] = {}  # _id -> times rejected
        self.rejected = 0
        self.lock = threading.Lock()
        client = httpx.Client(timeout=60)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _forward(self, body: bytes | None) -> tuple[int, bytes, str]:
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding")}
                got = client.request(self.command, outer.upstream + self.path, content=body, headers=headers)
                return got.status_code, got.content, got.headers.get("content-type", "application/json")

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0)) or None
                if self.command == "POST" and self.path.split("?")[0].endswith("/_bulk") and body:
                    status, out, ctype = outer._bulk(self._forward, body)
                else:
                    status, out, ctype = self._forward(body)
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.client = client

    def _bulk(self, forward: Callable[[bytes], tuple[int, bytes, str]], body: bytes) -> tuple[int, bytes, str]:
        lines = body.split(b"\n")
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2) if lines[i]]
        rejected: set[int] = set()
        with self.lock:
            for n, (action, _) in enumerate(pairs):
                doc_id = orjson.loads(action)["create"]["_id"]
                if self.seen.get(doc_id, 0) < self.rejections:
                    self.seen[doc_id] = self.seen.get(doc_id, 0) + 1
                    self.rejected += 1
                    rejected.add(n)
        if not rejected:
            return forward(body)
        passed = [pair for n, pair in enumerate(pairs) if n not in rejected]
        items: list[dict[str, Any]] = []
        if passed:
            status, out, ctype = forward(b"".join(a + b"\n" + s + b"\n" for a, s in passed))
            if status != 200:
                return status, out, ctype
            items = list(orjson.loads(out).get("items") or [])
        merged: list[dict[str, Any]] = []
        for n, (action, _) in enumerate(pairs):
            merged.append(_rejected(orjson.loads(action)["create"]["_id"]) if n in rejected else items.pop(0))
        return 200, orjson.dumps({"took": 1, "errors": True, "items": merged}), "application/json"

    def __enter__(self) -> OverloadProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()
