"""An imitation search engine on loopback: answers POST /_bulk from a script, for the statuses a
real OpenSearch will not produce on demand (408, 503, a proxy's HTML page, a dropped connection);
any PUT (the index templates the sink puts before a stream's first write) is acknowledged, and a GET
(its look for another producer's templates and streams first) finds none."""

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
