"""Pure units for the hysteresis state machine and the monitor's probe handling."""

from __future__ import annotations

import time
from typing import Any

from shipper.health import build_monitor
from shipper.health.config import HealthSettings
from shipper.health.state import HealthState, aggregate

OK, DEG, BAD = "healthy", "degraded", "unhealthy"


def probe(node: str, status: str | bool, ts: str, service: str = "api-service") -> dict[str, Any]:
    if isinstance(status, bool):
        status = OK if status else BAD
    return {
        "@timestamp": ts,
        "event": {"action": "health-check", "dataset": "elk.health"},
        "service": {"name": service, "node": {"name": node}},
        "health": {"status": status},
        "data_stream": {"type": "logs", "dataset": "elk.health", "namespace": "t"},
    }


def moves(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["health"]["scope"], d["health"]["to"]) for d in docs]


def test_aggregate() -> None:
    assert aggregate([OK, OK]) == OK
    assert aggregate([OK, BAD]) == DEG
    assert aggregate([BAD]) == BAD
    assert aggregate(["unknown"]) == "unknown"
    assert aggregate([DEG, DEG]) == DEG  # answering, but saying degraded: the service is degraded
    assert aggregate([DEG, BAD]) == DEG
    assert aggregate([OK, "unknown", BAD]) == DEG
    assert aggregate(["unknown", BAD]) == BAD  # an instance nobody hears from vouches for nothing


def test_single_failure_raises_nothing_three_go_down_one_comes_back() -> None:
    st = HealthState(failures_to_down=3, successes_to_up=1)
    assert moves(st.observe_probe("svc", "1", OK, 0.0, "a")) == [("instance", OK), ("service", OK)]
    assert st.observe_probe("svc", "1", BAD, 2.0, "b") == []
    assert st.observe_probe("svc", "1", OK, 4.0, "c") == []
    assert st.observe_probe("svc", "1", BAD, 6.0, "d") == []
    assert st.observe_probe("svc", "1", BAD, 8.0, "e") == []
    down = st.observe_probe("svc", "1", BAD, 10.0, "f")
    assert [d["health"]["to"] for d in down] == [BAD, BAD]
    assert down[0]["health"]["previous_duration_ms"] == 10000
    assert st.state_of("svc") == BAD
    up = st.observe_probe("svc", "1", OK, 12.0, "g")
    assert [d["health"]["from"] for d in up] == [BAD, BAD]


def test_degraded_instance_makes_the_service_degraded() -> None:
    """Issue 13 item 5: `degraded` from a probe is degraded in the state machine, not healthy."""
    st = HealthState(failures_to_down=3)
    st.observe_probe("svc", "1", OK, 0.0, "a")
    st.observe_probe("svc", "2", OK, 0.0, "b")
    assert moves(st.observe_probe("svc", "2", DEG, 1.0, "c")) == [("instance", DEG), ("service", DEG)]
    assert st.observe_probe("svc", "2", DEG, 2.0, "d") == []
    assert moves(st.observe_probe("svc", "2", OK, 3.0, "e")) == [("instance", OK), ("service", OK)]


def test_degraded_probe_through_the_monitor() -> None:
    mon = build_monitor(HealthSettings(failures_to_down=1))
    mon.observe(probe("api-service-1", True, "2026-01-01T00:00:00Z"))
    docs = mon.observe(probe("api-service-1", "degraded", "2026-01-01T00:00:02Z"))
    assert [d["health"]["to"] for _, d in docs] == [DEG, DEG]
    assert mon.state_of("api-service") == DEG


def test_degraded_and_deterministic_ids() -> None:
    mon = build_monitor(HealthSettings(failures_to_down=1))
    assert len(mon.observe(probe("api-service-1", True, "2026-01-01T00:00:00Z"))) == 2
    assert len(mon.observe(probe("api-service-2", True, "2026-01-01T00:00:00Z"))) == 1
    docs = mon.observe(probe("api-service-2", False, "2026-01-01T00:00:02Z"))
    assert [d["health"]["to"] for _, d in docs] == [BAD, DEG]
    assert mon.state_of("api-service") == DEG
    assert docs[0][1]["data_stream"] == {"type": "logs", "dataset": "elk.health", "namespace": "t"}
    assert docs[0][1]["@timestamp"] == "2026-01-01T00:00:02.000Z"
    again = build_monitor(HealthSettings(failures_to_down=1))
    again.observe(probe("api-service-1", True, "2026-01-01T00:00:00Z"))
    again.observe(probe("api-service-2", True, "2026-01-01T00:00:00Z"))
    assert [i for i, _ in again.observe(probe("api-service-2", False, "2026-01-01T00:00:02Z"))] == [i for i, _ in docs]
    assert mon.observe({"event": {"action": "log"}}) == []


