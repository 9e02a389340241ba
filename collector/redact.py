"""Redaction of secrets, one set of rules for the library and the ingest API (docs/redaction.md).

Whatever a caller passes is stringified first (`safe_text`, which never raises) and then goes
through the same text rules as a string: an exception, a URL object or any other object cannot
carry a secret past them. Two kinds of rule:

- secret keys: a field, label or nested key whose name contains one of `DEFAULT_KEYS` (plus the
  configured ones), case-insensitive, has its whole value replaced;
- secret text: the `RULES` below, applied in order to every string value and message.

Cheap first: key decisions and results for short strings are cached (bounded); each text rule
runs only when a substring it needs is present.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

REDACTED = "[REDACTED]"

# a key containing one of these (any case) is secret: `db_password`, `X-Auth-Token`, `session_cookie`
DEFAULT_KEYS = (
    "password", "passwd", "pwd", "passphrase", "secret", "token", "authorization", "api_key", "apikey",
    "api-key", "access_key", "private_key", "credential", "cookie", "session",
)
# HTTP authentication schemes, matched in any case: the credential after these is always secret...
AUTH_SCHEMES = ("Bearer", "Basic", "Digest", "Negotiate", "NTLM")
# ...and after these (also ordinary words) when it is token-shaped
TOKEN_SCHEMES = ("Token", "ApiKey", "Api-Key", "SSWS", "HOBA", "Mutual", "AWS4-HMAC-SHA256")

_CACHE_MAX = 4096  # distinct short strings remembered (messages are mostly constant templates)
_CACHE_LEN = 256
_AUTH = "|".join(re.escape(s) for s in AUTH_SCHEMES)
_TOKEN = "|".join(re.escape(s) for s in sorted(TOKEN_SCHEMES, key=len, reverse=True))
_SCHEMES = f"{_AUTH}|{_TOKEN}"
_CRED = r"[A-Za-z0-9._~+/=\-]"
# (name, pattern, replacement, substrings one of which a match needs): the documented table
RULES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # scheme://user:password@host: the password runs to the authority's last `@` (`redis://:p@ss@h`)
    ("url credentials", r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^/?#\s@:]*):[^/?#\s]*@", rf"\1:{REDACTED}@", ("://",)),
    # a Cookie / Set-Cookie header: every cookie in it, to the end of the line
    ("cookie header", r"(?i)(\b(?:set-)?cookie[\"']?\s*:\s*)[^\r\n\"']+", rf"\1{REDACTED}", (":",)),
    # <secret key> = or : value (bare, quoted, or after an auth scheme): `password=x`, `"api_key": "x"`,
    # `Authorization: ApiKey x`, `PGPASSWORD=x`, `&token=x`; `{keys}` are the secret keys (configured ones too)
    ("secret assignment", r"(?i)((?:{keys})[\w.\-]*[\"']?\s{0,3}[:=]\s{0,3}(?:(?P<q>[\"'])|(?:" + _SCHEMES
     + r")\s+)?+)(?(q)[^\"'\r\n]*|(?!\[REDACTED\])[^\s\"'&,;)}\]]+)", rf"\1{REDACTED}", (":", "=")),
    # <auth scheme> <credential> anywhere: `Bearer abc.def`, `BeArEr x`, `basic dXNlcjpwYXNz`
    ("auth scheme", rf"(?i)\b({_AUTH})(\s+){_CRED}+", rf"\1\2{REDACTED}", (" ", "\t")),
    # <token scheme> <credential> anywhere, the credential token-shaped (a digit or one of ._~+/=- in it,
    # or 16+ characters): `Token 9f86d081`, `ApiKey k-123`; `Token expired` is left alone
    ("token scheme", rf"(?i)\b({_TOKEN})(\s+)(?=[A-Za-z]*[0-9._~+/=\-]|{_CRED}{{16}}){_CRED}+",
     rf"\1\2{REDACTED}", (" ", "\t")),
    # a JSON Web Token anywhere
    ("jwt", r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*", REDACTED, ("eyJ",)),
)
# values orjson renders natively and that cannot hide a secret; anything else is stringified
_PLAIN = (int, float, bool, datetime, date, time, UUID)


def safe_text(value: Any) -> str:
    """str(value), else repr(value), else a placeholder naming the type: never raises."""
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__qualname__}>"


class Redactor:
    """Pure-ish: a cache of key decisions plus compiled patterns; safe to share across threads."""

    def __init__(self, enabled: bool = True, extra_keys: Iterable[str] = (), extra_patterns: Iterable[str] = ()):
        self.enabled = enabled
        self.keys = tuple(k.lower() for k in (*DEFAULT_KEYS, *extra_keys))
        patterns = list(extra_patterns)
        self.custom = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        names = "|".join(re.escape(k) for k in sorted(set(self.keys), key=len, reverse=True))
        self.rules: tuple[tuple[Callable[..., str], str, tuple[str, ...]], ...] = tuple(
            (re.compile(pattern.replace("{keys}", names)).sub, replacement, needs)
            for _name, pattern, replacement, needs in RULES)
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
        for sub, replacement, needs in self.rules:
            for needed in needs:
                if needed in value:
                    value = sub(replacement, value)
                    break
        return value

    def deep(self, value: Any) -> Any:
        """Any caller value as it may be written: containers copied with their contents redacted,
        numbers and times as they are, anything else stringified and then redacted as text.
        (The common shapes, str and flat dicts of str/int, take inlined cache lookups: the ingest
        API calls this for every ECS object of every record.)"""
        if not self.enabled:
            return value
        vtype = type(value)
        if vtype is str:
            done = self.text_cache.get(value)
            return done if done is not None else self.text(value)
        if vtype is dict:
            return self.copy_dict(value)
        if isinstance(value, list | tuple | set | frozenset):
            return [self.deep(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return self.deep(dict(value))
        if value is None or isinstance(value, _PLAIN):
            return value
        return self.text(safe_text(value))

    def copy_dict(self, value: dict[Any, Any]) -> dict[str, Any]:
        """A copy of a dict with its contents redacted (`deep` for a value known to be a dict; a
        plain copy when redaction is off)."""
        if not self.enabled:
            return dict(value)
        keys = self._key_cache
        texts = self.text_cache
        out: dict[str, Any] = {}
        for k, v in value.items():
            secret = keys.get(k)
            if secret is None:  # not seen yet, or not a string (only str keys are remembered)
                if type(k) is not str:
                    k = safe_text(k)
                secret = self.key_is_secret(k)
            if secret:
                out[k] = REDACTED
                continue
            t = type(v)
            if t is str:
                done = texts.get(v)
                out[k] = done if done is not None else self.text(v)
            elif t is int or t is float or t is bool or v is None:
                out[k] = v
            elif t is dict:
                out[k] = self.copy_dict(v)
            else:
                out[k] = self.deep(v)
        return out
