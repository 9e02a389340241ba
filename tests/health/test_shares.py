"""Pure units of issue 20 item 6: one owner per service stream whatever partition its records arrive
on, the stream shares that carry another replica's counts to it, and the bound on those counts."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from collector.contract.streams import SHARE_HEADER
from collector.contract.timefmt import format_epoch as iso
from shipper.health.config import HealthSettings, RuleSettings
from shipper.health.monitor import HealthMonitor
from shipper.health.ownership import STREAM, Ownership, partition_of
from shipper.health.shares import MAX_SERVICES_PER_SHARE, Share, decode, encode
from shipper.health.signals import Signals, Stream
from shipper.monitor import PipelineStatus
from shipper.provenance import Meta

SERVICE = "shop"
TOPICS = ["logs", "health"]


def rec(service: str, when: float, level: str = "info") -> dict[str, Any]:
    return {"@timestamp": iso(when), "log": {"level": level}, "service": {"name": service}, "message": "m"}


def as_messages(out: list[tuple[str, int, bytes]], first_offset: int = 0) -> list[Meta]:
    """What the owner reads of the shares a replica produced."""
    return [Meta(topic, partition, first_offset + n, 0, None, [(SHARE_HEADER, b"1")], value)
            for n, (topic, partition, value) in enumerate(out)]


def test_a_stream_has_one_owner_whatever_topic_its_records_come_from() -> None:
    """Two logs topics shared round robin: the name's partition of each topic may be anybody's; the
    first logs topic's decides (on main a replica owned it through either topic: two owners)."""
    topics = ["logs-a", "logs-b", "health"]
    replicas = [Ownership(topics, frozenset({"health"})) for _ in range(3)]
    flat = [(t, p) for t in topics for p in range(4)]
    for i, own in enumerate(replicas):
        own.assign([tp for n, tp in enumerate(flat) if n % 3 == i], dict.fromkeys(topics, 4))
    for service in (f"svc-{n}" for n in range(300)):
        owners = [r for r in replicas if r.owns(STREAM, service)]
        assert len(owners) == 1, service
        assert owners[0].home(service) == ("logs-a", partition_of(service, 4))


async def test_a_service_read_by_two_replicas_is_counted_once_by_its_owner() -> None:
    """Records of one service on two partitions (two keys mapped to it): the reader that does not own
    its stream sends its counts on; the owner's stream is the union, exactly, and a redelivered share
    is merged once."""
    counts = {"logs": 2, "health": 2}
    home = partition_of(SERVICE, 2)
    owner, other = (HealthMonitor(HealthSettings(), "t", TOPICS, frozenset({"health"})) for _ in range(2))
    sent: list[tuple[str, int, bytes]] = []

    async def forward(messages: list[tuple[str, int, bytes]]) -> None:
        sent.extend(messages)

    other.forward = forward
    await owner.partitions_assigned([("logs", home), ("health", home)], counts)
    await other.partitions_assigned([("logs", 1 - home), ("health", 1 - home)], counts)
    now = time.time()
    for n in range(30):  # the owner's key: all fine
        owner.observe(rec(SERVICE, now - 30 + n), Meta("logs", home, n, 0))
    for n in range(10):  # the other key: all errors
        other.observe(rec(SERVICE, now - 30 + n, "error"), Meta("logs", 1 - home, n, 0))
    assert SERVICE not in other.signals.streams  # exactly one replica evaluates it
    await other.flush_shares(now)
    assert [(t, p) for t, p, _ in sent] == [("logs", home)]
    assert owner.receive_shares(as_messages(sent, 100)) == []
    assert owner.receive_shares(as_messages(sent, 100)) == []  # redelivered: merged once
    stream = owner.signals.streams[SERVICE]
    assert (sum(stream.records.values()), sum(stream.errors.values())) == (40, 10)
    assert stream.max_ts == iso(now - 1) and stream.min_ts == iso(now - 30)
    assert (owner.signals.counted, owner.signals.merged, other.forwarded) == (30, 10, 10)
    rules = RuleSettings(error_window_s=60, error_ratio_min_records=20)
    assert owner.signals.error_ratio(SERVICE, now, rules)[1].startswith("10 of 40 records")
    # another consumer group shipping the same topics has owners of its own
    owner.group = "another"
    assert owner.receive_shares(as_messages(sent, 200)) == []
    assert sum(owner.signals.streams[SERVICE].records.values()) == 40 and owner.misrouted == 0
    # the reader that does not own the service never judges it, even from shares that reach it
    assert other.receive_shares(as_messages(sent, 100)) == []
    assert SERVICE not in other.signals.streams and other.misrouted == 10
    await owner.stop()
    await other.stop()


