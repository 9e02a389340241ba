"""Setup at start: connect to the engine (kind from the settings or `GET /`) and install the ILM
policy (Elasticsearch), the ECS component templates and the own streams' index templates (the
services' streams get theirs from the sink, on first write: shipper/templates.py). Idempotent: every
start PUTs the same content, so `shipper setup` and `shipper run` can be repeated freely.

`shipper setup` also removes the broad `logs-*-*` / `metrics-*-*` templates of earlier versions
(docs/kibana.md, "Upgrading"); `shipper run` leaves that to it, so a rolling upgrade never has a
moment in which an older shipper still running writes into streams without their template."""

from __future__ import annotations

import asyncio
import contextlib

from shipper.config import ShipperSettings
from shipper.engines.base import EngineUnavailable, SearchEngine
from shipper.engines.detect import build_engine, detect_kind
from shipper.log import get_logger

log = get_logger("shipper.setup")


async def install(settings: ShipperSettings) -> SearchEngine:
    """One attempt; the connected engine, templates in place. The caller closes it."""
    engine = build_engine(settings, await detect_kind(settings))
    try:
        await engine.install_templates()
    except BaseException:
        await engine.close()
        raise
    return engine


async def setup_once(settings: ShipperSettings) -> tuple[str, list[str]]:
    """`shipper setup`: templates in place and the former broad templates gone; (engine kind, removed)."""
    engine = await install(settings)
    try:
        return engine.name, await engine.remove_legacy_templates()
    finally:
        await engine.close()


async def wait_for_engine(settings: ShipperSettings, stopping: asyncio.Event) -> SearchEngine:
    """Retries while the engine is unreachable (it may start after us); EngineUnavailable once stopping."""
    delay = 0.5
    while True:
        try:
            engine = await install(settings)
            log.info("engine ready", engine=engine.name, url=settings.search_url)
            return engine
        except EngineUnavailable as exc:
            if stopping.is_set():
                raise
            log.warning("waiting for the search engine", error=str(exc), retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(10.0, delay * 2)
