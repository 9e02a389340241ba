"""Table test of data-stream naming."""

from __future__ import annotations

import pytest

from collector.contract.streams import (
    MAX_PART_BYTES,
    data_stream_name,
    data_stream_pattern,
    is_own_dataset,
    is_own_written,
    is_share,
    sanitize_dataset,
    sanitize_namespace,
    service_streams,
)

TABLE = [
    (("logs", "api-service", "default"), "logs-api_service-default"),
    (("logs", "API Service", "Prod"), "logs-api_service-prod"),
    (("metrics", "auth-service", "staging-eu"), "metrics-auth_service-staging_eu"),
    (("logs", "elk.health", "default"), "logs-elk.health-default"),
    (("logs", "", ""), "logs-generic-default"),
    (("logs", "***", "#"), "logs-generic-default"),
    (("logs", 'a\\b/c*d?e"f<g>h|i,j#k:l', "x"), "logs-a_b_c_d_e_f_g_h_i_j_k_l-x"),
    (("logs", "\x00\t*", "\x7f"), "logs-generic-default"),  # control characters and white space are no names
    (("logs", "a\tb\nc\x00d", "x\ry"), "logs-a_b_c_d-x_y"),
]


@pytest.mark.parametrize(("args", "name"), TABLE)
def test_data_stream_name(args: tuple[str, str, str], name: str) -> None:
    assert data_stream_name(*args) == name


@pytest.mark.parametrize("name", ["x" * 300, "ü" * 300, "日本" * 200])
def test_parts_fit_in_bytes(name: str) -> None:
    assert 0 < len(sanitize_dataset(name).encode()) <= MAX_PART_BYTES
    assert 0 < len(sanitize_namespace(name).encode()) <= MAX_PART_BYTES
    assert len(data_stream_name("metrics", name, name).encode()) + len(".ds--2026.12.02-000001") <= 255


@pytest.mark.parametrize("name", ["\x00\t*", " a b ", "-x-", "ü" * 120, "A.B", "a\u2028b"])
def test_sanitizing_is_idempotent(name: str) -> None:
    assert sanitize_dataset(sanitize_dataset(name)) == sanitize_dataset(name)
    assert sanitize_namespace(sanitize_namespace(name)) == sanitize_namespace(name)


def test_patterns_and_own_datasets() -> None:
    assert data_stream_pattern("logs") == "logs-*-*"
    assert data_stream_pattern("logs", "elk.health") == "logs-elk.health-*"
    assert [is_own_dataset(d) for d in ("elk.health", "ELK.alerts", "elk.anything", "api_service")] == [
        True, True, True, False]


@pytest.mark.parametrize(("type_", "patterns"), [
    ("logs", ("logs-*-*", "-logs-elk.*-*")),
    ("metrics", ("metrics-*-*", "-metrics-elk.*-*")),
])
def test_service_streams_leave_out_the_products_own(type_: str, patterns: tuple[str, ...]) -> None:
    assert service_streams(type_) == patterns


@pytest.mark.parametrize(("source", "own"), [
    ({"event": {"provider": "elk-shipper"}}, True),
    ({"event": {"provider": ["elk-shipper"]}}, False),  # issue 20 item 10: a term query matches it
    ({"event": {"provider": ["elk-shipper", "elk-shipper"]}}, False),
    ({"event": {"provider": {"name": "elk-shipper"}}}, False),
    ({"event": {"provider": "ELK-shipper"}}, False),
    ({"event": {"provider": "elk-shipper "}}, False),
    ({"event": {}}, False),
    ({"event": "elk-shipper"}, False),
    ({"event.provider": "elk-shipper"}, False),  # the shipper writes objects, never dotted keys
    ([], False),
])
def test_only_a_plain_string_marker_is_own_written(source: object, own: bool) -> None:
    assert is_own_written(source) is own


@pytest.mark.parametrize(("headers", "share"), [
    ([("elk-stream-share", b"1")], True),
    ((("trace", b"x"), ("elk-stream-share", None)), True),  # the header decides; the value is checked later
    ([("ELK-stream-share", b"1")], False),  # Kafka header keys are case-sensitive
    ([("elk-stream-share ", b"1")], False),
    ([("service", b"elk-stream-share")], False),
    ([], False),
    ((), False),
    (None, False),
    ([("elk-stream-share",)], False),
    (["elk-stream-share"], False),
])
def test_a_share_is_told_by_its_header(headers: object, share: bool) -> None:
    assert is_share(headers) is share
