"""The ingest API against the real broker: bodies, limits, per-record outcomes, auth, what lands in Kafka."""

from __future__ import annotations

import gzip
import logging

import orjson
import pytest

from tests.ingest.conftest import API_TOKEN, AUTH_TOKEN, FILE_TOKEN, Api, ndjson

pytestmark = pytest.mark.stack


def _log(i: int, **extra: object) -> dict[str, object]:
    return {"@timestamp": "2026-01-02T03:04:05.000Z", "log.level": "info", "message": f"rec {i}",
            "labels": {"i": i}, **extra}


async def test_ndjson_and_json_array_land_in_kafka_keyed_by_service(api: Api) -> None:
    resp = await api.post("/v1/logs", ndjson(*(_log(i) for i in range(3))))
    assert resp.status_code == 202 and resp.json() == {"accepted": 3, "rejected": []}
    resp = await api.post("/v1/logs", [_log(i) for i in range(3, 5)], content_type="application/json")
    assert resp.status_code == 202 and resp.json() == {"accepted": 2, "rejected": []}
    resp = await api.post("/v1/logs", _log(5), content_type="application/json; charset=utf-8")  # one object
    assert resp.json() == {"accepted": 1, "rejected": []}
    msgs = await api.read(api.settings.topic_logs, 6)
    assert len(msgs) == 6
    assert {m.key for m in msgs} == {b"api-service"}
    recs = [orjson.loads(m.value) for m in msgs]
    assert sorted(r["labels"]["i"] for r in recs) == list(range(6))
    for rec in recs:
        assert list(rec)[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
        assert rec["service"] == {"name": "api-service"} and rec["event"] == {"dataset": "api_service"}


async def test_rejected_records_are_listed_by_index_and_the_rest_accepted(api: Api) -> None:
    body = b"\n".join([orjson.dumps(_log(0)), b"{not json", orjson.dumps({"level": "info"}), b"",
                       orjson.dumps(_log(3, **{"log.level": "loud"})), orjson.dumps(_log(4)), b"[1]"]) + b"\n"
    resp = await api.post("/v1/logs", body)
    assert resp.status_code == 202
    doc = resp.json()
    assert doc["accepted"] == 2
    assert [r["index"] for r in doc["rejected"]] == [1, 2, 3, 5]  # blank lines are not counted
    reasons = [r["reason"] for r in doc["rejected"]]
    assert reasons[0].startswith("invalid JSON") and reasons[1].startswith("message: required")
    assert reasons[2].startswith("log.level") and reasons[3] == "not a JSON object"
    resp = await api.post("/v1/logs", [_log(0), "x", _log(2)], content_type="application/json")
    assert resp.json() == {"accepted": 2, "rejected": [{"index": 1, "reason": "not a JSON object"}]}
    msgs = await api.read(api.settings.topic_logs, 4)
    assert sorted(orjson.loads(m.value)["message"] for m in msgs) == ["rec 0", "rec 0", "rec 2", "rec 4"]


async def test_gzip_bodies(api: Api) -> None:
    body = gzip.compress(ndjson(*(_log(i) for i in range(4))))
    resp = await api.post("/v1/logs", body, **{"Content-Encoding": "gzip"})
    assert resp.status_code == 202 and resp.json()["accepted"] == 4
    resp = await api.post("/v1/logs", body[:-10], **{"Content-Encoding": "gzip"})
    assert resp.status_code == 400 and "truncated" in resp.json()["error"]
    resp = await api.post("/v1/logs", b"plain text", **{"Content-Encoding": "gzip"})
    assert resp.status_code == 400 and "gzip" in resp.json()["error"]
    resp = await api.post("/v1/logs", body, **{"Content-Encoding": "br"})
    assert resp.status_code == 415


@pytest.mark.parametrize(("body", "ctype", "status", "words"), [
    (b"", "application/x-ndjson", 400, "no records"),
    (b"\n\n", "application/x-ndjson", 400, "no records"),
    (b"[]", "application/json", 400, "no records"),
    (b"[{", "application/json", 400, "not valid JSON"),
    (b'"text"', "application/json", 400, "JSON array"),
    (b"{bad\n{worse\n", "application/x-ndjson", 400, "no line of the NDJSON body"),
    (b"\xff\xfe", "application/json", 400, "not valid JSON"),
    (b"a=1", "application/x-www-form-urlencoded", 415, "Content-Type"),
])
async def test_unusable_bodies(api: Api, body: bytes, ctype: str, status: int, words: str) -> None:
    resp = await api.post("/v1/logs", body, content_type=ctype)
    assert resp.status_code == status
    assert words in resp.json()["error"]


async def test_content_type_missing_is_sniffed(api: Api) -> None:
    resp = await api.post("/v1/logs", orjson.dumps([_log(0)]), content_type=None)
    assert resp.json() == {"accepted": 1, "rejected": []}
    resp = await api.post("/v1/logs", ndjson(_log(1), _log(2)), content_type=None)
    assert resp.json() == {"accepted": 2, "rejected": []}


async def test_oversized_bodies_are_413(api: Api) -> None:
    limit = api.settings.max_body_bytes
    big = ndjson(*(_log(i, pad="x" * 1000) for i in range(limit // 1000 + 1)))
    assert len(big) > limit
    resp = await api.post("/v1/logs", big)
    assert resp.status_code == 413 and "limit" in resp.json()["error"]
    bomb = gzip.compress(b"\n" * (limit + 1))  # small on the wire, too big unpacked
    assert len(bomb) < limit
    resp = await api.post("/v1/logs", bomb, **{"Content-Encoding": "gzip"})
    assert resp.status_code == 413 and "decompressed" in resp.json()["error"]
    many = b"{}\n" * (api.settings.max_records + 1)
    resp = await api.post("/v1/logs", many)
    assert resp.status_code == 413 and "records" in resp.json()["error"]
    huge = ndjson({"message": "y" * 30_000, "extra": {"blob": "z" * (api.settings.max_record_bytes + 1)}})
    resp = await api.post("/v1/logs", huge)
    assert resp.status_code == 413  # over the body limit in this configuration


async def test_a_record_over_the_record_limit_is_rejected_alone(kafka_bootstrap: str, unique: str) -> None:
    import httpx

    from collector.ingest.app import create_app
    from tests.ingest.conftest import make_settings

    settings = make_settings(kafka_bootstrap, unique, max_record_bytes=2000)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
        body = ndjson(_log(0), _log(1, pad="p" * 3000), _log(2))
        resp = await client.post("/v1/logs", content=body, headers={"Authorization": f"Bearer {API_TOKEN}",
                                                                     "Content-Type": "application/x-ndjson"})
    assert resp.status_code == 202
    doc = resp.json()
    assert doc["accepted"] == 2 and doc["rejected"][0]["index"] == 1
    assert "over the limit" in doc["rejected"][0]["reason"]


async def test_auth_matrix(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = ndjson(_log(0, service={"name": "api-service"}))
    cases = [
        (None, 401), ("wrong-token", 401), (AUTH_TOKEN, 403), (API_TOKEN, 202),
    ]
    for token, status in cases:
        resp = await api.post("/v1/logs", body, token=token)
        assert resp.status_code == status, (token, resp.text)
        if status == 401:
            assert resp.headers["www-authenticate"].startswith("Bearer")
        assert (token or "wrong-token") not in resp.text
    resp = await api.post("/v1/logs", body, token=None, Authorization=f"Basic {API_TOKEN}")
    assert resp.status_code == 401
    # the other service's own records are fine with its own token; a mix is refused whole
    resp = await api.post("/v1/logs", ndjson(_log(1, service={"name": "auth-service"})), token=AUTH_TOKEN)
    assert resp.status_code == 202
    resp = await api.post("/v1/logs", ndjson(_log(2), _log(3, **{"service.name": "auth-service"})))
    assert resp.status_code == 403 and resp.json()["indexes"] == [1]
    # a token from the secrets directory
    resp = await api.post("/v1/logs", ndjson({"message": "from nginx"}), token=FILE_TOKEN)
    assert resp.status_code == 202
    msgs = await api.read(api.settings.topic_logs, 3)
    assert sorted((m.key, orjson.loads(m.value)["service"]["name"]) for m in msgs) == [
        (b"api-service", "api-service"), (b"auth-service", "auth-service"), (b"nginx", "nginx")]
    for token in (API_TOKEN, AUTH_TOKEN, FILE_TOKEN, "wrong-token"):
        assert token not in caplog.text


async def test_tokens_dir_is_reread_for_a_rotated_secret(api: Api, tokens_dir: object, monkeypatch) -> None:
    import collector.ingest.auth as auth_mod

    monkeypatch.setattr(auth_mod, "RELOAD_MIN_S", 0.0)
    (tokens_dir / "nginx").write_text("rotated-token")  # type: ignore[operator]
    resp = await api.post("/v1/logs", ndjson({"message": "x"}), token="rotated-token")
    assert resp.status_code == 202
    resp = await api.post("/v1/logs", ndjson({"message": "x"}), token=FILE_TOKEN)
    assert resp.status_code == 401


async def test_metrics_and_health_endpoints(api: Api) -> None:
    metric = {"metric": {"name": "http.server.requests", "type": "counter", "value": 10, "delta": 2}}
    resp = await api.post("/v1/metrics", [metric, {"metric": {"name": "x"}}], content_type="application/json")
    assert resp.json() == {"accepted": 1, "rejected": [{"index": 1, "reason": "metric.value: required for a gauge"}]}
    resp = await api.post("/v1/health", ndjson({"status": "healthy", "service": "api-service-1", "uptime": 3},
                                               {"status": "unhealthy", "service": "api-service-2",
                                                "error": "connect ECONNREFUSED"}))
    assert resp.json() == {"accepted": 2, "rejected": []}
    (m,) = await api.read(api.settings.topic_metrics, 1)
    assert m.key == b"api-service"
    assert orjson.loads(m.value)["event"] == {"kind": "metric", "dataset": "api_service"}
    health = await api.read(api.settings.topic_health, 2)
    # keyed by service, like every topic: one shipper replica owns all of the service's health
    assert sorted(h.key for h in health) == [b"api-service", b"api-service"]
    assert sorted(orjson.loads(h.value)["service"]["node"]["name"] for h in health) == [
        "api-service-1", "api-service-2"]
    assert sorted(orjson.loads(h.value)["health"]["status"] for h in health) == ["healthy", "unhealthy"]

    resp = await api.client.get("/health")
    assert resp.status_code == 200 and resp.json()["checks"]["kafka"]["status"] == "healthy"
    text = (await api.client.get("/metrics")).text
    assert "ingest_kafka_up 1" in text
    assert 'ingest_records_accepted_total{endpoint="/v1/metrics"} 1' in text
    assert 'ingest_records_rejected_total{endpoint="/v1/metrics"} 1' in text
    assert 'ingest_records_accepted_total{endpoint="/v1/health"} 2' in text
    assert 'ingest_requests_total{endpoint="/v1/health",code="202"} 1' in text
    spec = (await api.client.get("/openapi.json")).json()
    assert {"/v1/logs", "/v1/metrics", "/v1/health", "/health", "/metrics"} <= set(spec["paths"])
    assert set(spec["paths"]["/v1/logs"]["post"]["requestBody"]["content"]) == {"application/json",
                                                                               "application/x-ndjson"}
    assert (await api.client.get("/docs")).status_code == 200


async def test_a_retried_body_without_a_time_lands_as_the_same_bytes(api: Api) -> None:
    """Issue 20 item 9: the ingest API stamps no time, so a client's retry of a body is the same bytes
    in Kafka (and a record with an event.id the same document id in the shipper); the Kafka record's
    own time is when it was written."""
    body = ndjson({"message": "paid", "event": {"id": "pay-1"}}, {"message": "shipped", "event": {"id": "ship-1"}})
    for _ in range(2):  # the client's first try, and its retry a little later
        assert (await api.post("/v1/logs", body)).json() == {"accepted": 2, "rejected": []}
    msgs = await api.read(api.settings.topic_logs, 4)
    values = sorted(m.value for m in msgs)
    assert values[0] == values[1] and values[2] == values[3] and values[0] != values[2]
    assert all(b"@timestamp" not in v and m.timestamp > 0 for v, m in zip(values, msgs, strict=True))