async def test_the_counts_kept_for_other_owners_are_bounded() -> None:
    """At most max_services services owned elsewhere are counted between two ticks; records of
    further ones are refused (counted, tracking_cap alert) and the others still go on."""
    # it leads (health/0 is the first topic's partition 0: the pipeline-scoped rules) and owns no stream
    mon = HealthMonitor(HealthSettings(max_services=3), "t", ["health", "logs"], frozenset({"health"}))
    sent: list[tuple[str, int, bytes]] = []

    async def forward(messages: list[tuple[str, int, bytes]]) -> None:
        sent.extend(messages)

    mon.forward = forward
    await mon.partitions_assigned([("health", 0)], {"logs": 1, "health": 1})
    now = time.time()
    for n in range(5):
        for _ in range(2):
            mon.observe(rec(f"svc-{n}", now))
    assert sorted(mon.signals.partial) == ["svc-0", "svc-1", "svc-2"]
    assert mon.signals.partial_refused == 4 and not mon.signals.streams
    await mon.flush_shares(now)
    assert mon.signals.partial == {} and mon.forwarded == 6
    shared = [s for _, _, v in sent for s in orjson.loads(v)["share"]["services"]]
    assert sorted(s["name"] for s in shared) == ["svc-0", "svc-1", "svc-2"]
    mon.observe(rec("svc-4", now))  # a new tick: room again
    assert list(mon.signals.partial) == ["svc-4"]
    metrics = "\n".join(mon.metrics())
    assert 'shipper_health_shared_records_total{outcome="refused"} 4' in metrics
    assert 'shipper_health_shared_records_total{outcome="sent"} 6' in metrics
    docs = mon.evaluate(now, PipelineStatus(lag_by_partition={"health/0": 0}))
    assert [(d["rule"]["id"], d["event"]["action"]) for _, d in docs if d["event"].get("kind") == "alert"] == [
        ("tracking_cap", "fired")]
    await mon.stop()


def test_a_share_from_a_replica_behind_holds_silence_back() -> None:
    """A replica draining a backlog of the service says so in its share: silence counts only once
    the threshold has passed since, as for this replica's own backlog."""
    rules = RuleSettings(silence_s=5)
    sig = Signals()
    sig.pipeline(100.0, {"logs/0": 0}, 0)
    part = Stream(max_ts=iso(90.0), min_ts=iso(80.0))
    part.records[8] = 3
    assert sig.merge(SERVICE, part, 110.0, caught_up=False)
    sig.pipeline(110.0, {"logs/0": 0}, 0)
    assert sig.silence(SERVICE, 114.0, rules)[0] is None
    assert sig.silence(SERVICE, 115.5, rules)[0] is True


