"""A loopback proxy in front of the real engine that changes what crosses it: for behaviour of an
engine version the local stack does not run (e.g. Elasticsearch 9.2's read-only template fields).

`rewrite(method, path, body)` may answer a request itself (status, JSON body) instead of forwarding
it; `answer(method, path, status, body)` may change the engine's JSON answer on the way back."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

Rewrite = Callable[[str, str, Any], "tuple[int, Any] | None"]
AnswerHook = Callable[[str, str, int, Any], Any]


class EngineProxy:
    def __init__(self, upstream: str, rewrite: Rewrite | None = None, answer: AnswerHook | None = None) -> None:
        target = urllib.parse.urlsplit(upstream)
        outer = self
        self.seen: list[tuple[str, str, int]] = []  # (method, path, status) of every request

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _any(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                body = orjson.loads(raw) if raw and "json" in (self.headers.get("content-type") or "") else None
                own = rewrite(self.command, self.path, body) if rewrite else None
                if own is not None:
                    status, out = own
                    self._send(status, orjson.dumps(out), "application/json")
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=raw or None, headers=headers)
                    response = conn.getresponse()
                    data, status = response.read(), response.status
                    ctype = response.getheader("content-type") or "application/json"
                finally:
                    conn.close()
                if answer is not None and data and "json" in ctype:
                    data = orjson.dumps(answer(self.command, self.path, status, orjson.loads(data)))
                self._send(status, data, ctype)

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                outer.seen.append((self.command, self.path, status))
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> EngineProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
