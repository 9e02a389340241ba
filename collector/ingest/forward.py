"""`collector forward-nginx`: tail an nginx JSON access log and POST it to the ingest API.

A line is sent as it is (the log_format in docs/ingest.md writes ECS keys), plus: `log.level`
from the status code (5xx error, 4xx warning, else info) when missing, `event.duration` (ns)
from nginx's `request_time` (seconds), and a `message` ("GET /api/users 200") when missing. A
line that is not JSON is sent as the message of a record, so nothing is silently dropped.

Delivery: batches of up to 500 lines or 1 s, gzip. 202: done (rejected lines reported on
stderr). 503/429/5xx or no connection: the same batch again after Retry-After or a backoff, so a
broker outage only delays. 413: the batch is split. 401/403: a configuration error, exit 1.
Rotation (new inode or truncation) is followed, from the start of the new file.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, BinaryIO

BATCH_LINES = 500
BATCH_WAIT_S = 1.0


def to_record(line: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except ValueError:
        return {"message": line[:32_768], "log.level": "warning", "labels": {"unparsed": True}}
    if not isinstance(rec, dict):
        return {"message": line[:32_768], "log.level": "warning", "labels": {"unparsed": True}}
    status = rec.get("http.response.status_code")
    if "log.level" not in rec:
        code = status if isinstance(status, int) else 0
        rec["log.level"] = "error" if code >= 500 else "warning" if code >= 400 else "info"
    took = rec.pop("request_time", None)
    if took not in (None, "", "-") and "event.duration" not in rec:
        try:
            rec["event.duration"] = int(float(took) * 1e9)
        except (TypeError, ValueError):
            pass
    if "message" not in rec:
        rec["message"] = f"{rec.get('http.request.method', '-')} {rec.get('url.original', rec.get('url.path', '-'))} " \
                         f"{status if status is not None else '-'}"
    return rec


class Forwarder:
    def __init__(self, path: Path, url: str, token: str, from_start: bool = False, timeout: float = 10.0):
        self.path = path
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        self.https = parts.scheme == "https"
        self.netloc = parts.netloc
        self.endpoint = parts.path + "/v1/logs"
        self.token = token
        self.from_start = from_start
        self.timeout = timeout
        self.sent = 0
        self.rejected = 0
        self.stop = threading.Event()

    def _post(self, lines: list[bytes]) -> tuple[int, dict[str, str], bytes]:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        conn = cls(self.netloc, timeout=self.timeout)
        try:
            conn.request("POST", self.endpoint, body=gzip.compress(b"\n".join(lines) + b"\n"), headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson",
                "Content-Encoding": "gzip"})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def deliver(self, lines: list[bytes]) -> None:
        """Returns once the API took the batch (202), retrying for as long as it takes."""
        backoff = 0.5
        while True:
            try:
                status, headers, body = self._post(lines)
            except OSError as exc:
                status, headers, body = 0, {}, str(exc).encode()
            if status == 202:
                doc = json.loads(body)
                self.sent += doc["accepted"]
                self.rejected += len(doc["rejected"])
                for item in doc["rejected"][:10]:
                    print(f"forward-nginx: line rejected: {item['reason']}", file=sys.stderr)
                return
            if status == 413 and len(lines) > 1:
                half = len(lines) // 2
                self.deliver(lines[:half])
                self.deliver(lines[half:])
                return
            if status in (400, 413):
                print(f"forward-nginx: batch refused ({status}): {body[:200]!r}", file=sys.stderr)
                self.rejected += len(lines)
                return
            if status in (401, 403):
                raise SystemExit(f"forward-nginx: the ingest API refused the token ({status}); check --token-file")
            retry_after = headers.get("retry-after", "")
            wait = float(retry_after) if retry_after.isdigit() else backoff
            backoff = min(backoff * 2, 30.0)
            if self.stop.wait(wait):
                return

    def run(self) -> None:
        pending: list[bytes] = []
        first_at = 0.0
        handle: BinaryIO | None = None
        inode = -1
        while not self.stop.is_set():
            if handle is None:
                try:
                    handle = open(self.path, "rb")  # kept open while tailing
                except OSError:
                    self.stop.wait(1.0)
                    continue
                inode = os.fstat(handle.fileno()).st_ino
                if not self.from_start:
                    handle.seek(0, os.SEEK_END)
                self.from_start = True  # a rotated file is read from its start
            line = handle.readline()
            if line.endswith(b"\n"):
                if line.strip():
                    if not pending:
                        first_at = time.monotonic()
                    text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
                    pending.append(json.dumps(to_record(text)).encode())
            else:
                if line:  # a partial line: read it again once nginx finished writing it
                    handle.seek(-len(line), os.SEEK_CUR)
                else:
                    try:
                        st = os.stat(self.path)
                        rotated = st.st_ino != inode or st.st_size < handle.tell()
                    except OSError:
                        rotated = False
                    if rotated:
                        handle.close()
                        handle = None
                        continue
                if not pending:
                    self.stop.wait(0.2)
                else:
                    self.stop.wait(0.05)
            if pending and (len(pending) >= BATCH_LINES or time.monotonic() - first_at >= BATCH_WAIT_S):
                self.deliver(pending)
                pending = []
        if pending:
            self.deliver(pending)
        if handle is not None:
            handle.close()
