"""Session fixtures: where the real Kafka broker and search engine are.

Endpoints come from the environment first (KAFKA_BOOTSTRAP_SERVERS, SEARCH_URL, ELASTICSEARCH_URL), else from
the local stack's `.stack/env` (written by `make stack-up`). Under CI=true a server that does
not answer fails the run; elsewhere the test is skipped with the command that starts it.
"""

from __future__ import annotations

import os
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.localstack import Config

REPO = Path(__file__).resolve().parent.parent


def _stack_env() -> dict[str, str]:
    envfile = Config.from_env().state / "env"
    values: dict[str, str] = {}
    if envfile.exists():
        for line in envfile.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and value:
                values[key.strip()] = value.strip()
    return values


def _endpoint(name: str) -> str | None:
    return os.environ.get(name) or _stack_env().get(name)


def _missing(what: str) -> None:
    msg = f"{what} is not reachable; start the local stack with `make stack-up`"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def _tcp_open(hostport: str) -> bool:
    host, _, port = hostport.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    bootstrap = _endpoint("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap or not _tcp_open(bootstrap):
        _missing(f"Kafka ({bootstrap or 'KAFKA_BOOTSTRAP_SERVERS unset'})")
    assert bootstrap
    return bootstrap


@pytest.fixture(scope="session")
def search_url() -> str:
    url = _endpoint("SEARCH_URL")
    try:
        assert url
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
    except Exception:
        _missing(f"the search engine ({url or 'SEARCH_URL unset'})")
    assert url
    return url


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    """The stack's Elasticsearch node (assembled from Maven Central: see docs/ARCHITECTURE.md for what
    it lacks). It has no `GET /`, so it is probed by its cluster health."""
    url = _endpoint("ELASTICSEARCH_URL")
    try:
        assert url
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=5) as response:
            assert response.headers.get("X-elastic-product") == "Elasticsearch"
    except Exception:
        _missing(f"Elasticsearch ({url or 'ELASTICSEARCH_URL unset'})")
    assert url
    return url


@pytest.fixture(params=["opensearch", "elasticsearch"])
def engine_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, url) of each engine of the local stack, for the tests that mean the same on both: the
    OpenSearch node and the Elasticsearch node (which lacks the data stream APIs, ILM, `GET /` and some
    mapper types: docs/ARCHITECTURE.md). A missing one is skipped, or fails under CI=true."""
    kind = str(request.param)
    return kind, str(request.getfixturevalue("search_url" if kind == "opensearch" else "elasticsearch_url"))


@pytest.fixture(scope="session")
def stack_config() -> Config:
    """For fault tests that stop and restart the local servers by pid."""
    return Config.from_env()


@pytest.fixture
def unique() -> str:
    """A short random suffix so tests sharing one broker and one engine never see each other's data."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topic(kafka_bootstrap: str, unique: str) -> Iterator[str]:
    yield f"test-{unique}"
