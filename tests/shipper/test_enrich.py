"""Stage 3, pure: ECS normalisation and enrichment, one step at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from shipper.context import Batch, TransformSettings
from shipper.dotted import expand_dotted
from shipper.enrich import STEPS, enrich, expand_keys, resolve_service
from shipper.provenance import Meta

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
KAFKA_MS = int(datetime(2026, 11, 28, 11, 59, 0, tzinfo=UTC).timestamp() * 1000)


def _meta(key: bytes | None = None, headers: tuple[tuple[str, bytes | None], ...] = (), offset: int = 7,
          value: bytes | None = None) -> Meta:
    return Meta("elk-logs", 2, offset, KAFKA_MS, key, headers, value)


def _batch(**settings: Any) -> Batch:
    return Batch(TransformSettings(host_name="shipper-1", **settings), NOW)


def _enrich(record: dict[str, Any], meta: Meta | None = None, **settings: Any) -> dict[str, Any]:
    return enrich(record, meta or _meta(value=orjson.dumps(record)), _batch(**settings))


def test_dotted_keys_expand_to_nested_objects() -> None:
    assert expand_dotted({"log.level": "INFO", "service": {"node.name": "n1"}}) == {
        "log": {"level": "INFO"}, "service": {"node": {"name": "n1"}}}


def test_a_key_that_is_both_leaf_and_object_resolves_the_same_way_in_either_order() -> None:
    one = expand_dotted({"a": "leaf", "a.b": 1})
    other = expand_dotted({"a.b": 1, "a": "leaf"})
    assert one == other == {"a": {"b": 1, "value": "leaf"}}


def test_timestamps_become_utc_iso_with_millis() -> None:
    record = _enrich({"@timestamp": "2026-11-28T13:00:00.5+01:00", "message": "m"})
    assert record["@timestamp"] == "2026-11-28T12:00:00.500Z"
    assert _enrich({"@timestamp": 1764331200123})["@timestamp"] == "2025-11-28T12:00:00.123Z"
    assert _enrich({"@timestamp": "2026-11-28T12:00:00"})["@timestamp"] == "2026-11-28T12:00:00.000Z"


def test_unparseable_and_far_future_timestamps_are_kept_and_replaced_by_kafka_time() -> None:
    for bad in ("yesterday-ish", "2999-01-01T00:00:00Z", True, {"nested": 1}, "0001-01-01T00:00:00+01:00",
                "9999-12-31T23:59:59-01:00", 1e300, -1e300, 2**62):
        record = _enrich({"@timestamp": bad})
        assert record["@timestamp"] == "2026-11-28T11:59:00.000Z"
        assert record["labels"]["invalid_timestamp"] == str(bad)
    assert _enrich({})["@timestamp"] == "2026-11-28T11:59:00.000Z"


def test_level_is_lower_case_and_message_aliases_are_adopted() -> None:
    record = _enrich({"log": {"level": "WARNING"}, "msg": "hello"})
    assert record["log"]["level"] == "warning"
    assert record["message"] == "hello"
    assert _enrich({"level": "ERROR"})["log"]["level"] == "error"


@pytest.mark.parametrize(("level", "expected"), [
    ("WARN", "warning"), ("warn", "warning"), ("Err", "error"), ("FATAL", "critical"), ("info", "info"),
    ("Verbose", "debug"), (40, "warning"), (60, "critical"),
    ("NOTICE-ish", "notice-ish"), (" Custom ", "custom"),  # unknown names are kept, lower-cased
    (77, "77"),  # an unknown number is kept as text
])
def test_levels_follow_the_contract_vocabulary(level: Any, expected: str) -> None:
    assert _enrich({"log": {"level": level}})["log"]["level"] == expected
    assert _enrich({"level": level})["log"]["level"] == expected


@pytest.mark.parametrize("level", [{"name": "error"}, ["error"], 1.5, True])
def test_a_level_that_is_no_level_moves_to_labels(level: Any) -> None:
    record = _enrich({"log": {"level": level, "logger": "a"}})
    assert record["log"] == {"logger": "a"}
    assert record["labels"]["invalid_level"] == str(level)


def test_service_name_from_the_record_wins() -> None:
    record = _enrich({"service": {"name": "billing"}}, _meta(key=b"other-1"))
    assert record["service"] == {"name": "billing"}


def test_service_name_from_kafka_key_or_headers_with_the_instance_split() -> None:
    record = _enrich({}, _meta(key=b"api-service-1"))
    assert record["service"] == {"name": "api-service", "node": {"name": "api-service-1"}}
    record = _enrich({}, _meta(key=b"ignored", headers=(("service.name", b"auth"),)))
    assert record["service"]["name"] == "auth"


@pytest.mark.parametrize(("key", "service", "node"), [
    (b"api_service_1", "api_service", "api_service_1"),  # the contract's rule, not a rule of our own
    (b"api-service-12", "api-service", "api-service-12"),
    (b"redis", "redis", None),
    (b"v-2", "v", "v-2"),
])
def test_instance_names_follow_the_contract(key: bytes, service: str, node: str | None) -> None:
    record = _enrich({}, _meta(key=key))
    assert record["service"]["name"] == service
    assert record["service"].get("node", {}).get("name") == node


def test_service_node_written_flat_becomes_the_node_object() -> None:
    assert _enrich({"service": {"name": "a", "node": "a-1"}})["service"] == {"name": "a", "node": {"name": "a-1"}}


def test_service_name_from_the_configured_mapping() -> None:
    batch = _batch(service_map={"web_[a-z]+": "frontend", "exact-name": "billing"})
    record = resolve_service({"container": {"name": "web_blue"}}, _meta(), batch)
    assert record["service"] == {"name": "frontend", "node": {"name": "web_blue"}}
    assert resolve_service({}, _meta(key=b"exact-name"), batch)["service"]["name"] == "billing"
    assert resolve_service({}, _meta(), batch)["service"]["name"] == "unknown"


def test_headers_with_a_null_value_are_skipped() -> None:
    headers = (("service", None), ("host", None), ("environment", None), ("service.name", b"auth"))
    record = _enrich({}, _meta(headers=headers))
    assert record["service"] == {"name": "auth"}
    assert "host" not in record


def test_ingest_stamps_and_health_state() -> None:
    states = {"api-service": "degraded"}
    record = _enrich({"service": {"name": "api-service"}}, state_of=states.get)
    assert record["event"]["ingested"] == "2026-11-28T12:00:00.000Z"
    assert record["ecs"]["version"]
    assert record["agent"] == {"type": "elk-shipper", "name": "shipper-1"}
    assert record["health"]["state"] == "degraded"
    assert "health" not in _enrich({"service": {"name": "other"}}, state_of=states.get)


def test_dotted_key_count_counts_every_dotted_key_once_or_cannot_tell() -> None:
    from shipper.dotted import dotted_key_count

    raw = b'{"log.level":"info","ecs.version":"8.11.0","a":{"b.c.d" : 1},"v":"1.2","n":1.5,"u":"x.y/z"}'
    assert dotted_key_count(raw) == 3
    assert dotted_key_count(b'{"a.": 1, "b": {"c": 2}}') == 1
    assert dotted_key_count(b'{"message": "v1.2: done", "url": {"full": "http://x.y/"}}') == 0
    assert dotted_key_count(b'{"a\\"b.c": 1}') == -1  # escapes: cannot tell
    assert dotted_key_count(b'{"a": "' + b"." * 1_000_000 + b'"}') == 0  # linear, even when long


@pytest.mark.parametrize("record", [
    {"log.level": "INFO", "ecs.version": "8.11.0", "log": {"logger": "app"}, "service": {"name": "a"}},
    {"a.b": 1, "a": {"b": 2}}, {"a.b": 1, "a": 5}, {"a": 5, "a.b": 1}, {"a.b": 1, "a.b.c": 2},
    {"a.b": 1, "a.c": 2, "x": 3}, {".a": 1, "b.": 2, "c.d": 3}, {"a..b": 1}, {"a.b": {"c": 1}, "a": {"b": {"d": 2}}},
    {"a.b": 1, "a": None}, {"a": None, "a.b": 1}, {"a": {"b": None}, "a.b": 1},
])
def test_expand_top_level_gives_what_the_full_walk_gives(record: dict[str, Any]) -> None:
    import copy

    from shipper.dotted import expand_top_level

    assert expand_top_level(copy.deepcopy(record)) == expand_dotted(copy.deepcopy(record))


def test_a_null_where_a_dotted_key_leads_is_indexed_not_dead_lettered() -> None:
    from shipper.monitor import NullMonitor
    from shipper.transform import prepare

    raw = b'{"log.level":"info","log":null,"message":"m"}'
    for fast in (True, False):
        prepared = prepare([_meta(value=raw)], _batch(), NullMonitor(), fast=fast)
        assert not prepared.dead
        assert orjson.loads(prepared.actions[0].source)["log"] == {"level": "info", "value": None}


def test_enrich_of_a_library_record_is_the_same_on_the_fast_path() -> None:
    from shipper.dotted import dotted_key_count, top_level_only

    raw = (b'{"@timestamp":"2026-11-28T12:00:00.000Z","log.level":"INFO","message":"m","ecs.version":"8.11.0",'
           b'"log":{"logger":"app"},"service":{"name":"api-service"},"labels":{"user_id":1}}')
    fast = orjson.loads(raw)
    dotted = dotted_key_count(raw)
    assert dotted == 2 and top_level_only(fast, dotted)
    fast = expand_keys(fast, _meta(value=raw), _batch())
    assert fast == expand_dotted(orjson.loads(raw))
    assert enrich(orjson.loads(raw), _meta(value=raw), _batch()) == enrich(orjson.loads(raw), _meta(value=b"\\"),
                                                                          _batch())  # full walk
    nested = b'{"log.level": 1, "a": {"b.c": 2}}'
    assert not top_level_only(orjson.loads(nested), dotted_key_count(nested))


def test_enrich_without_expansion_equals_enrich_with_it_when_no_key_has_a_dot() -> None:
    record = {"@timestamp": "2026-11-28T12:00:00.000Z", "log": {"level": "INFO"}, "service": {"name": "a"}}
    copy = {"@timestamp": "2026-11-28T12:00:00.000Z", "log": {"level": "INFO"}, "service": {"name": "a"}}
    assert _enrich(record) == enrich(copy, _meta(), _batch(), steps=STEPS[1:])


def test_environment_and_host_from_headers_only_when_missing() -> None:
    headers = (("environment", b"staging"), ("host.name", b"node-7"))
    record = _enrich({"service": {"name": "a"}}, _meta(headers=headers))
    assert (record["service"]["environment"], record["host"]["name"]) == ("staging", "node-7")
    own = _enrich({"service": {"name": "a", "environment": "prod"}, "host": {"name": "h1"}}, _meta(headers=headers))
    assert (own["service"]["environment"], own["host"]["name"]) == ("prod", "h1")
