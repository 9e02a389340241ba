"""Pure units for the hysteresis state machine and the monitor's probe handling."""

from __future__ import annotations

from typing import Any

from shipper.health import build_monitor
from shipper.health.config import HealthSettings
from shipper.health.state import HealthState, aggregate


def probe(node: str, ok: bool, ts: str) -> dict[str, Any]:
    return {
        "@timestamp": ts,
        "event": {"action": "health-check", "dataset": "elk.health"},
        "service": {"name": "api-service", "node": {"name": node}},
        "health": {"status": "healthy" if ok else "unhealthy"},
        "data_stream": {"type": "logs", "dataset": "elk.health", "namespace": "t"},
    }


def test_aggregate() -> None:
    assert aggregate(["healthy", "healthy"]) == "healthy"
    assert aggregate(["healthy", "unhealthy"]) == "degraded"
    assert aggregate(["unhealthy"]) == "unhealthy"
    assert aggregate(["unknown"]) == "unknown"


def test_single_failure_raises_nothing_three_go_down_one_comes_back() -> None:
    st = HealthState(failures_to_down=3, successes_to_up=1)
    first = st.observe_probe("svc", "1", True, 0.0, "a")
    got = [(d["health"]["scope"], d["health"]["to"]) for d in first]
    assert got == [("instance", "healthy"), ("service", "healthy")]
    assert st.observe_probe("svc", "1", False, 2.0, "b") == []
    assert st.observe_probe("svc", "1", True, 4.0, "c") == []
    assert st.observe_probe("svc", "1", False, 6.0, "d") == []
    assert st.observe_probe("svc", "1", False, 8.0, "e") == []
    down = st.observe_probe("svc", "1", False, 10.0, "f")
    assert [d["health"]["to"] for d in down] == ["unhealthy", "unhealthy"]
    assert down[0]["health"]["previous_duration_ms"] == 10000
    assert st.state_of("svc") == "unhealthy"
    up = st.observe_probe("svc", "1", True, 12.0, "g")
    assert [d["health"]["from"] for d in up] == ["unhealthy", "unhealthy"]


def test_degraded_and_deterministic_ids() -> None:
    mon = build_monitor(HealthSettings(failures_to_down=1))
    assert len(mon.observe(probe("api-service-1", True, "2026-01-01T00:00:00Z"))) == 2
    assert len(mon.observe(probe("api-service-2", True, "2026-01-01T00:00:00Z"))) == 1
    docs = mon.observe(probe("api-service-2", False, "2026-01-01T00:00:02Z"))
    assert [d["health"]["to"] for _, d in docs] == ["unhealthy", "degraded"]
    assert mon.state_of("api-service") == "degraded"
    assert docs[0][1]["data_stream"] == {"type": "logs", "dataset": "elk.health", "namespace": "t"}
    again = build_monitor(HealthSettings(failures_to_down=1))
    again.observe(probe("api-service-1", True, "2026-01-01T00:00:00Z"))
    again.observe(probe("api-service-2", True, "2026-01-01T00:00:00Z"))
    assert [i for i, _ in again.observe(probe("api-service-2", False, "2026-01-01T00:00:02Z"))] == [i for i, _ in docs]
    assert mon.observe({"event": {"action": "log"}}) == []


def test_restore_replays_latest_transition() -> None:
    from shipper.health.restore import apply_hits

    st = HealthState()
    hits = [
        {"_source": {"@timestamp": "2026-01-01T00:00:00Z", "health": {"scope": "service", "to": "healthy"},
                     "service": {"name": "svc"}}},
        {"_source": {"@timestamp": "2026-01-01T00:01:00Z", "health": {"scope": "service", "to": "unhealthy"},
                     "service": {"name": "svc"}}},
        {"_source": {"@timestamp": "2026-01-01T00:01:00Z", "health": {"scope": "instance", "to": "unhealthy"},
                     "service": {"name": "svc", "node": {"name": "svc-1"}}}},
    ]
    apply_hits(st, hits)
    assert st.state_of("svc") == "unhealthy"
    assert st.instances[("svc", "svc-1")].state == "unhealthy"
    # Already unhealthy: more failures raise no duplicate transition after a restart.
    assert st.observe_probe("svc", "svc-1", False, 1e10, "x") == []
