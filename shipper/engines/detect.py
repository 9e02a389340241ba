"""Pick the adapter: from the settings, or from what `GET /` says the server is."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from base64 import b64encode
from collections.abc import Mapping
from typing import Any

from shipper.config import ShipperSettings
from shipper.engines.base import EngineUnavailable, SearchEngine


def kind_from(headers: Mapping[str, str], info: dict[str, Any]) -> str | None:
    """`elasticsearch`, `opensearch` or None, from the headers and body of `GET /`.

    OpenSearch says `version.distribution: opensearch`; Elasticsearch 7.14+ sends the
    `X-Elastic-Product` header and has a `version.build_flavor` (default/serverless).
    """
    version = info.get("version") if isinstance(info.get("version"), dict) else {}
    assert isinstance(version, dict)
    if version.get("distribution") == "opensearch":
        return "opensearch"
    product = next((v for k, v in headers.items() if k.lower() == "x-elastic-product"), None)
    if product == "Elasticsearch" or version.get("build_flavor") in ("default", "serverless"):
        return "elasticsearch"
    return None


def _probe(url: str, username: str | None, password: str | None, api_key: str | None, timeout: float) -> str:
    request = urllib.request.Request(url.rstrip("/") + "/")
    if api_key:
        request.add_header("Authorization", f"ApiKey {api_key}")
    elif username:
        request.add_header("Authorization", "Basic " + b64encode(f"{username}:{password or ''}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            headers = dict(response.headers.items())
            info = json.loads(response.read() or b"{}")
    except (OSError, ValueError) as exc:
        raise EngineUnavailable(f"{url}: {exc}") from exc
    kind = kind_from(headers, info if isinstance(info, dict) else {})
    if kind is None:
        raise EngineUnavailable(f"{url} is neither Elasticsearch nor OpenSearch: {str(info)[:200]}")
    return kind


async def detect_kind(settings: ShipperSettings) -> str:
    if settings.engine != "auto":
        return settings.engine
    return await asyncio.to_thread(_probe, settings.search_url, settings.search_username, settings.password,
                                   settings.api_key, settings.search_timeout_s)


def build_engine(settings: ShipperSettings, kind: str) -> SearchEngine:
    pool = settings.bulk_concurrency + 2
    engine: SearchEngine
    if kind == "opensearch":
        from shipper.engines.opensearch import OpenSearchEngine

        engine = OpenSearchEngine(settings.search_url, username=settings.search_username,
                                  password=settings.password, timeout=settings.search_timeout_s, pool=pool)
    else:
        from shipper.engines.elasticsearch import ElasticsearchEngine

        engine = ElasticsearchEngine(settings.search_url, username=settings.search_username,
                                     password=settings.password, api_key=settings.api_key,
                                     timeout=settings.search_timeout_s, pool=pool)
    engine.replicas, engine.retention_days = settings.index_replicas, settings.retention_days
    return engine
