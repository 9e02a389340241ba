"""Property check against the app's own OpenAPI document: for every operation it declares, generated
requests (bodies shaped by the declared content types, plus junk, gzip, odd headers, with and
without a valid token) never get a 5xx, and every /v1 answer is JSON. Runs with the real broker."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.ingest.app import create_app
from tests.ingest.conftest import API_TOKEN, make_settings

pytestmark = pytest.mark.stack

KEYS = ["@timestamp", "log.level", "level", "message", "msg", "time", "timestamp", "ecs.version", "service",
        "service.name", "service.node.name", "event", "event.duration", "event.dataset", "labels", "extra",
        "metric", "metric.name", "metric.type", "metric.value", "health", "health.status", "status", "error",
        "trace.id", "http", "http.response.status_code", "url", "tags", "data_stream", "log", "log.logger",
        "name", "type", "value", "count", "a.b", "a", "", ".", "x."]

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["info", "WARN", "healthy", "down", "api-service", "api-service-1", "auth-service",
                              "counter", "gauge", "histogram", "2026-01-02T03:04:05Z", "Bearer abc.def"]))
keys = st.sampled_from(KEYS) | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                      max_leaves=20)
# mostly-valid records (so the deep validation paths are reached) with a few odd fields mixed in,
# and fully arbitrary objects
shallow = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3)
base = st.fixed_dictionaries({"message": st.text(max_size=20)}, optional={
    "log.level": st.sampled_from(["info", "warn", "fatal", 30]),
    "@timestamp": st.sampled_from(["2026-01-02T03:04:05.123Z", "2026-01-02 03:04:05", 1700000000000,
                                   "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", 1e30]),
    "service": st.sampled_from(["api-service", "api-service-2", {"name": "api-service", "node": {"name": "n"}}]),
    "metric": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=8),
                                     "type": st.sampled_from(["counter", "gauge", "histogram"]),
                                     "value": st.integers(-(2**63), 2**63 - 1), "count": st.floats(allow_nan=False)},
                                    optional={"unit": scalars, "sum": scalars}),
    "status": st.sampled_from(["healthy", "unhealthy", "ok"]),
})
records = st.one_of(
    st.tuples(base, st.dictionaries(st.sampled_from(KEYS), shallow, max_size=3)).map(
        lambda pair: {**pair[1], **pair[0]}),
    st.dictionaries(keys, values, max_size=8),
)


@st.composite
def bodies(draw: st.DrawFn, content_types: list[str]) -> tuple[bytes, str | None]:
    ctype = draw(st.sampled_from([*content_types, *content_types, "text/plain", "application/xml", None]))
    kind = draw(st.sampled_from(["array", "array", "ndjson", "ndjson", "value", "bytes"]))
    if kind == "array":
        body = orjson.dumps(draw(st.lists(records | values, max_size=6)))
    elif kind == "ndjson":
        lines = draw(st.lists(records.map(orjson.dumps) | st.binary(max_size=20), max_size=6))
        body = b"\n".join(lines)
    elif kind == "value":
        body = orjson.dumps(draw(values))
    else:
        body = draw(st.binary(max_size=200))
    return body, ctype


def _spec_operations() -> list[tuple[str, str, list[str]]]:
    spec = create_app(make_settings("127.0.0.1:1", "spec")).openapi()
    ops = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            content = list(op.get("requestBody", {}).get("content", {}))
            ops.append((path, method.upper(), content))
    return ops


OPERATIONS = _spec_operations()


@pytest.fixture(scope="module")
def call(kafka_bootstrap: str) -> Iterator[Callable[..., httpx.Response]]:
    loop = asyncio.new_event_loop()
    app = create_app(make_settings(kafka_bootstrap, f"fuzz-{uuid.uuid4().hex[:8]}", max_body_bytes=64 * 1024,
                                   max_records=50))
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                               base_url="http://ingest")

    def do(method: str, path: str, **kw: Any) -> httpx.Response:
        return loop.run_until_complete(client.request(method, path, **kw))

    yield do
    loop.run_until_complete(client.aclose())
    loop.run_until_complete(lifespan.__aexit__(None, None, None))
    loop.close()


def test_the_spec_declares_the_ingest_operations() -> None:
    assert {(p, m) for p, m, _ in OPERATIONS} >= {("/v1/logs", "POST"), ("/v1/metrics", "POST"),
                                                  ("/v1/health", "POST"), ("/health", "GET"), ("/metrics", "GET")}


def _request(call: Callable[..., httpx.Response], data: st.DataObject, headers: dict[str, str]) -> None:
    path, method, content_types = data.draw(st.sampled_from(OPERATIONS))
    kwargs: dict[str, Any] = {}
    if method == "POST":
        body, ctype = data.draw(bodies(content_types))
        if ctype:
            headers["Content-Type"] = ctype
        encoding = data.draw(st.sampled_from([None, None, "gzip", "identity", "deflate"]))
        if encoding:
            headers["Content-Encoding"] = encoding
            if encoding == "gzip" and data.draw(st.booleans()):  # one member, or more, or garbage after it
                body = gzip.compress(body) + data.draw(st.sampled_from([b"", gzip.compress(b"\n"), b"junk"]))
        kwargs["content"] = body
    resp = call(method, path, headers=headers, **kwargs)
    assert resp.status_code < 500, (path, headers, kwargs.get("content", b"")[:200], resp.text[:300])
    if path.startswith("/v1/"):
        doc = resp.json()
        if resp.status_code == 202:
            # a 2xx means records were taken: a request whose every record was refused is a 4xx
            assert doc["accepted"] >= 1 and all(set(r) == {"index", "reason"} for r in doc["rejected"])
        else:
            assert isinstance(doc["error"], str)


_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(_SETTINGS, max_examples=600)
@given(data=st.data())
def test_no_5xx_for_any_generated_request(call: Callable[..., httpx.Response], data: st.DataObject) -> None:
    _request(call, data, {"Authorization": f"Bearer {API_TOKEN}"})


@settings(_SETTINGS, max_examples=100)
@given(data=st.data(),
       auth=st.sampled_from([None, "Bearer nope", "nope", f"bearer  {API_TOKEN} ", API_TOKEN, "Bearer"]))
def test_no_5xx_with_any_authorization(call: Callable[..., httpx.Response], data: st.DataObject,
                                       auth: str | None) -> None:
    _request(call, data, {"Authorization": auth} if auth is not None else {})
