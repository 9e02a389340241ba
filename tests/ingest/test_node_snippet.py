"""The Node logger documented in docs/ingest.md, run as written with Node against a loopback API
imitation: a refused token keeps the batch and is said once; a record the API always refuses
is dropped alone and counted; everything else arrives once."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

DRIVER = """
const fs = require('fs');
const logger = require('./logger.js');
(async () => {
  logger.info('one'); logger.info('two');
  await logger.flush();                                  // 401: kept
  await logger.flush();                                  // 401 again: kept, not said again
  fs.writeFileSync(process.env.INGEST_TOKEN_FILE, 'rotated');
  await logger.flush();                                  // 401: kept, the token file is re-read
  await logger.flush();                                  // 202 with the rotated token
  logger.info('a'); logger.info('poison'); logger.info('b');
  await logger.flush();                                  // 400 for the poisoned body: split
  console.log('STATS ' + JSON.stringify(logger.stats));
})();
"""


def _snippet() -> str:
    text = (REPO / "docs" / "ingest.md").read_text()
    found = re.search(r"```js\n(// logger\.js\n.*?)```", text, re.S)
    assert found, "docs/ingest.md has no `// logger.js` block"
    return found.group(1)


class Api:
    def __init__(self) -> None:
        self.messages: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                records = [json.loads(line) for line in body.splitlines() if line]
                if self.headers.get("Authorization") != "Bearer rotated":
                    self._answer(401, {"error": "a valid bearer token is required"})
                elif any(r["message"] == "poison" for r in records):
                    self._answer(400, {"error": "body is not usable"})
                else:
                    api.messages += [r["message"] for r in records]
                    self._answer(202, {"accepted": len(records), "rejected": []})

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                reply = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_the_documented_node_logger_loses_nothing_silently(api: Api, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        message = "node is not installed (`make system-deps` installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    (tmp_path / "logger.js").write_text(_snippet())
    (tmp_path / "driver.js").write_text(DRIVER)
    token = tmp_path / "token"
    token.write_text("old-token\n")
    env = {**os.environ, "INGEST_URL": api.url, "INGEST_TOKEN_FILE": str(token), "SERVICE_NAME": "api-service-1"}
    done = subprocess.run([node, "driver.js"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.split("STATS ", 1)[1])
    assert stats == {"sent": 4, "rejected": 1, "dropped": 0, "authFailures": 3}
    assert sorted(api.messages) == ["a", "b", "one", "two"]  # each once
    said = done.stderr.splitlines()
    refused = [line for line in said if "refused the token" in line]
    assert len(refused) == 1 and "401: a valid bearer token is required" in refused[0]
    assert "old-token" not in done.stderr
    assert [line for line in said if "for good" in line] == [
        "ingest refused 1 record(s) for good (400: body is not usable)"]
