"""Pure units: stream signals (error rate, silence vs backlog) and the alert lifecycle."""

from __future__ import annotations

import time
from typing import Any

import pytest

from collector.contract.timefmt import format_epoch as iso
from collector.contract.timefmt import parse_epoch
from shipper.health.alerts import AlertBook
from shipper.health.alerts import restore_query as alert_restore_query
from shipper.health.config import HealthSettings, RuleSettings
from shipper.health.monitor import HealthMonitor
from shipper.health.signals import Signals, event_time
from shipper.monitor import PipelineStatus

T0 = 1_790_000_000.0  # in the past: error buckets clamp to the real clock
CAUGHT_UP = {"elk-logs/0": 0}


def rec(service: str, when: float, level: str = "info") -> dict[str, Any]:
    return {"@timestamp": iso(when), "log": {"level": level}, "service": {"name": service}, "message": "m"}


def test_event_time_fast_and_slow_forms() -> None:
    assert event_time({"@timestamp": iso(T0 + 0.25)}) == pytest.approx(T0 + 0.25)
    assert event_time({"@timestamp": "2027-01-15T08:00:00+00:00"}) == pytest.approx(1800000000.0)
    assert event_time({"@timestamp": "garbage"}) is None


def test_silence_only_while_caught_up() -> None:
    rules = RuleSettings(silence_s=5)
    sig = Signals()
    sig.observe(rec("api", T0))
    sig.pipeline(T0 + 2, CAUGHT_UP, 0)
    assert sig.silence("api", T0 + 3, rules)[0] is False
    assert sig.streams["api"].last_event == T0
    assert sig.silence("api", T0 + 5.5, rules)[0] is None  # caught up only 3.5 s: cannot tell yet
    sig.pipeline(T0 + 7.5, CAUGHT_UP, 0)
    assert sig.silence("api", T0 + 7.5, rules)[0] is True
    assert sig.silence("other", T0 + 6, rules)[0] is None  # never seen


def test_backlog_never_reads_as_silence() -> None:
    """Draining records five minutes old: lag high, then event time old, then caught up and fresh."""
    rules = RuleSettings(silence_s=5)
    sig = Signals(caught_up_max_lag=100, max_event_delay_s=30)
    now = T0
    for step in range(20):  # lag over the limit while draining
        sig.observe(rec("api", T0 - 300 + step))
        sig.pipeline(now, {"elk-logs/0": 10_000 - step * 500}, 0)
        assert sig.silence("api", now, rules)[0] is None
        now += 1
    # lag reads 0 but the records still being processed are minutes old: still behind
    sig.observe(rec("api", T0 - 200))
    sig.pipeline(now, {"elk-logs/0": 0}, 0)
    assert sig.caught_up_since is None and sig.silence("api", now, rules)[0] is None
    sig.observe(rec("api", now - 0.5))  # the tail of the backlog is live
    sig.pipeline(now + 1, {"elk-logs/0": 0}, 0)
    assert sig.silence("api", now + 1, rules)[0] is False
    # ... and a real stop afterwards is reported once caught up for longer than the threshold
    assert sig.silence("api", now + 7, rules)[0] is True


def test_seeded_service_from_the_index_goes_silent() -> None:
    from shipper.health.signals import seed_from

    rules = RuleSettings(silence_s=5)
    sig = Signals()
    result = {"aggregations": {"services": {"buckets": [{"key": "gone", "last": {"value": (T0 - 60) * 1000}}]}}}
    assert seed_from(sig, result) == 1
    sig.pipeline(T0, CAUGHT_UP, 0)
    assert sig.silence("gone", T0, rules)[0] is None  # just caught up
    sig.pipeline(T0 + 6, CAUGHT_UP, 0)
    assert sig.silence("gone", T0 + 6, rules)[0] is True
    assert sig.error_spike("gone", T0 + 6, RuleSettings())[0] is None  # no error history from before
    sig.observe(rec("gone", T0 + 6))
    sig.pipeline(T0 + 7, CAUGHT_UP, 0)
    assert sig.silence("gone", T0 + 7, rules)[0] is False
    assert sig.streams["gone"].first_event == T0 + 6


