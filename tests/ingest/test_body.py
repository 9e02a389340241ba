"""Request bodies the API must not be fooled by: chunked bodies against the in-flight bound, bodies of
millions of tiny records, multi-member gzip and trailing garbage, a bad timestamp among good
records, OTLP bodies and requests whose every record is rejected. Real broker."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.ingest.app import create_app
from collector.ingest.body import Problem, array_items
from tests.ingest.conftest import API_TOKEN, Api, make_settings, ndjson

pytestmark = pytest.mark.stack

HEADERS = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/x-ndjson"}


def _log(i: int, **extra: object) -> dict[str, object]:
    return {"@timestamp": "2026-01-02T03:04:05.000Z", "message": f"rec {i}", "labels": {"i": i}, **extra}


async def test_chunked_bodies_count_against_the_in_flight_bound_as_they_arrive(kafka_bootstrap: str,
                                                                              unique: str) -> None:
    # three 900 kB bodies without Content-Length against a 1 MB bound: at most one may be held at once
    settings = make_settings(kafka_bootstrap, unique, max_body_bytes=1 << 20, max_in_flight_bytes=1_000_000)
    record = orjson.dumps(_log(0, pad="p" * 900)) + b"\n"
    per_body = 900_000 // len(record)
    app = create_app(settings)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(per_body // 10):
            yield record * 10
            await asyncio.sleep(0)  # let the other requests read too

    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest", timeout=60) as client:
        answers = await asyncio.gather(*(client.post("/v1/logs", content=chunks(), headers=HEADERS)
                                         for _ in range(3)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [202, 503, 503], [r.text[:200] for r in answers]
        refused = [r for r in answers if r.status_code == 503]
        assert all(r.headers["Retry-After"] for r in refused)
        assert "in process" in refused[0].json()["error"]
        # every byte held was given back: a lone request of the same size goes through
        again = await client.post("/v1/logs", content=chunks(), headers=HEADERS)
        assert again.status_code == 202 and again.json()["accepted"] == per_body // 10 * 10
        metrics = (await client.get("/metrics")).text
    assert "ingest_request_bytes_in_process 0" in metrics


@pytest.mark.parametrize("shape", ["ndjson", "array"])
async def test_too_many_tiny_records_are_refused_before_they_are_built(api: Api, shape: str) -> None:
    size = 10 << 20
    body = b"{}\n" * (size // 3) if shape == "ndjson" else b"[" + b"{}," * (size // 3 - 1) + b"{}]"
    api.settings.max_body_bytes = len(body)  # the body itself is within the byte limit
    tracemalloc.start()
    try:
        resp = await api.post("/v1/logs", body, content_type="application/x-ndjson" if shape == "ndjson"
                              else "application/json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status_code == 413 and "records" in resp.json()["error"]
    # the body (10 MiB) plus a few working copies; building 3.5 million dicts costs ~300 MB
    assert peak < 6 * size, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize(("body", "items"), [
    (b" [ ] ", []), (b"[{}]", [{}]),
    (b'[{"a": [1, {"b": "x,y]}"}]} ,"s,\\"]" , 3]', [{"a": [1, {"b": "x,y]}"}]}, 's,"]', 3]),
    (b"[\n[[1,2]]\t,\r\n{}]\n", [[[1, 2]], {}]),
])
def test_array_items_parse_one_by_one(body: bytes, items: list[object]) -> None:
    assert array_items(body, 3) == items == orjson.loads(body)


@pytest.mark.parametrize(("body", "status"), [
    (b"[1,2,3,4]", 413), (b"[1,2,", 400), (b"[1,]", 400), (b"[1 2]", 400), (b"[1] x", 400), (b"[NaN]", 400),
    (b"[\xff]", 400), (b"{}", 400),
])
def test_array_items_refusals(body: bytes, status: int) -> None:
    with pytest.raises(Problem) as caught:
        array_items(body, 3)
    assert caught.value.status == status


async def test_every_gzip_member_is_read_and_trailing_garbage_refused(api: Api) -> None:
    one = gzip.compress(ndjson(_log(0)))
    two = gzip.compress(ndjson(_log(1), _log(2)))
    resp = await api.post("/v1/logs", one + two, **{"Content-Encoding": "gzip"})
    assert resp.status_code == 202 and resp.json() == {"accepted": 3, "rejected": []}
    msgs = await api.read(api.settings.topic_logs, 3)
    assert sorted(orjson.loads(m.value)["labels"]["i"] for m in msgs) == [0, 1, 2]
    for tail in (b"garbage", b"\x00\x00\x00\x00", b"\x1f\x8bnot-really-gzip"):
        resp = await api.post("/v1/logs", one + tail, **{"Content-Encoding": "gzip"})
        assert resp.status_code == 400, tail
        assert "gzip" in resp.json()["error"]


async def test_a_bad_timestamp_rejects_its_record_only(api: Api) -> None:
    body = ndjson(_log(0), _log(1, **{"@timestamp": "0001-01-01T00:00:00+01:00"}), _log(2),
                  _log(3, **{"@timestamp": "9999-12-31T23:59:59-01:00"}))
    resp = await api.post("/v1/logs", body)
    assert resp.status_code == 202
    doc = resp.json()
    assert doc["accepted"] == 2 and [r["index"] for r in doc["rejected"]] == [1, 3]
    assert all(r["reason"].startswith("@timestamp") for r in doc["rejected"])


OTLP_LOGS = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name",
                                                            "value": {"stringValue": "api-service"}}]},
                               "scopeLogs": [{"logRecords": [{"timeUnixNano": "1700000000000000000",
                                                              "body": {"stringValue": "hello"}}]}]}]}
OTLP_METRICS = {"resourceMetrics": [{"resource": {}, "scopeMetrics": []}]}


@pytest.mark.parametrize(("path", "doc"), [("/v1/logs", OTLP_LOGS), ("/v1/metrics", OTLP_METRICS)])
async def test_otlp_bodies_get_a_clear_4xx(api: Api, path: str, doc: dict[str, object]) -> None:
    for ctype in ("application/json", "application/x-ndjson"):
        resp = await api.post(path, orjson.dumps(doc), content_type=ctype)
        assert resp.status_code == 400, resp.text
        body = resp.json()
        assert "OTLP" in body["error"] and "4318" in body["error"]
        assert body["message"] == body["error"]  # what an OTLP exporter prints from a refusal


async def test_a_request_whose_every_record_is_rejected_is_not_a_2xx(api: Api) -> None:
    resp = await api.post("/v1/logs", ndjson({"level": "info"}, _log(1, **{"log.level": "loud"})))
    assert resp.status_code == 400
    doc = resp.json()
    assert doc["accepted"] == 0 and [r["index"] for r in doc["rejected"]] == [0, 1]
    assert "every record was rejected" in doc["error"]
    resp = await api.post("/v1/metrics", [{"message": "no metric"}], content_type="application/json")
    assert resp.status_code == 400 and resp.json()["rejected"][0]["reason"].startswith("metric")


_DECOMPRESSOBJ = zlib.decompressobj


class _Counting:
    """zlib's decompressor, counting the input bytes it is handed."""

    fed = 0

    def __init__(self, wbits: int):
        self._inner = _DECOMPRESSOBJ(wbits=wbits)

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        _Counting.fed += len(data)
        return self._inner.decompress(data, max_length)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


