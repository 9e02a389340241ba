"""HTTP: batches POSTed as NDJSON to the ingest API (`/v1/logs`, `/v1/metrics`), bearer token.

202 -> the API's `accepted` count is delivered, its `rejected` items are dropped (counted);
401/403 -> the token is re-read (rotated secrets) and retried with backoff; 413 -> the batch is
split, a single record too large is dropped; 429/503 honour Retry-After; anything else retries.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

from collector.outputs.base import MetricBytes, Output


class PermanentReject(Exception):
    pass


class HttpOutput(Output):
    name = "http"

    def __init__(self, base_url: str, token: Any, timeout: float = 5.0, **kwargs: Any):
        super().__init__(**kwargs)
        url = urllib.parse.urlsplit(base_url.rstrip("/"))
        self.https = url.scheme == "https"
        self.netloc = url.netloc
        self.base_path = url.path
        self.token = token  # a callable returning the current token (or None)
        self.timeout = timeout
        self.rejected = 0
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._conn = cls(self.netloc, timeout=self.timeout)
        return self._conn

    def _post(self, path: str, records: list[bytes]) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/x-ndjson"}
        token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn = self._connection()
        try:
            conn.request("POST", self.base_path + path, body=b"\n".join(records) + b"\n", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except Exception:
            conn.close()
            self._conn = None
            raise
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body

    def _send(self, path: str, records: list[bytes]) -> float:
        """Deliver `records` or raise; returns 0 or a server-requested delay for the *next* attempt."""
        status, headers, body = self._post(path, records)
        if status in (200, 202):
            try:
                doc = json.loads(body or b"{}")
                accepted = int(doc.get("accepted", len(records)))
                rejected = len(doc.get("rejected") or [])
            except (ValueError, TypeError, AttributeError):
                accepted, rejected = len(records), 0
            self.delivered += accepted
            self.rejected += rejected
            lost = len(records) - accepted
            self.dropped += lost
            self._reported_drops += lost  # the API reported them (with reasons); no drop notice
            return 0.0
        if status == 413:
            if len(records) == 1:
                self.dropped += 1
                self._reported_drops += 1  # permanent: a notice could not help
                return 0.0
            half = len(records) // 2
            self._send(path, records[:half])
            self._send(path, records[half:])
            return 0.0
        retry_after = headers.get("retry-after")
        exc = ConnectionError(f"ingest API answered {status}")
        exc.retry_after = float(retry_after) if retry_after and retry_after.isdigit() else 0.0  # type: ignore[attr-defined]
        raise exc

    def _deliver(self, batch: list[bytes]) -> None:
        logs = [r for r in batch if type(r) is not MetricBytes]
        metrics = [bytes(r) for r in batch if type(r) is MetricBytes]
        if logs:
            self._send("/v1/logs", logs)
        if metrics:
            self._send("/v1/metrics", metrics)

    def _stopped(self) -> None:
        if self._conn is not None:
            self._conn.close()