def test_error_spike_against_own_baseline() -> None:
    rules = RuleSettings(error_window_s=60, error_baseline_windows=5, error_rate_factor=3, error_min_count=10)
    sig = Signals(error_window_s=60, history_windows=5)
    sig.observe(rec("noisy", T0))
    sig.pipeline(T0 + 30, CAUGHT_UP, 0)
    assert sig.error_spike("noisy", T0 + 30, rules)[0] is None  # no baseline yet
    # 20 errors a minute is this service's normal: no spike
    for minute in range(6):
        for i in range(20):
            when = T0 + minute * 60 + i * 3
            sig.observe(rec("noisy", when, "error"))
    now = T0 + 6 * 60 - 1
    sig.pipeline(now, CAUGHT_UP, 0)
    active, why = sig.error_spike("noisy", now, rules)
    assert active is False, why
    # a burst of 100 errors in the current minute: 3x the baseline of ~20
    for i in range(100):
        sig.observe(rec("noisy", now - 30 + i * 0.3, "error"))
    active, why = sig.error_spike("noisy", now, rules)
    assert active is True and "baseline" in why


def test_error_spike_quiet_service_needs_min_count() -> None:
    rules = RuleSettings(error_window_s=60, error_baseline_windows=5, error_min_count=10)
    sig = Signals(error_window_s=60, history_windows=5)
    sig.observe(rec("quiet", T0))
    now = T0 + 300
    for i in range(9):
        sig.observe(rec("quiet", now - 10 + i, "critical"))
    sig.pipeline(now, CAUGHT_UP, 0)
    assert sig.error_spike("quiet", now, rules)[0] is False
    sig.observe(rec("quiet", now - 0.5, "critical"))
    assert sig.error_spike("quiet", now, rules)[0] is True


def book(**rules: Any) -> AlertBook:
    settings = HealthSettings(**rules)
    return AlertBook(settings.rules_for, "t")


