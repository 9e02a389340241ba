"""Keys with dots (`{"log.level": "x"}`) expanded into objects, as the engines would store them.

The scan of the raw bytes tells, without decoding, whether a record has dotted keys and how many:
most records have none or only the top-level ones the ecs-logging spec puts first, so the full
walk is rarely needed.
"""

from __future__ import annotations

import re
from typing import Any

Record = dict[str, Any]

# The last dot of a key and the rest of it: anchored on the (rare) dot, so counting all of them costs
# about one regex search. Without a backslash no string can hold a quote, so a quote
# followed by a colon always ends a key, and each dotted key matches exactly once.
_DOTTED_KEY_END = re.compile(rb'\.[^".\\]*+"\s*:')


def dotted_key_count(raw: bytes) -> int:
    """How many keys with a dot the raw record has, at any depth; -1 when it cannot tell (a backslash)."""
    if b"\\" in raw:
        return -1
    return len(_DOTTED_KEY_END.findall(raw))


def top_level_only(record: Record, dotted: int) -> bool:
    """True when all `dotted` keys of the raw record are top-level keys of the decoded one: the nested
    objects then have none, and expand_dotted need not walk them. The collector library's records are
    such (`log.level`, `ecs.version` on top, nested objects below)."""
    return dotted > 0 and sum(1 for key in record if "." in key) == dotted


def expand_dotted(record: Record, nested: bool = True) -> Record:
    """`{"log.level": "x"}` -> `{"log": {"level": "x"}}`, recursively.

    When a name is both a leaf and an object (`{"a": 1, "a.b": 2}`) the leaf moves to `a.value`,
    the same choice in either order, so such records index instead of failing on the mapping.
    Hot path: nested objects are expanded in place and a level is rebuilt only when one of its
    own keys has a dot, so an already-nested record costs one walk and no copies; `nested=False`
    (the caller knows the nested objects have no dotted key) skips the walk below the top level.
    """
    dotted = False
    for key, value in record.items():
        if nested and type(value) is dict:
            expanded = expand_dotted(value)
            if expanded is not value:
                record[key] = expanded  # same key: the dict's size does not change while iterating
        if "." in key:
            dotted = True
    if not dotted:
        return record
    out: Record = {}
    for key, value in record.items():
        parts = key.split(".") if "." in key and not key.startswith(".") and not key.endswith(".") else [key]
        target = out
        for part in parts[:-1]:
            existing = target.get(part)
            if not isinstance(existing, dict):
                target[part] = {} if existing is None else {"value": existing}
            target = target[part]
        _merge(target, parts[-1], value)
    return out


def expand_top_level(record: Record) -> Record:
    """expand_dotted for a record whose dotted keys are all on its top level (see top_level_only), in
    place: a pop and an insert per dotted key instead of rebuilding the record, with the same result.
    When a dotted path runs into an existing key (a leaf, or the same name twice) the full rebuild
    decides, with its rules for such conflicts."""
    dotted = [key for key in record if "." in key and not key.startswith(".") and not key.endswith(".")]
    paths: list[tuple[str, list[str]]] = []
    for key in dotted:
        parts = key.split(".")
        target: Any = record
        for part in parts[:-1]:
            if part not in target:  # absent: created below (a null is there: the rebuild decides)
                break
            target = target[part]
            if type(target) is not dict:
                return expand_dotted(record, nested=False)
        else:
            if parts[-1] in target:
                return expand_dotted(record, nested=False)
        paths.append((key, parts))
    if len(dotted) > 1 and any(a != b and b.startswith(a + ".") for a in dotted for b in dotted):
        return expand_dotted(record, nested=False)
    for key, parts in paths:
        value = record.pop(key)
        target = record
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return record


def _merge(target: Record, key: str, value: Any) -> None:
    existing = target.get(key)
    if existing is None:
        target[key] = value
    elif isinstance(existing, dict) and isinstance(value, dict):
        for k, v in value.items():
            _merge(existing, k, v)
    elif isinstance(existing, dict):
        _merge(existing, "value", value)
    elif isinstance(value, dict):
        target[key] = value
        _merge(value, "value", existing)
    else:
        target[key] = value
