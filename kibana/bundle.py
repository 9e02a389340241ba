"""The saved objects as kept in git (decoded, pretty JSON, one per file) and as Kibana imports them
(NDJSON, the JSON-string attributes encoded). Connectors and rules live beside them but go through
the alerting API, not the import."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

OBJECTS_DIR = Path(__file__).resolve().parent / "objects"

SAVED_TYPES = ("index-pattern", "search", "lens", "dashboard")
API_TYPES = ("connector", "rule")

# attribute paths that Kibana stores as JSON strings, per saved-object type
ENCODED: dict[str, tuple[str, ...]] = {
    "index-pattern": ("fieldFormatMap", "fieldAttrs", "runtimeFieldMap", "sourceFilters", "fields", "typeMeta"),
    "search": ("kibanaSavedObjectMeta.searchSourceJSON",),
    "lens": (),
    "dashboard": ("panelsJSON", "optionsJSON", "kibanaSavedObjectMeta.searchSourceJSON",
                  "controlGroupInput.panelsJSON", "controlGroupInput.ignoreParentSettingsJSON"),
}

Obj = dict[str, Any]


class BundleError(ValueError):
    pass


def _walk(attrs: Obj, path: str) -> tuple[Obj, str] | None:
    """The dict holding the last key of a dotted path, and that key; None when the path is absent."""
    *parents, last = path.split(".")
    node: Any = attrs
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    if not isinstance(node, dict) or last not in node:
        return None
    return node, last


def _json_object(text: str | bytes, where: str) -> Obj:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise BundleError(f"{where}: not a JSON object")
    return obj


def load_dir(kind: str, root: Path | None = None) -> list[Obj]:
    """Every object of one kind (a sub-folder of the objects directory), sorted by file name."""
    folder = (root or OBJECTS_DIR) / kind
    out: list[Obj] = []
    for path in sorted(folder.glob("*.json")):
        out.append(_json_object(path.read_text(), str(path)))
    return out


def load_sources(root: Path | None = None) -> list[Obj]:
    """All saved objects in their decoded (source) form."""
    return [obj for kind in SAVED_TYPES for obj in load_dir(kind, root)]


def encode(obj: Obj) -> Obj:
    """Source form -> import form: the JSON-string attributes serialised."""
    out = copy.deepcopy(obj)
    attrs = out.get("attributes")
    if isinstance(attrs, dict):
        for path in ENCODED.get(str(out.get("type")), ()):
            found = _walk(attrs, path)
            if found is not None and not isinstance(found[0][found[1]], str):
                holder, key = found
                holder[key] = json.dumps(holder[key], separators=(",", ":"), ensure_ascii=False)
    return out


def decode(obj: Obj) -> tuple[Obj, list[str]]:
    """Import form -> decoded form, and the attributes that did not parse (left as they were)."""
    out = copy.deepcopy(obj)
    errors: list[str] = []
    attrs = out.get("attributes")
    if isinstance(attrs, dict):
        for path in ENCODED.get(str(out.get("type")), ()):
            found = _walk(attrs, path)
            if found is None:
                continue
            holder, key = found
            if not isinstance(holder[key], str):
                errors.append(f"{path} must be a JSON string in the import form")
                continue
            try:
                holder[key] = json.loads(holder[key])
            except json.JSONDecodeError as exc:
                errors.append(f"{path} is not valid JSON: {exc}")
    return out, errors


def build(root: Path | None = None) -> list[Obj]:
    """The import form of every saved object."""
    return [encode(obj) for obj in load_sources(root)]


def ndjson(objects: list[Obj]) -> bytes:
    return b"".join(json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for o in objects)


def parse_ndjson(data: bytes) -> list[Obj]:
    out: list[Obj] = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        out.append(_json_object(line, f"line {n}"))
    return out


def connectors(root: Path | None = None) -> list[Obj]:
    return load_dir("connector", root)


def rules(root: Path | None = None) -> list[Obj]:
    return load_dir("rule", root)
