"""Bearer tokens per service: configured as SHA-256 hashes, or read from files (Docker secrets).

Only digests are kept in memory for comparison; a token never reaches a log, an error message
or a metric label. A token maps to exactly one service, which is all it may write for.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

from collector.ingest.config import IngestSettings

RELOAD_MIN_S = 2.0  # an unknown token re-reads the tokens directory at most this often (rotation)


def token_hash(token: str) -> str:
    """The value to configure in INGEST_TOKENS for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(self, settings: IngestSettings):
        self._static = {digest: service for service, digest in settings.tokens.items()}
        self._dir = settings.tokens_dir
        self._from_dir: dict[str, str] = {}
        self._loaded_at = 0.0
        self._load_dir()

    def _load_dir(self) -> None:
        self._loaded_at = time.monotonic()
        if self._dir is None:
            return
        found: dict[str, str] = {}
        try:
            entries = sorted(self._dir.iterdir())
        except OSError:
            entries = []
        for path in entries:
            if path.name.startswith(".") or not _is_file(path):
                continue
            try:
                token = path.read_text().strip()
            except (OSError, UnicodeDecodeError):
                continue
            if token:
                found[token_hash(token)] = path.name
        self._from_dir = found

    def services(self) -> list[str]:
        return sorted({*self._static.values(), *self._from_dir.values()})

    def service_for(self, authorization: str | None) -> str | None:
        """The service a `Authorization: Bearer <token>` header belongs to, or None (401)."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        digest = token_hash(token)
        service = self._lookup(digest)
        if service is None and self._dir is not None and time.monotonic() - self._loaded_at >= RELOAD_MIN_S:
            self._load_dir()
            service = self._lookup(digest)
        return service

    def _lookup(self, digest: str) -> str | None:
        # compare digests in constant time; the set of known digests is small
        found = None
        for table in (self._static, self._from_dir):
            for known, service in table.items():
                if hmac.compare_digest(known, digest):
                    found = service
        return found


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