def actions(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [e["event"]["action"] for _, e in events]


def test_fire_once_renotify_resolve() -> None:
    b = book(renotify_s=60)
    key = ("unhealthy", "api")
    fired = b.evaluate(T0, {key: (True, "down")})
    assert actions(fired) == ["fired"]
    doc_id, doc = fired[0]
    assert doc["alert"]["state"] == "open" and doc["alert"]["severity"] == "critical"
    assert doc["data_stream"] == {"type": "logs", "dataset": "elk.alerts", "namespace": "t"}
    assert doc_id == f"{doc['alert']['id']}-fired"
    assert b.evaluate(T0 + 1, {key: (True, "down")}) == []
    assert b.evaluate(T0 + 2, {key: (None, "?")}) == []  # unknown keeps it open
    assert actions(b.evaluate(T0 + 61, {key: (True, "down")})) == ["renotified"]
    assert b.evaluate(T0 + 62, {key: (True, "down")}) == []
    resolved = b.evaluate(T0 + 70, {key: (False, "up")})
    assert actions(resolved) == ["resolved"]
    assert resolved[0][1]["alert"]["id"] == doc["alert"]["id"]
    assert resolved[0][1]["alert"]["duration_ms"] == 70_000
    again = b.evaluate(T0 + 80, {key: (True, "down")})
    assert actions(again) == ["fired"] and again[0][1]["alert"]["id"] != doc["alert"]["id"]


def test_one_alert_per_rule_and_service() -> None:
    b = book()
    events = b.evaluate(T0, {("unhealthy", "a"): (True, ""), ("unhealthy", "b"): (True, ""),
                             ("silence", "a"): (True, "")})
    assert len(events) == 3 and len({e["alert"]["id"] for _, e in events}) == 3


def test_flapping_is_suppressed() -> None:
    b = book(flap_changes=3, flap_window_s=600, flap_quiet_s=60)
    key = ("unhealthy", "api")
    out: list[str] = []
    now = T0
    for _ in range(10):  # on 10 s, off 10 s
        out += actions(b.evaluate(now, {key: (True, "")}))
        out += actions(b.evaluate(now + 10, {key: (False, "")}))
        now += 20
    # two normal cycles, then the third activation makes it flap: it stays open through the rest
    assert out == ["fired", "resolved", "fired", "resolved", "fired"]
    assert b.evaluate(now + 30, {key: (False, "")}) == []
    late = b.evaluate(now + 200, {key: (False, "")})
    assert actions(late) == ["resolved"] and late[0][1]["alert"]["flapping"] is True


def test_restore_keeps_open_alerts_without_refiring() -> None:
    b = book()
    fired = b.evaluate(T0, {("silence", "api"): (True, ""), ("unhealthy", "db"): (True, "")})
    resolved = b.evaluate(T0 + 5, {("unhealthy", "db"): (False, "")})
    # newest first, marked as the shipper marks what it writes
    hits = [{"_source": {**doc, "event": {**doc["event"], "provider": "elk-shipper"}}}
            for _, doc in reversed(fired + resolved)]
    # issue 20 item 10: a newer "resolved" with the marker in an array is no event of ours
    forged = {**fired[0][1], "event": {**fired[0][1]["event"], "action": "resolved", "provider": ["elk-shipper"]}}
    restored = book()
    assert restored.restore([{"_source": forged}, *hits]) == 1
    assert restored.evaluate(T0 + 10, {("silence", "api"): (True, "")}) == []
    assert actions(restored.evaluate(T0 + 11, {("unhealthy", "db"): (True, "")})) == ["fired"]
    out = restored.evaluate(T0 + 12, {("silence", "api"): (False, "")})
    assert actions(out) == ["resolved"] and out[0][1]["alert"]["id"] == fired[0][1]["alert"]["id"]


def test_per_service_overrides() -> None:
    settings = HealthSettings(services={"api": {"silence_s": 7, "error_rate": False}})
    assert settings.rules_for("api").silence_s == 7 and settings.rules_for("api").error_rate is False
    assert settings.rules_for("other").silence_s == settings.rules.silence_s
    with pytest.raises(ValueError):
        HealthSettings(services={"api": {"silense_s": 7}})


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipper.config import ShipperSettings

    monkeypatch.setenv("SHIPPER_HEALTH__WEBHOOK_URLS", "http://a.example/x?token=1, http://b.example/y")
    monkeypatch.setenv("SHIPPER_HEALTH__SLACK_WEBHOOK_URLS", "https://hooks.slack.example/T/B/secret")
    monkeypatch.setenv("SHIPPER_HEALTH__SILENCE_S", "9")
    monkeypatch.setenv("SHIPPER_HEALTH__SERVICES", '{"api": {"silence_s": 3}}')
    health = ShipperSettings().health
    assert [k for k, _ in health.urls()] == ["json", "json", "slack"]
    assert health.rules.silence_s == 9 and health.rules_for("api").silence_s == 3
    assert "secret" not in repr(health)


def test_monitor_pipeline_rules_and_health_rule() -> None:
    settings = HealthSettings(failures_to_down=1, dead_letter_min=2, dead_letter_window_s=60, lag_max=100,
                              lag_for_s=2)
    mon = HealthMonitor(settings, "t")
    probe = {"@timestamp": iso(T0), "event": {"action": "health-check", "dataset": "elk.health"},
             "service": {"name": "api", "node": {"name": "api-1"}}, "health": {"status": "unhealthy"}}
    assert len(mon.observe(probe)) == 2
    status = PipelineStatus(lag_by_partition={"p/0": 500}, lag_total=500, dead_lettered_total=0)
    events = mon.evaluate(T0 + 1, status)
    assert actions(events) == ["fired"] and events[0][1]["rule"]["id"] == "unhealthy"
    status.dead_lettered_total = 5
    events = mon.evaluate(T0 + 2, status)
    assert sorted(e["rule"]["id"] for _, e in events) == ["dead_letter"]
    events = mon.evaluate(T0 + 3.5, status)
    assert [e["rule"]["id"] for _, e in events] == ["consumer_lag"]
    assert all(e["service"]["name"] == "elk-shipper" for _, e in events)
    status.lag_total, status.lag_by_partition = 0, {"p/0": 0}
    events = mon.evaluate(T0 + 4, status)
    assert [(e["rule"]["id"], e["event"]["action"]) for _, e in events] == [("consumer_lag", "resolved")]


class _FlakyEngine:
    """Answers the restore queries from canned hits after `fail` EngineUnavailable answers."""

    def __init__(self, fail: int, alert_hits: list[dict[str, Any]]) -> None:
        self.fail, self.alert_hits, self.calls = fail, alert_hits, 0

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        return {}

    async def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        from shipper.engines.base import EngineUnavailable

        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise EngineUnavailable("503: search_phase_execution_exception")
        return {"hits": {"hits": self.alert_hits if "alerts" in index else []}}


async def test_start_waits_for_a_briefly_unavailable_engine() -> None:
    fired = book().evaluate(T0, {("silence", "api"): (True, "")})
    engine = _FlakyEngine(fail=2, alert_hits=[{"_source": {**doc, "event": {**doc["event"], "provider": "elk-shipper"}}}
                                              for _, doc in fired])
    mon = HealthMonitor(HealthSettings(), "t")
    await mon.start(engine, restore_within_s=10)  # type: ignore[arg-type]
    try:
        assert engine.calls == 2 + 3 and len(mon.book.open) == 1
    finally:
        await mon.stop()


async def test_start_gives_up_and_starts_fresh() -> None:
    engine = _FlakyEngine(fail=1000, alert_hits=[])
    mon = HealthMonitor(HealthSettings(), "t")
    await mon.start(engine, restore_within_s=1.2)  # type: ignore[arg-type]
    try:
        assert 2 <= engine.calls <= 3 and not mon.book.open
    finally:
        await mon.stop()


def test_monitor_metrics_show_state_open_alerts_and_webhooks() -> None:
    mon = HealthMonitor(HealthSettings(failures_to_down=1), "t")
    probe = {"@timestamp": iso(T0), "event": {"action": "health-check", "dataset": "elk.health"},
             "service": {"name": "api", "node": {"name": "api-1"}}, "health": {"status": "unhealthy"}}
    mon.observe(probe)
    mon.book.evaluate(T0, {("unhealthy", "api"): (True, "")})
    mon.notifier.stats.failed, mon.notifier.stats.retried = 2, 5
    lines = mon.metrics()
    assert 'shipper_service_health{service="api",state="unhealthy"} 1' in lines
    assert 'shipper_alerts_open{rule="unhealthy",service="api"} 1' in lines
    assert 'shipper_webhook_deliveries_total{outcome="failed"} 2' in lines
    assert "shipper_webhook_retries_total 5" in lines


def test_error_ratio_counts_levels_and_http_5xx_with_a_minimum_volume() -> None:
    """Issue 13 item 4: 81% of requests got a 502 -> the ratio rule is on whatever the baseline."""
    rules = RuleSettings(error_window_s=60, error_ratio_max=0.2, error_ratio_min_records=50)
    sig = Signals(error_window_s=60)
    now = T0 + 600
    sig.observe(rec("nginx", now - 120))  # watched for a full window (item 20.5)
    for i in range(40):  # too few records to judge, all errors
        sig.observe({**rec("nginx", now - 30 + i * 0.5), "http": {"response": {"status_code": 502}}})
    assert sig.error_ratio("nginx", now, rules)[0] is None  # too few records to judge
    for i in range(60):
        code = 502 if i % 10 else 200
        sig.observe({**rec("nginx", now - 20 + i * 0.3), "http": {"response": {"status_code": code}}})
    active, why = sig.error_ratio("nginx", now, rules)
    assert active is True and "94 of 100" in why, why
    calm = Signals(error_window_s=60)
    calm.observe(rec("api", now - 120))
    for i in range(100):
        calm.observe(rec("api", now - 30 + i * 0.3, "err" if i % 10 == 0 else "info"))  # 10%: an alias counts
    active, why = calm.error_ratio("api", now, rules)
    assert active is False and "10 of 100" in why, why


def test_windows_in_alert_stay_out_of_the_baseline() -> None:
    """The incident must not raise its own baseline: errors keep coming at the incident's rate, and
    the spike alert stays on while they do (on main it resolved itself once the incident filled the
    baseline windows)."""
    rules = RuleSettings(error_window_s=60, error_baseline_windows=3, error_rate_factor=3, error_min_count=10)
    mon = HealthMonitor(HealthSettings(error_window_s=60, error_baseline_windows=3, error_rate_factor=3,
                                       error_min_count=10, silence=False, error_ratio=False), "t")
    start = T0 - 3000
    when = start
    for _ in range(5 * 60):  # 5 calm minutes: one error a minute
        mon.observe(rec("api", when, "error" if int(when - start) % 60 == 0 else "info"))
        when += 1
    now = when
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    assert mon.evaluate(now, status) == []
    fired: list[str] = []
    for _ in range(6 * 60):  # the incident: 2 errors a second for 6 minutes
        mon.observe(rec("api", when, "error"))
        mon.observe(rec("api", when + 0.5, "error"))
        when += 1
        if int(when) % 10 == 0:
            fired += actions(mon.evaluate(when, status))
    assert fired == ["fired"], fired
    assert mon.signals.error_spike("api", when, rules)[0] is True
    for _ in range(2 * 60):  # calm again: it resolves
        mon.observe(rec("api", when, "info"))
        when += 1
        if int(when) % 10 == 0:
            fired += actions(mon.evaluate(when, status))
    assert fired == ["fired", "resolved"], fired


def test_a_partition_without_a_known_lag_is_not_caught_up() -> None:
    """Just after a rebalance a newly assigned partition has no high watermark yet: its lag is
    unknown, and the records of its services may not have been read. Counting the replica as
    caught up then reported a service that kept logging as silent."""
    rules = RuleSettings(silence_s=5)
    sig = Signals()
    sig.seed("api", iso(T0 - 20))
    sig.pipeline(T0, {"logs/0": 0}, 0, partitions=["logs/0", "logs/1"])
    sig.pipeline(T0 + 10, {"logs/0": 0}, 0, partitions=["logs/0", "logs/1"])
    assert sig.caught_up_since is None and sig.silence("api", T0 + 10, rules)[0] is None
    sig.pipeline(T0 + 11, {"logs/0": 0, "logs/1": 3}, 0, partitions=["logs/0", "logs/1"])
    assert sig.caught_up_since == T0 + 11


# ---------------------------------------------------------------- issue 20 item 5: error-ratio math

RATIO = RuleSettings(error_window_s=60, error_ratio_max=0.2, error_ratio_resolve=0.1, error_ratio_min_records=50)


def test_error_ratio_counts_log_records_only() -> None:
    """60 log lines at 50 % errors plus 120 metric documents of the same service: 50 %, not 17 %."""
    sig = Signals(error_window_s=60)
    now = T0 + 600
    sig.observe(rec("api", now - 120))  # watched for longer than a window
    for i in range(60):
        sig.observe({**rec("api", now - 50 + i * 0.5, "error" if i % 2 else "info"),
                     "data_stream": {"type": "logs", "dataset": "api", "namespace": "t"}})
    for i in range(120):
        sig.observe({"@timestamp": iso(now - 50 + i * 0.25), "service": {"name": "api"},
                     "data_stream": {"type": "metrics", "dataset": "api", "namespace": "t"}, "cpu": {"pct": 1}})
    active, why = sig.error_ratio("api", now, RATIO)
    assert active is True and "30 of 60" in why, why


def test_error_ratio_needs_a_full_window_of_data() -> None:
    """16 s of data, all errors, well over the minimum volume: not yet a window's ratio."""
    sig = Signals(error_window_s=60)
    now = T0 + 600
    for i in range(80):
        sig.observe(rec("api", now - 16 + i * 0.2, "error"))
    active, why = sig.error_ratio("api", now, RATIO)
    assert active is None and "under 60s of data" in why, why
    for i in range(60):
        sig.observe(rec("api", now + 1 + i * 0.75, "error"))
    assert sig.error_ratio("api", now + 46, RATIO)[0] is True


def test_error_ratio_resolves_under_a_lower_threshold() -> None:
    """Fired at 30 %, then hovering at 15 % (between resolve and fire): stays open, no fire-resolve-fire."""
    mon = HealthMonitor(HealthSettings(error_window_s=60, error_ratio_max=0.2, error_ratio_resolve=0.1,
                                       silence=False, error_rate=False), "t")
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    start = T0 - 3000
    when, got = start, []

    def second(share: float) -> None:
        nonlocal when
        for i in range(20):
            mon.observe(rec("api", when + i * 0.05, "error" if i < share * 20 else "info"))
        when += 1
        got.extend(actions(mon.evaluate(when, status)))

    for share in [0.3] * 70 + [0.15] * 120:
        second(share)
    assert got == ["fired"], got
    for _ in range(70):
        second(0.05)
    assert got == ["fired", "resolved"], got


def test_resolve_threshold_over_fire_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="error_ratio_resolve"):
        HealthSettings(error_ratio_max=0.2, error_ratio_resolve=0.3)
    with pytest.raises(ValueError, match="api"):
        HealthSettings(services={"api": {"error_ratio_max": 0.05}})


