"""HTTP: batches POSTed as NDJSON to the ingest API (`/v1/logs`, `/v1/metrics`), bearer token.

202 -> the API's `accepted` count is delivered, its `rejected` items are dropped (counted);
400 listing every record as rejected -> all dropped (counted); other 400, 413 and 500 -> the batch
is split until the record the API refuses is alone, which is dropped (counted, `rejected`), the
rest delivered; 401/403 -> counted, said once on stderr, the token re-read (rotated secrets) and
retried with backoff; 429/503 honour Retry-After; anything else retries. Never the same batch
forever on an answer that will not change.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

from collector.outputs.base import MetricBytes, Output


class Retry(ConnectionError):
    """Delivery must be tried again later; `remaining` are the records not settled yet."""

    def __init__(self, reason: str, parts: list[list[bytes]], retry_after: float = 0.0):
        super().__init__(reason)
        self.remaining = [record for part in parts for record in part]
        self.retry_after = retry_after


def _reason(status: int, body: bytes) -> str:
    """The API's own words (`error`), else the start of the body."""
    try:
        doc = json.loads(body)
        text = doc.get("error") if isinstance(doc, dict) else None
    except ValueError:
        text = None
    if not isinstance(text, str):
        text = body[:200].decode(errors="replace").strip()
    return f"{status}: {text}" if text else str(status)


def _all_rejected(body: bytes) -> bool:
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("accepted") == 0 and bool(doc.get("rejected"))


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

    def _send(self, path: str, records: list[bytes]) -> None:
        """Deliver `records`, settling each one (accepted, or refused for good and counted); raise
        `Retry` carrying what is still unsettled when the answer says "later" (or says nothing).

        400/413 are about the body: split in halves until the refused record is alone, then drop it.
        500 may be one record breaking the server or the server being down: split the same way, but
        a record alone is dropped only once another part of the batch was accepted (the server
        works); while nothing is, parts are not split further and the batch is retried as an outage.
        """
        todo = [records]
        deferred: list[list[bytes]] = []
        works = False
        while todo or (works and deferred):
            if not todo:
                todo, deferred = deferred, []
            part = todo.pop()
            try:
                status, headers, body = self._post(path, part)
            except Exception as exc:
                raise Retry(f"{type(exc).__name__}: {exc}", [part, *todo, *deferred]) from exc
            if status in (200, 202):
                self._accepted(part, body)
                works = True
                continue
            reason = _reason(status, body)
            if status == 400 and _all_rejected(body):  # the API listed every record with its reason
                self.refused(len(part), reason)
                continue
            if status in (400, 413, 500):
                if len(part) > 1 and (status != 500 or works or not deferred):
                    half = len(part) // 2
                    todo += [part[half:], part[:half]]
                elif status != 500 or works:
                    self.refused(len(part), reason)
                else:
                    deferred.append(part)
                continue
            if status in (401, 403):
                self.auth_failed(f"ingest API refused the token ({reason})")
            retry_after = headers.get("retry-after")
            delay = float(retry_after) if retry_after and retry_after.isdigit() else 0.0
            raise Retry(reason, [part, *todo, *deferred], delay)
        if deferred:
            raise Retry(f"ingest API answered 500 for every part of the batch ({reason})", deferred)

    def _accepted(self, part: list[bytes], body: bytes) -> None:
        """202: the API's `accepted` count is delivered, its `rejected` items are dropped (with reasons)."""
        try:
            doc = json.loads(body or b"{}")
            accepted = int(doc.get("accepted", len(part)))
        except (ValueError, TypeError, AttributeError):
            accepted = len(part)
        self.delivered += accepted
        if accepted < len(part):
            self.refused(len(part) - accepted, "ingest API rejected records (202 with `rejected`)")

    def _deliver(self, batch: list[bytes]) -> None:
        logs = [r for r in batch if type(r) is not MetricBytes]
        metrics: list[bytes] = [r for r in batch if type(r) is MetricBytes]  # kept as MetricBytes for a retry
        if logs:
            try:
                self._send("/v1/logs", logs)
            except Retry as exc:
                exc.remaining += metrics  # not tried yet
                raise
        if metrics:
            self._send("/v1/metrics", metrics)

    def _stopped(self) -> None:
        if self._conn is not None:
            self._conn.close()