@pytest.mark.parametrize("members", [1_000, 20_000])
def test_many_gzip_members_cost_linear_work(monkeypatch: pytest.MonkeyPatch, members: int) -> None:
    """Both intakes read bodies with `gunzip`: each member must not be handed the rest of the body
    (3.2 MB of empty members held the event loop for 7 s). Input bytes handed to zlib are counted."""
    from collector.ingest import body as bodies

    monkeypatch.setattr(bodies.zlib, "decompressobj", _Counting)
    _Counting.fed = 0
    data = gzip.compress(b"x" * 100) * members
    assert bodies.gunzip(data, 10 << 20) == b"x" * 100 * members
    assert _Counting.fed <= 4 * len(data)


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.binary(max_size=200), min_size=1, max_size=30), tail=st.binary(max_size=8),
       empty_members=st.integers(0, 500))
def test_gunzip_reads_every_member_in_linear_work(parts: list[bytes], tail: bytes, empty_members: int) -> None:
    """Hostile gzip bodies (many members, empty ones, garbage after them): the members' data or a
    4xx, never anything else, and never more input handed to zlib than a few times the body."""
    from collector.ingest import body as bodies

    data = b"".join(gzip.compress(p) for p in parts) + gzip.compress(b"") * empty_members + tail
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bodies.zlib, "decompressobj", _Counting)
        _Counting.fed = 0
        try:
            assert bodies.gunzip(data, 1 << 20) == b"".join(parts)
        except Problem as problem:
            assert tail and problem.status == 400
        assert _Counting.fed <= 4 * len(data) + 64