# ---------------------------------------------------------------- issue 20 item 4: every alert ends, saying why

def probe_rec(service: str, node: str, when: float, status: str = "unhealthy",
              action: str = "health-check") -> dict[str, Any]:
    return {"@timestamp": iso(when), "event": {"action": action, "dataset": "elk.health"},
            "service": {"name": service, "node": {"name": node}}, "health": {"status": status}}


def resolutions(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str | None]]:
    return [(e["rule"]["id"], e["event"]["action"], e["alert"].get("resolution")) for _, e in events
            if e["event"]["kind"] == "alert"]


def test_a_removed_service_ends_its_alerts_on_removal() -> None:
    mon = HealthMonitor(HealthSettings(failures_to_down=1, silence_s=5), "t")
    now = time.time()  # a probe result is judged at once only when it is recent
    assert resolutions(mon.observe(probe_rec("api", "api-1", now))) == [("unhealthy", "fired", None)]
    mon.observe(rec("api", now))
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    mon.evaluate(now + 1, status)
    assert resolutions(mon.evaluate(now + 20, status)) == [("silence", "fired", None)]
    docs = mon.observe(probe_rec("api", "api-1", now + 21, action="health-removed"))
    ended = [d for d in docs if d[1]["event"]["kind"] == "alert"]
    assert sorted(resolutions(ended)) == [("silence", "resolved", "service_removed"),
                                          ("unhealthy", "resolved", "service_removed")]
    assert "removed" in ended[0][1]["alert"]["reason"]
    assert not mon.book.open and mon.evaluate(now + 60, status) == []  # nothing fires for it again