@pytest.mark.parametrize("doc", [
    {"event": {"provider": ["elk-shipper"], "action": "stream-share"}, "share": {}},  # item 10's forged marker
    {"event": {"action": "stream-share"}, "share": {"group": "", "bucket_s": 10, "caught_up": True, "services": []}},
    {"event": {"provider": "elk-shipper", "action": "other"}, "share": {}},
    {"event": {"provider": "elk-shipper", "action": "stream-share"},
     "share": {"group": "", "bucket_s": 10, "caught_up": True,
               "services": [{"name": "a", "max_ts": "x", "min_ts": "x", "buckets": []}]}},
    {"event": {"provider": "elk-shipper", "action": "stream-share"},
     "share": {"group": "", "bucket_s": 10, "caught_up": True,
               "services": [{"name": "a", "max_ts": iso(1.0), "min_ts": iso(1.0), "buckets": [[1, -5, 0]]}]}},
    {"event": {"provider": "elk-shipper", "action": "stream-share"},
     "share": {"group": "", "bucket_s": 10, "caught_up": True,
               "services": [{"name": "a", "max_ts": iso(1.0), "min_ts": iso(1.0), "buckets": []}]
               * (MAX_SERVICES_PER_SHARE + 1)}},
    [],
])
def test_only_the_shippers_own_valid_share_counts(doc: Any) -> None:
    assert isinstance(decode(orjson.dumps(doc)), str)
    assert isinstance(decode(b"\xff"), str)


def test_shares_round_trip_in_bounded_messages() -> None:
    parts = {}
    for n in range(MAX_SERVICES_PER_SHARE + 1):
        part = parts[f"s{n}"] = Stream(max_ts=iso(20.0), min_ts=iso(10.0))
        part.records[1], part.errors[1] = 4, 1
    values = encode(parts, "g", 10.0, True, 30.0)
    assert len(values) == 2
    shares = [decode(v) for v in values]
    assert all(isinstance(s, Share) for s in shares)
    names = [svc.name for s in shares if isinstance(s, Share) for svc in s.services]
    assert names == list(parts)


class _Sink:
    """Takes every action (a stand-in for the bulk sink in a pure unit)."""

    def __init__(self) -> None:
        self.streams: list[str] = []

    async def write(self, actions: list[Any], waiting: Any = None) -> list[Any]:
        self.streams += [a.stream for a in actions]
        return []


@pytest.mark.parametrize("tracking", [True, False])
async def test_a_share_is_never_indexed_and_a_forged_one_is_dead_lettered(tracking: bool) -> None:
    from shipper.context import TransformSettings
    from shipper.monitor import NullMonitor
    from shipper.pipeline import Pipeline
    from shipper.stats import Stats

    part = Stream(max_ts=iso(time.time()), min_ts=iso(time.time() - 5))
    part.records[1] = 7
    share = encode({SERVICE: part}, "", 10.0, True, time.time())[0]
    forged = orjson.dumps({"event": {"provider": ["elk-shipper"], "action": "stream-share"}, "share": {}})
    header = [(SHARE_HEADER, b"1")]
    messages = [Meta("logs", 0, 0, 0, SERVICE.encode(), (), orjson.dumps(rec(SERVICE, time.time()))),
                Meta("logs", 0, 1, 0, None, header, share), Meta("logs", 0, 2, 0, None, header, forged)]
    monitor = HealthMonitor(HealthSettings()) if tracking else NullMonitor()
    sink, dead = _Sink(), []

    async def publish(entries: list[tuple[bytes | None, bytes]]) -> None:
        dead.extend(orjson.loads(value) for _, value in entries)

    stats = Stats()
    pipeline = Pipeline(sink=sink, stats=stats, settings=TransformSettings(host_name="h"),  # type: ignore[arg-type]
                        monitor=monitor, publish_dead=publish)
    await pipeline.process(messages)
    assert sink.streams == ["logs-shop-default", "logs-elk.deadletter-default"]
    assert [(d["error"]["type"], d["dead_letter"]["offset"]) for d in dead] == [("share", 2)]
    assert (stats.consumed, stats.dead_lettered) == (2, 1)  # the valid share is no record of a service
    if isinstance(monitor, HealthMonitor):
        assert sum(monitor.signals.streams[SERVICE].records.values()) == 8
