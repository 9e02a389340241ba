"""Parsing one (joined) record's text into ECS fields, per configured format or detected per line.

Every parser returns a dict with the spec's top keys (`@timestamp` when the line has a time,
`log.level`, `message`) and nested ECS objects, or None when the text is not of its format; the
caller then ships the text as a plain message with `event.original`: nothing is dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from collector.tail.parsers import jsonlogs, nginx, plain, postgres, redis

Parsed = dict[str, Any]

_TEXT = {
    "nginx": nginx.parse_access,
    "nginx_error": nginx.parse_error,
    "postgres": postgres.parse,
    "redis": redis.parse,
}


def _json(text: str) -> dict[str, Any] | None:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict else None


def _candidates(text: str) -> tuple[Any, ...]:
    """The text formats a line can be, from its first characters (one regex tried, not four)."""
    sep = text[4:5]
    # an nginx client address may be IPv6 (`::1 - -`, `2001:db8::1 - -`): its look-alikes come first
    access = (nginx.parse_access,) if " - " in text[:48] else ()
    if sep == "-":
        return (postgres.parse, *access)  # `2026-12-02 10:00:00.123 UTC [pid]`, else plain with an ISO time
    if sep == "/":
        return (nginx.parse_error,)
    colon = text.find(":", 0, 12)
    if colon > 0 and text[:colon].isdigit():
        return (redis.parse, *access)
    return access


def auto_access(text: str) -> bool:
    """Whether format auto tries the nginx access pattern alone on `text`: `_candidates(text)` is
    (nginx.parse_access,) (the records' fast path; tested against it)."""
    if " - " not in text[:48] or text[4:5] in ("-", "/"):
        return False
    colon = text.find(":", 0, 12)
    return not (colon > 0 and text[:colon].isdigit())


def auto_access_ascii(line: bytes) -> bool:
    """`auto_access` for a line of ASCII bytes (characters and bytes are the same), without decoding it
    (the records' fast path; tested against it)."""
    if b" - " not in line[:48] or line[4:5] in (b"-", b"/"):
        return False
    colon = line.find(b":", 0, 12)
    return not (colon > 0 and line[:colon].isdigit())


def parse(text: str, fmt: str) -> Parsed | None:
    """ECS fields of `text` in format `fmt` ("auto": detected); None when it is not of that format."""
    if fmt == "auto":
        if text[:1] == "{":
            obj = _json(text)
            return jsonlogs.from_json(obj, "auto") if obj is not None else None
        for parser in _candidates(text):
            found = parser(text)
            if found is not None:
                return found
        return plain.parse(text)
    if fmt == "plain":
        return plain.parse(text)
    text_parser = _TEXT.get(fmt)
    if text_parser is not None:
        return text_parser(text)
    obj = _json(text) if text[:1] == "{" else None
    return jsonlogs.from_json(obj, fmt) if obj is not None else None


def unparsed(text: str) -> Parsed:
    """The record of a line its format did not fit: the text, kept whole, level sniffed."""
    out = plain.parse(text)
    out["event"] = {"original": text}
    out["labels"] = {"unparsed": True}
    return out