def test_an_error_ratio_alert_ends_when_traffic_stops() -> None:
    """Below the minimum volume the rule cannot tell; within no_data_windows windows the alert ends."""
    mon = HealthMonitor(HealthSettings(error_window_s=60, silence=False, error_rate=False, no_data_windows=3), "t")
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    when, got = T0 - 3000, []
    for _ in range(90):
        for i in range(4):
            mon.observe(rec("api", when + i * 0.2, "error" if i < 2 else "info"))
        when += 1
        got += resolutions(mon.evaluate(when, status))
    assert got == [("error_ratio", "fired", None)]
    stopped = when
    while when < stopped + 5 * 60:  # traffic stopped
        when += 1
        got += resolutions(mon.evaluate(when, status))
    assert got == [("error_ratio", "fired", None), ("error_ratio", "resolved", "no_data")]
    ended = mon.book.last_event[("error_ratio", "api")][1]
    assert "no data since" in ended["alert"]["reason"]
    assert parse_epoch(ended["alert"]["resolved"]) <= stopped + 60 + 3 * 60 + 1


def test_silence_of_a_one_off_job_ends_and_is_not_renotified_for_ever() -> None:
    mon = HealthMonitor(HealthSettings(silence_s=10, renotify_s=60, silence_forget_s=300, error_rate=False,
                                       error_ratio=False), "t")
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    mon.observe(rec("nightly-job", T0))
    got = []
    for t in range(1, 3600):
        got += resolutions(mon.evaluate(T0 + t, status))
    assert got[0] == ("silence", "fired", None) and got[-1] == ("silence", "resolved", "no_data"), got
    assert got.count(("silence", "renotified", None)) <= 300 // 60
    assert "nightly-job" not in mon.signals.streams and not mon.book.open


