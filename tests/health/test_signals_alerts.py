"""Pure units: stream signals (error rate, silence vs backlog) and the alert lifecycle."""

from __future__ import annotations

from typing import Any

import pytest

from collector.contract.timefmt import format_epoch as iso
from shipper.health.alerts import AlertBook
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
    for i in range(40):  # too few records to judge, all errors
        sig.observe({**rec("nginx", now - 30 + i * 0.5), "http": {"response": {"status_code": 502}}})
    assert sig.error_ratio("nginx", now, rules)[0] is None  # too few records to judge
    for i in range(60):
        code = 502 if i % 10 else 200
        sig.observe({**rec("nginx", now - 20 + i * 0.3), "http": {"response": {"status_code": code}}})
    active, why = sig.error_ratio("nginx", now, rules)
    assert active is True and "94 of 100" in why, why
    calm = Signals(error_window_s=60)
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
