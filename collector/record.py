"""Shaping one log call into an ECS record (a plain dict), the library's hot path.

`@timestamp`, `log.level`, `message`, `ecs.version` come first (the ecs-logging spec order, as
top-level dotted keys like every ecs-logging library); the rest are nested ECS objects. The
static parts (service, host, process, event.dataset) are built once and shared by reference:
they must never be mutated. Caller fields go under `labels` (str/int/float/bool) or `extra`
(anything else) so they can never clobber an ECS field; `ecs={...}` is the explicit way to add
real ECS fields (e.g. `http`, `url`, `event.duration`), which may not replace the core ones.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from collector.context import get_ecs as _get_ecs
from collector.context import get_fields as _get_fields
from collector.contract.ecs import ECS_VERSION, SPEC_TOP
from collector.contract.streams import sanitize_dataset
from collector.contract.timefmt import now_iso
from collector.errors import error_fields, exc_info_of
from collector.redact import REDACTED, Redactor, safe_text

RESERVED = frozenset({"exc_info", "ecs", "stack_info", "event"})
PROTECTED = frozenset({*SPEC_TOP, "ecs", "service", "host", "process"})
_SCALARS = frozenset({str, int, float, bool})


class Static:
    """The per-process parts of every record, computed once at configure()."""

    def __init__(self, service: str, version: str, environment: str, node_name: str, redactor: Redactor):
        host = socket.gethostname()
        self.service_name = service
        self.service = {"name": service, "version": version, "environment": environment,
                        "node": {"name": node_name or host}}
        self.host = {"name": host}
        self.process = {"pid": os.getpid()}
        self.dataset = sanitize_dataset(service)
        self.event = {"dataset": self.dataset}
        self.redactor = redactor
        self._log_objs: dict[str, dict[str, str]] = {}
        self.key_cache: dict[str, str] = {}

    def log_obj(self, name: str) -> dict[str, str]:
        obj = self._log_objs.get(name)
        if obj is None:
            obj = {"logger": name}
            if len(self._log_objs) < 10_000:
                self._log_objs[name] = obj
        return obj

    def key_info(self, key: str) -> str:
        """The label name for a caller key, or `_SECRET` ("") when its value must be redacted.

        ECS labels must not contain dots (they would become objects in the mapping)."""
        info = "" if self.redactor.key_is_secret(key) else key.replace(".", "_")
        if len(self.key_cache) < 10_000:  # bounded: keys can be attacker-controlled
            self.key_cache[key] = info
        return info


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A new dict: `extra` merged into `base` recursively; `base` (maybe static) is left intact."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        out[key] = deep_merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


_SECRET = ""  # key_info() marker: the key is sensitive


def format_message(template: Any, args: Any) -> str:
    """`template % args` as logging does it; never raises: when the template or an argument cannot
    be formatted (a `__str__` that raises, a wrong count), the pieces are stringified one by one."""
    try:
        return safe_text(template) % args
    except Exception:
        pieces = args if isinstance(args, tuple) else (args,)
        return " ".join([safe_text(template), *(safe_text(p) for p in pieces)])


def build(static: Static, logger_name: str, level: str, message: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """The ECS record for one call. `fields` is owned by the caller of build (we may consume it)."""
    red = static.redactor
    if type(message) is not str:  # any object: stringified (never raising), then redacted as text
        message = safe_text(message)
    if red.enabled:
        done = red.text_cache.get(message)
        message = done if done is not None else red.text(message)
    rec: dict[str, Any] = {
        "@timestamp": now_iso(),
        "log.level": level,
        "message": message,
        "ecs.version": ECS_VERSION,
        "log": static.log_obj(logger_name),
        "service": static.service,
        "host": static.host,
        "process": static.process,
        "event": static.event,
    }
    ctx = _get_ecs()
    if ctx is not None:
        rec.update(ctx)
    bound = _get_fields()
    if bound is not None:
        fields = {**bound, **fields}
    if fields:
        labels: dict[str, Any] | None = None
        extra: dict[str, Any] | None = None
        special = False
        keys = static.key_cache
        texts = red.text_cache
        for key, value in fields.items():
            label = keys.get(key)
            if label is None:
                if key in RESERVED:
                    special = True
                    continue
                label = static.key_info(key)
            if not label:  # _SECRET
                value = REDACTED
                label = key.replace(".", "_")
            vtype = type(value)
            if vtype is str:
                done = texts.get(value)
                value = done if done is not None else red.text(value)
            elif vtype not in _SCALARS:
                if extra is None:
                    extra = {}
                extra[key] = red.deep(value)
                continue
            if labels is None:
                labels = {}
            labels[label] = value
        if labels is not None:
            rec["labels"] = labels
        if extra is not None:
            rec["extra"] = extra
        if special:
            _special(rec, fields, red)
    return rec


def _special(rec: dict[str, Any], fields: dict[str, Any], red: Redactor) -> None:
    ecs = fields.get("ecs")
    if isinstance(ecs, dict):
        for key, value in ecs.items():
            if key in PROTECTED:
                continue
            old = rec.get(key)
            value = red.deep(value)  # explicit ECS fields follow the same rules (a DSN in url.full)
            rec[key] = deep_merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    info = exc_info_of(fields.get("exc_info"))
    if info is not None:
        err = error_fields(info)
        if red.enabled:
            err["message"] = red.text(err["message"])
            err["stack_trace"] = red.text(err["stack_trace"])
        rec["error"] = err
    event = fields.get("event")
    if event is not None:  # a caller's `event=` would be structlog's message key; keep it as a label
        if type(event) not in _SCALARS:
            event = safe_text(event)
        rec.setdefault("labels", {})["event"] = red.text(event) if type(event) is str else event