async def test_a_restored_alert_of_a_service_that_is_gone_ends() -> None:
    """After a restart the open alert is restored; its service never reports again: it ends (no data)
    instead of staying open until it falls out of the restore query's range, unresolved."""
    fired = book().evaluate(T0, {("unhealthy", "gone"): (True, "")})
    mon = HealthMonitor(HealthSettings(forget_after_s=600), "t")
    hits = [{"_source": {**doc, "event": {**doc["event"], "provider": "elk-shipper"}}} for _, doc in fired]
    await mon.start(_FlakyEngine(fail=0, alert_hits=hits))  # type: ignore[arg-type]
    await mon.stop()
    assert ("unhealthy", "gone") in mon.book.open
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    got = []
    for t in range(0, 700, 5):
        got += resolutions(mon.evaluate(T0 + 100 + t, status))
    assert got == [("unhealthy", "resolved", "no_data")]
    assert "range" not in str(alert_restore_query())


# ---------------------------------------------------------------- issue 20 item 7: bounded services, O(changed)

def test_services_beyond_the_cap_are_counted_and_raise_one_alert() -> None:
    """50,000 service names from one producer: at most max_services tracked, the rest counted, one
    tracking_cap alert; when they all go silent one tick holds at most max_services alerts."""
    mon = HealthMonitor(HealthSettings(silence_s=10, error_rate=False, error_ratio=False), "t")
    assert mon.settings.max_services == 1000
    for n in range(50_000):
        mon.observe(rec(f"svc-{n}", T0))
    assert len(mon.signals.streams) == 1000 and mon.signals.refused == 49_000
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    got = resolutions(mon.evaluate(T0 + 1, status))
    assert got == [("tracking_cap", "fired", None)]
    assert "49000 log records" in mon.book.last_event[("tracking_cap", "elk-shipper")][1]["alert"]["reason"]
    assert "shipper_health_services_refused_total{kind=\"logs\"} 49000" in mon.metrics()
    per_tick = [len(resolutions(mon.evaluate(T0 + t, status))) for t in range(2, 30)]
    assert max(per_tick) <= 1000 and sum(per_tick) == 1000  # each tracked service's silence, once
    mon.observe(rec("svc-49999", T0 + 30))  # still refused: counted, the alert stays open
    assert resolutions(mon.evaluate(T0 + 31, status)) == []
    assert resolutions(mon.evaluate(T0 + 300, status)) == []
    assert resolutions(mon.evaluate(T0 + 31 + 301, status)) == [("tracking_cap", "resolved", "recovered")]


