"""What the shipper needs from a search engine, shared by both adapters.

The adapters differ only in the client they wrap and in Elasticsearch-only setup (ILM); bulk
bodies are built by the sink as NDJSON bytes and sent as they are.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_lib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from shipper.log import get_logger
from shipper.statuses import NO_ANSWER
from shipper.templates import (
    LEGACY_COMPONENTS,
    LEGACY_TEMPLATES,
    MANAGED_BY,
    claims_dataset,
    component_templates,
    index_templates,
    is_ours,
    split_stream,
    stream_template,
    stream_template_name,
    writable_index_template,
)

log = get_logger("shipper.engines")

# Only what the sink reads from a bulk response: the engine skips serialising ids, versions and
# shard counts of every item (a 5,000-item answer shrinks from ~1 MB to a few KB).
BULK_FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by.reason"


class EngineUnavailable(Exception):
    """No usable answer: connection refused, timeout, a 2xx that is not JSON; from calls other than
    bulk also 408/429/5xx. `status`: the HTTP status, or a pseudo-status of shipper.statuses."""

    def __init__(self, reason: str, status: int = NO_ANSWER) -> None:
        super().__init__(reason)
        self.status = status


class EngineRejected(Exception):
    """An HTTP error status for a whole request. From `bulk`: any error status (the sink reads
    shipper.statuses.REQUEST_ROWS); from other calls: a 4xx other than 408/429."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status


def transient(status: int) -> bool:
    """For calls other than bulk (setup, searches): worth waiting for, or a caller's mistake."""
    return status in (NO_ANSWER, 408, 429) or status >= 500


async def gzipped(body: bytes) -> bytes:
    # zlib releases the GIL: compressing in a thread runs beside the next batch's transform
    return await asyncio.to_thread(gzip_lib.compress, body, 1)