OWN = {"provider": "elk-shipper"}  # what the shipper stamps on what it writes


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
        {"_source": {"@timestamp": "2026-01-01T00:01:00Z", "health": {"scope": "service", "to": "healthy"},
                     "service": {"name": "other"}}},
    ]
    hits = [{"_source": {**hit["_source"], "event": OWN}} for hit in hits] + [
        # issue 20 item 10: the marker in an array (the restore query's term matches it) is no state
        {"_source": {"event": {"provider": ["elk-shipper"]}, "@timestamp": "2026-01-01T00:02:00Z",
                     "health": {"scope": "service", "to": "healthy"}, "service": {"name": "svc"}}},
        {"_source": {"@timestamp": "2026-01-01T00:02:00Z", "health": {"scope": "service", "to": "healthy"},
                     "service": {"name": "forged"}}},
    ]
    apply_hits(st, hits, now=1e10, wanted=lambda s: s != "other")
    assert st.state_of("svc") == "unhealthy" and st.state_of("other") is None and st.state_of("forged") is None
    inst = st.instance("svc", "svc-1")
    assert inst is not None and inst.state == "unhealthy" and inst.seen == 1e10
    # Already unhealthy: more failures raise no duplicate transition after a restart.
    assert st.observe_probe("svc", "svc-1", BAD, 1e10, "x") == []


def test_silent_instances_become_unknown_then_forgotten() -> None:
    """Issue 13 item 2, the outage case: two probed replicas go down, a third reported healthy once and
    went away. It expires, so the service reads unhealthy (not degraded)."""
    st = HealthState(failures_to_down=1)
    st.observe_probe("api", "api-3", OK, 0.0, "push", seen=0.0)
    for node in ("api-1", "api-2"):
        st.observe_probe("api", node, OK, 0.0, node, seen=0.0)
    assert st.expire(5.0, unknown_after_s=10, forget_after_s=60) == []
    for t in (8.0, 12.0, 16.0):
        for node in ("api-1", "api-2"):
            st.observe_probe("api", node, BAD if t > 10 else OK, t, f"{node}{t}", seen=t)
    assert st.state_of("api") == DEG  # api-3 still vouches for it ...
    gone = st.expire(16.0, unknown_after_s=10, forget_after_s=60)
    assert moves(gone) == [("instance", "unknown"), ("service", BAD)]  # ... until it expires
    assert gone[0]["service"]["node"]["name"] == "api-3"
    assert st.state_of("api") == BAD
    assert st.expire(17.0, unknown_after_s=10, forget_after_s=60) == []  # once
    st.observe_probe("api", "api-1", BAD, 60.0, "x", seen=60.0)
    st.observe_probe("api", "api-2", BAD, 60.0, "y", seen=60.0)
    assert st.expire(61.0, unknown_after_s=10, forget_after_s=60) == []
    assert st.instance("api", "api-3") is None  # forgotten
    assert set(st.services["api"].instances) == {"api-1", "api-2"}


def test_a_push_only_instance_that_stops_pushing_is_not_healthy() -> None:
    st = HealthState()
    st.observe_probe("worker", "worker-1", OK, 0.0, "a", seen=0.0)
    assert moves(st.expire(30.0, unknown_after_s=10, forget_after_s=600)) == [("instance", "unknown"),
                                                                              ("service", "unknown")]
    assert st.state_of("worker") is None


def test_removed_instance_leaves_at_once() -> None:
    st = HealthState(failures_to_down=1)
    st.observe_probe("api", "api-1", OK, 0.0, "a")
    st.observe_probe("api", "api-2", BAD, 0.0, "b")
    assert st.state_of("api") == DEG
    assert moves(st.remove("api", "api-2", 1.0, "removed", "r")) == [("instance", "unknown"), ("service", OK)]
    assert st.instance("api", "api-2") is None
    assert st.remove("api", "api-2", 1.0, "removed", "r") == []