def test_records_sent_to_the_catch_all_stream_raise_one_stream_cap_alert() -> None:
    """Past SHIPPER_MAX_STREAMS (shipper/streamcap.py) one alert says so while records keep
    overflowing, and resolves CAP_QUIET_S after the last one."""
    mon = HealthMonitor(HealthSettings(silence=False, error_rate=False, error_ratio=False), "t")
    quiet = PipelineStatus(lag_by_partition=CAUGHT_UP)
    assert resolutions(mon.evaluate(T0, quiet)) == []
    over = PipelineStatus(lag_by_partition=CAUGHT_UP, stream_overflow_total=160)
    assert resolutions(mon.evaluate(T0 + 1, over)) == [("stream_cap", "fired", None)]
    assert "160 records" in mon.book.last_event[("stream_cap", "elk-shipper")][1]["alert"]["reason"]
    more = PipelineStatus(lag_by_partition=CAUGHT_UP, stream_overflow_total=170)
    assert resolutions(mon.evaluate(T0 + 200, more)) == []  # still open, not fired again
    assert resolutions(mon.evaluate(T0 + 450, more)) == []
    assert resolutions(mon.evaluate(T0 + 501, more)) == [("stream_cap", "resolved", "recovered")]
    off = HealthMonitor(HealthSettings(stream_cap=False, silence=False, error_rate=False, error_ratio=False), "t")
    assert resolutions(off.evaluate(T0 + 1, over)) == []