class SearchEngine(ABC):
    name: str
    # what setup installs; build_engine sets them from the settings
    replicas: int | None = None
    retention_days: int = 30
    @property
    def prepared(self) -> set[str]:
        """Index templates in place, by name: setup's and those put on demand (per engine object; made
        on first use, so adapters and test doubles need no constructor of ours)."""
        known: set[str] = self.__dict__.setdefault("_prepared", set())
        return known

    @abstractmethod
    async def bulk(self, body: bytes, gzip: bool = False) -> dict[str, Any]:
        """POST /_bulk (NDJSON bytes, gzip-compressed on the way when asked); the parsed, filtered response.

        Raises EngineUnavailable without an answer or with one that is not JSON (status NOT_BULK),
        EngineRejected with the status of any HTTP error.
        """

    @abstractmethod
    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Any other API call; EngineUnavailable on transport errors and 5xx, EngineRejected on 4xx."""

    @abstractmethod
    async def close(self) -> None: ...

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/")
        return result

    async def ping(self) -> bool:
        try:
            await self.info()
            return True
        except Exception:
            return False

    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", f"/{index}/_search?ignore_unavailable=true", body)
        return result

    async def put_templates(self, component: dict[str, dict[str, Any]], index: dict[str, dict[str, Any]]) -> None:
        """Idempotent: PUT replaces each template with the same content on every start."""
        for name, body in component.items():
            await self.request("PUT", f"/_component_template/{name}", body)
        for name, body in index.items():
            await self.request("PUT", f"/_index_template/{name}", self.adapt_index_template(body))

    async def version(self) -> tuple[int, ...]:
        number = str(((await self.info()).get("version") or {}).get("number") or "0")
        return tuple(int(p) for p in number.split("-")[0].split(".")[:2] if p.isdigit())

    async def install_templates(self) -> None:
        """The ECS component templates and the own streams' index templates (setup, at every start)."""
        await self.put_templates(component_templates(self.name, await self.version(), self.replicas),
                                 index_templates(self.name))
        self.prepared.update(index_templates(self.name))

    async def prepare_streams(self, streams: Iterable[str]) -> list[str]:
        """Put the index template of each stream family not seen yet, before the first write creates the
        stream (the sink calls it per bulk request; known families cost a set lookup). EngineUnavailable
        when the engine does not answer: the write is retried later.

        A family another producer already has (`foreign_owner`) gets no template of ours: its records go
        into the streams under that producer's template (a mapping conflict then dead-letters the record
        with the engine's reason), and no lifecycle of ours reaches them. Logged once per family; the
        families found so are returned, for the caller's counter. A template the engine refuses anyway is
        logged, and the stream gets whatever the cluster's templates give it."""
        left: list[str] = []
        for stream in streams:
            parts = split_stream(stream)
            if parts is None:
                continue
            name = stream_template_name(parts[0], parts[1])
            if name in self.prepared:
                continue
            owner = await self.foreign_owner(parts[0], parts[1])
            if owner is not None:
                log.warning("stream family belongs to another producer: written under its template, no "
                            "template or lifecycle of ours put", family=f"{parts[0]}-{parts[1]}", owner=owner)
                left.append(f"{parts[0]}-{parts[1]}")
                self.prepared.add(name)
                continue
            try:
                await self.request("PUT", f"/_index_template/{name}",
                                   self.adapt_index_template(stream_template(parts[0], parts[1], self.name)))
            except EngineRejected as exc:
                log.error("index template refused; the stream is mapped by the cluster's templates",
                          template=name, error=str(exc))
            self.prepared.add(name)
        return left

    async def foreign_owner(self, type_: str, dataset: str) -> str | None:
        """Who else has the `<type>-<dataset>` family, if anyone: `template <name>` for another producer's
        index template naming the dataset (whatever its priority; catch-alls such as the built-in
        `logs-*-*` do not count), `stream <name>` for a stream of the family made under a template not
        ours. None when the family is free for our template."""
        found = await self.request(
            "GET", "/_index_template?filter_path=index_templates.name,index_templates.index_template.index_patterns,"
                   "index_templates.index_template._meta")
        for entry in (found or {}).get("index_templates", []):
            template = entry.get("index_template") or {}
            if not is_ours(template) and claims_dataset(list(template.get("index_patterns") or []), type_, dataset):
                return f"template {entry.get('name')}"
        try:
            existing = await self.request("GET", f"/_data_stream/{type_}-{dataset}-*?filter_path=data_streams.name,"
                                                 "data_streams.template")
        except EngineRejected as exc:  # none (404), or not ours to see (403): the templates decided
            log.info("data streams of the family not listed", family=f"{type_}-{dataset}", status=exc.status)
            return None
        ours = {stream_template_name(type_, dataset), *LEGACY_TEMPLATES}
        for stream in (existing or {}).get("data_streams", []):
            if stream.get("template") not in ours:
                return f"stream {stream.get('name')}"
        return None

    async def remove_legacy_templates(self, names: Iterable[str] = LEGACY_TEMPLATES,
                                      components: Iterable[str] = LEGACY_COMPONENTS) -> list[str]:
        """Delete the broad `logs-*-*` / `metrics-*-*` templates earlier versions put -- only those
        whose `_meta.managed_by` says they are ours -- then their components once nothing uses them:
        the removed names."""
        removed: list[str] = []
        for name in names:
            try:
                found = await self.request("GET", f"/_index_template/{name}")
            except EngineRejected as exc:
                if exc.status == 404:
                    continue
                raise
            for entry in found.get("index_templates", []):
                if (entry.get("index_template", {}).get("_meta") or {}).get("managed_by") == MANAGED_BY:
                    try:
                        await self.request("DELETE", f"/_index_template/{name}")
                        removed.append(name)
                    except EngineRejected as exc:
                        if exc.status != 400:
                            raise
                        await self._narrow_in_use(name, entry["index_template"])
        for name in components:
            try:
                await self.request("DELETE", f"/_component_template/{name}")
                removed.append(name)
            except EngineRejected as exc:  # absent (404), or still used by a template someone else put (400)
                log.info("former component template left in place", template=name, status=exc.status)
        return removed

    async def _narrow_in_use(self, name: str, template: dict[str, Any]) -> None:
        """A former broad template that existing data streams still use cannot be deleted (both engines
        refuse); it is narrowed to exactly those streams instead, so it stops taking over anyone else's
        new streams while ours keep a template until they are deleted. EngineRejected when it cannot be."""
        streams = await self.request("GET", "/_data_stream")
        using = sorted(d["name"] for d in streams.get("data_streams", []) if d.get("template") == name)
        if not using:  # refused for another reason: setup says so rather than leave it taking over
            raise EngineRejected(400, f"former template {name} could not be removed, and no stream uses it")
        # rebuilt from the fields a PUT takes, not sent back as read (9.2's read-only dates are refused);
        # a refusal is raised to `shipper setup`, which fails: the broad template would keep taking over
        narrowed = {**writable_index_template(template), "index_patterns": using,
                    "_meta": {**(template.get("_meta") or {}), "narrowed_to_existing_streams": True}}
        await self.request("PUT", f"/_index_template/{name}", narrowed)
        log.info("former template narrowed to the streams that still use it", template=name, streams=len(using))

    def adapt_index_template(self, body: dict[str, Any]) -> dict[str, Any]:
        return body
