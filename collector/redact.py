"""Redaction of secrets: sensitive keys, JWT-looking values, credentials in URLs, auth headers.

Cheap first: key decisions are cached per key; value regexes run only when a fast substring
pre-check says the string could contain a secret (unless custom patterns are configured).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"

DEFAULT_KEYS = (
    "password", "passwd", "pwd", "secret", "token", "authorization", "api_key", "apikey", "api-key",
    "cookie", "credential", "private_key", "session", "x-api-key",
)

# user:pass@ inside any scheme://  -> keep user, hide password
_URL_CREDS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*):[^/\s@]+@")
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_AUTH = re.compile(r"\b(Bearer|Basic|Digest)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
_CACHE_MAX = 4096  # distinct short strings remembered (messages are mostly constant templates)
_CACHE_LEN = 256


class Redactor:
    """Pure-ish: a cache of key decisions plus compiled patterns; safe to share across threads."""

    def __init__(self, enabled: bool = True, extra_keys: Iterable[str] = (), extra_patterns: Iterable[str] = ()):
        self.enabled = enabled
        self.keys = tuple(k.lower() for k in (*DEFAULT_KEYS, *extra_keys))
        patterns = list(extra_patterns)
        self.custom = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self._key_cache: dict[str, bool] = {}
        self.text_cache: dict[str, str] = {}

    def key_is_secret(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            low = key.lower()
            hit = self.enabled and any(k in low for k in self.keys)
            if len(self._key_cache) < 10_000:  # bounded: keys can be attacker-controlled
                self._key_cache[key] = hit
        return hit

    def text(self, value: str) -> str:
        if not self.enabled:
            return value
        done = self.text_cache.get(value)
        if done is not None:
            return done
        out = self._text(value)
        if len(value) <= _CACHE_LEN and len(self.text_cache) < _CACHE_MAX:
            self.text_cache[value] = out
        return out

    def _text(self, value: str) -> str:
        if self.custom is not None:
            value = self.custom.sub(REDACTED, value)
        # cheap pre-check: every secret shape below needs one of these substrings
        if ("://" not in value and "eyJ" not in value and "earer " not in value and "asic " not in value
                and "EARER " not in value and "ASIC " not in value and "igest " not in value):
            return value
        value = _URL_CREDS.sub(rf"\1:{REDACTED}@", value)
        value = _JWT.sub(REDACTED, value)
        return _AUTH.sub(rf"\1 {REDACTED}", value)

    def deep(self, value: Any) -> Any:
        """Copy-on-write redaction of nested containers; the caller's objects are never mutated."""
        if not self.enabled:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: (REDACTED if isinstance(k, str) and self.key_is_secret(k) else self.deep(v))
                    for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.deep(v) for v in value]
        return value