def test_instances_beyond_the_global_cap_are_refused_and_counted() -> None:
    mon = HealthMonitor(HealthSettings(max_instances=100), "t")
    now = time.time()
    for service in range(10):
        for node in range(20):
            mon.observe(probe_rec(f"svc-{service}", f"node-{node}", now, status="healthy"))
    assert mon.state.instances_total == 100 and mon.state.refused_total == 100
    assert "shipper_health_instances_refused_total 100" in mon.metrics()
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    assert ("tracking_cap", "fired", None) in resolutions(mon.evaluate(now + 1, status))
    # an instance that is forgotten frees its place
    mon.observe(probe_rec("svc-0", "node-0", now + 2, action="health-removed"))
    mon.observe(probe_rec("svc-9", "node-19", now + 3, status="healthy"))
    assert mon.state.instance("svc-9", "node-19") is not None and mon.state.instances_total == 100


def test_a_tick_looks_only_at_what_changed() -> None:
    """1000 services logged once; afterwards three keep logging: a tick looks at those three, not at
    all 1000 (on main every tick judged every rule of every service)."""
    mon = HealthMonitor(HealthSettings(silence_s=120), "t")
    calls: list[str] = []
    silence = mon.signals.silence

    def counted(service: str, now: float, rules: RuleSettings) -> tuple[bool | None, str]:
        calls.append(service)
        return silence(service, now, rules)

    mon.signals.silence = counted  # type: ignore[method-assign]
    for n in range(1000):
        mon.observe(rec(f"svc-{n}", T0))
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    mon.evaluate(T0 + 1, status)
    assert len(calls) == 1000
    per_tick = []
    for t in range(2, 100):
        calls.clear()
        for n in range(3):
            mon.observe(rec(f"svc-{n}", T0 + t))
        mon.evaluate(T0 + t, status)
        per_tick.append(len(calls))
    assert max(per_tick) <= 3, per_tick
    # ... and the other 997 are still judged when their time comes
    events = resolutions(mon.evaluate(T0 + 121.5, status))
    assert events.count(("silence", "fired", None)) == 997


def test_an_undecided_alert_with_a_renotify_due_is_not_looked_at_every_tick() -> None:
    """Open silence alerts while the shipper is behind (cannot tell): their renotify is due, yet a
    tick looks at them once per bucket, not every tick."""
    mon = HealthMonitor(HealthSettings(silence_s=5, renotify_s=30, error_rate=False, error_ratio=False), "t")
    for n in range(200):
        mon.observe(rec(f"svc-{n}", T0))
    status = PipelineStatus(lag_by_partition=CAUGHT_UP)
    for t in range(1, 12):
        mon.evaluate(T0 + t, status)
    assert len(mon.book.open) == 200
    behind = PipelineStatus(lag_by_partition={"elk-logs/0": 10_000})
    looked = []
    for t in range(12, 120):
        mon.evaluate(T0 + t, behind)
        looked.append(mon.looked)
    assert sum(looked) <= 200 * (108 // 10 + 2), looked