def test_twenty_thousand_instances_cost_the_same_per_transition() -> None:
    """Issue 13 item 3: every transition re-aggregated every instance (20,000 names took 199 s)."""
    st = HealthState(failures_to_down=1, max_instances=50_000)
    started = time.perf_counter()
    for n in range(20_000):
        st.observe_probe("api", f"api-{n}", OK, 0.0, str(n))
    for n in range(20_000):
        st.observe_probe("api", f"api-{n}", BAD, 1.0, f"b{n}")
    took = time.perf_counter() - started
    assert st.state_of("api") == BAD
    svc = st.services["api"]
    assert svc.counts[BAD] == 20_000 and svc.counts[OK] == 0
    assert took < 2.0, f"{took:.2f}s for 40,000 transitions"


def test_instances_per_service_are_capped_and_refusals_counted() -> None:
    mon = build_monitor(HealthSettings(max_instances_per_service=100))
    for n in range(150):
        mon.observe(probe(f"api-service-{n}", True, "2026-01-01T00:00:00Z"))
    assert len(mon.state.services["api-service"].instances) == 100
    assert mon.state.refused == 50
    from shipper.monitor import PipelineStatus

    mon.evaluate(time.time(), PipelineStatus())
    mon.evaluate(time.time(), PipelineStatus())
    assert "shipper_health_instances_refused_total 50" in mon.metrics()
    assert "shipper_health_instances 100" in mon.metrics()
    assert mon.capped_logged == {"api-service"}


def test_a_new_owner_replaying_probe_results_from_before_the_restored_transition_changes_nothing() -> None:
    """Issue 20 item 3: a replica that takes a health partition over restores the state from the
    index, then reads the partition from its committed offset, which may be older than the restored
    transition (seen in tests/health/test_e2e_replicas.py: the old owner's last commit lagged). The
    healthy results from before the service went down resolved the open alert ("healthy for 9s")
    and the failing ones after them fired it again. Results older than the restored transition are
    in it already; newer ones count as usual."""
    from shipper.health.restore import apply_hits

    st = HealthState(failures_to_down=3, successes_to_up=1)
    down_at = 1_000.0
    hits = [{"_source": {"@timestamp": ts, "health": {"scope": scope, "to": to}, "event": OWN,
                         "service": {"name": "svc", "node": {"name": "svc-1"}}}}
            for ts, to in (("1970-01-01T00:15:00Z", OK), ("1970-01-01T00:16:40Z", BAD))
            for scope in ("instance", "service")]
    apply_hits(st, hits, now=2_000.0)
    assert st.state_of("svc") == BAD
    for when in (910.0, 930.0, 950.0, 990.0):  # replayed: healthy, then the failures that took it down
        assert st.observe_probe("svc", "svc-1", OK if when < 990 else BAD, when, f"t{when}", seen=2_000.0) == []
    assert st.state_of("svc") == BAD
    assert st.observe_probe("svc", "svc-1", BAD, down_at + 2, "t2", seen=2_001.0) == []  # still down
    assert moves(st.observe_probe("svc", "svc-1", OK, down_at + 4, "t4", seen=2_002.0)) == [
        ("instance", OK), ("service", OK)]


def test_a_takeover_restores_the_newest_transition_not_the_oldest() -> None:
    """Issue 20 item 3: on an assignment the monitor restores the services it gained and keeps the
    ones in memory (`wanted` = owned and not in memory). That was asked per transition, so once the
    oldest transition of a service had made it, the newer ones were skipped: a service down for a
    minute came back as healthy since the start, its open alert was resolved and fired again
    (tests/health/test_e2e_replicas.py, 4 of 6 runs)."""
    from shipper.health.restore import apply_hits

    st = HealthState()
    st.observe_probe("kept", "kept-1", OK, 100.0, "t")
    hits = [{"_source": {"@timestamp": ts, "health": {"scope": scope, "to": to}, "event": OWN,
                         "service": {"name": name, "node": {"name": f"{name}-1"}}}}
            for name in ("gained", "kept")
            for ts, to in (("1970-01-01T00:01:40Z", OK), ("1970-01-01T00:03:20Z", BAD))
            for scope in ("instance", "service")]
    apply_hits(st, hits, now=300.0, wanted=lambda service: service not in st.services)
    assert st.state_of("gained") == BAD
    gained = st.services["gained"]
    assert gained.since == 200.0
    assert st.state_of("kept") == OK  # memory holds it: the index fills in nothing
