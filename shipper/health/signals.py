"""Per-service stream signals: error rate against the service's own baseline, error ratio, and
silence. Pure, no I/O.

An error is a record at an error level (collector.contract.levels) or with an HTTP 5xx status.
The error-rate rule compares a window with the service's own baseline; windows spent in alert are
kept out of that baseline, so an ongoing incident never raises the bar it is measured against.
The error-ratio rule needs no history: errors as a share of the service's records in the window.

Both work on event time (the record's @timestamp), so a backlog being drained fills history
windows instead of looking like a burst. Silence is only counted while the shipper is caught up:
its consumer lag is small, the freshest records it processes are recent in event time, and it has
been so for the whole threshold. A draining backlog therefore never reads as a silent service.

Evaluations answer True, False or None ("cannot tell yet"): an open alert is neither fired nor
resolved on None (e.g. just after a restart, before there is history to compare with).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.contract.levels import ERROR_LEVELS, LEVELS, is_error
from collector.contract.streams import METRICS
from collector.contract.timefmt import format_epoch, parse_epoch
from shipper.health.config import RuleSettings

BUCKETS_PER_WINDOW = 6
_NOT_ERRORS = frozenset(LEVELS) - ERROR_LEVELS
UNSEEN = "~"  # sorts after every timestamp


@functools.lru_cache(maxsize=4096)
def _epoch_second(prefix: str) -> float:
    return parse_epoch(prefix + "Z") or 0.0


def last_seen_query(hours: int = 24, services: int = 1000) -> dict[str, Any]:
    """Newest record per service in the service streams (`logs-*-<ns>` minus the elk.* ones)."""
    return {
        "size": 0,
        "query": {"bool": {"filter": [{"range": {"@timestamp": {"gte": f"now-{hours}h"}}}],
                           "must_not": [{"prefix": {"data_stream.dataset": "elk."}}]}},
        "aggs": {"services": {"terms": {"field": "service.name", "size": services},
                              "aggs": {"last": {"max": {"field": "@timestamp"}}}}},
    }


def seed_from(signals: Signals, result: dict[str, Any], wanted: Any = lambda service: True) -> int:
    """Apply `last_seen_query`'s answer (only the services `wanted`); the number of services seeded."""
    n = 0
    for bucket in (result.get("aggregations") or {}).get("services", {}).get("buckets", []):
        last = (bucket.get("last") or {}).get("value")
        if isinstance(bucket.get("key"), str) and isinstance(last, int | float) and wanted(bucket["key"]):
            signals.seed(bucket["key"], format_epoch(last / 1000))
            n += 1
    return n


def event_time(record: dict[str, Any]) -> float | None:
    """Epoch seconds of @timestamp (the enriched form `YYYY-MM-DDTHH:MM:SS.mmmZ`; others parsed fully)."""
    ts = record.get("@timestamp")
    if not isinstance(ts, str):
        return None
    if len(ts) == 24 and ts[19] == "." and ts[23] == "Z" and ts[20:23].isdigit():
        second = _epoch_second(ts[:19])
        if second:
            return second + int(ts[20:23]) / 1000
    return parse_epoch(ts)


@dataclass
class Stream:
    max_ts: str  # the newest @timestamp seen (the enriched form sorts as a string)
    min_ts: str
    seen_ts: str = ""  # max_ts as of the last tick, when last_event was computed from it
    seen_min: str = ""
    last_event: float = 0.0
    first_event: float = 0.0
    errors: dict[int, int] = field(default_factory=dict)  # bucket index -> error records
    records: dict[int, int] = field(default_factory=dict)  # bucket index -> all records
    alerting: set[int] = field(default_factory=set)  # buckets spent with an error alert open
    bucket_s: float = 10.0
    prefix: str = ""  # the last @timestamp's second and its bucket: records come in time order
    prefix_bucket: int = 0
    # when a share from a replica that was not caught up last arrived: that replica may be draining a
    # backlog of this service, so silence counts only from then (as for this replica's own lag)
    behind_at: float = 0.0


@dataclass
class Signals:
    """Feed with `observe(record)` per record and `pipeline(now, lag, ...)` once per tick.

    The hot path only compares @timestamp strings (the shipper's enriched form sorts in time
    order); they are parsed once per tick, and future timestamps are clamped to the tick's time.
    """

    error_window_s: float = 60.0
    history_windows: int = 10
    caught_up_max_lag: int = 500
    max_event_delay_s: float = 30.0
    streams: dict[str, Stream] = field(default_factory=dict)
    caught_up_since: float | None = None
    freshest_ts: str = ""  # the newest @timestamp processed since the last tick
    dead_letters: list[tuple[float, int]] = field(default_factory=list)
    started: float | None = None
    lag_over_since: float | None = None
    max_streams: int = 1_000_000
    refused: int = 0  # log records of services over max_streams (indexed, not tracked)
    dirty: set[str] = field(default_factory=set)  # streams with records since the last tick
    # Whether this replica owns a service's stream; records of the others are counted in `partial`
    # (at most max_streams services between two ticks) and sent on to their owner (shares.py).
    owns: Callable[[str], bool] = lambda service: True
    partial: dict[str, Stream] = field(default_factory=dict)
    partial_refused: int = 0  # log records of services over max_streams in `partial` (never counted)
    counted: int = 0  # log records counted into owned streams, as read here
    merged: int = 0  # ... and as received from other replicas in shares

    @property
    def bucket_s(self) -> float:
        return self.error_window_s / BUCKETS_PER_WINDOW

    def observe(self, record: dict[str, Any]) -> None:
        """Hot path: one log record of a service (not probe results; metric documents are no records
        of a service's traffic: counted, they diluted its error ratio). A service whose stream
        another replica owns is counted in `partial`, to be sent on."""
        stream_kind = record.get("data_stream")
        if type(stream_kind) is dict and stream_kind.get("type") == METRICS:
            return
        service = record.get("service")
        name = service.get("name") if type(service) is dict else None
        ts = record.get("@timestamp")
        if type(name) is not str or type(ts) is not str:
            return
        if ts > self.freshest_ts:
            self.freshest_ts = ts
        stream = self.streams.get(name)
        if stream is None:
            stream = self.partial.get(name)
            if stream is None:
                stream = self._new(name, ts)
                if stream is None:
                    return
            else:
                if ts > stream.max_ts:
                    stream.max_ts = ts
                if ts < stream.min_ts:
                    stream.min_ts = ts
        else:
            if ts > stream.max_ts:
                stream.max_ts = ts
            if ts < stream.min_ts:  # a seeded stream's min_ts sorts after every timestamp
                stream.min_ts = ts
            self.dirty.add(name)
            self.counted += 1
        prefix = ts[:19]
        if prefix == stream.prefix:
            bucket = stream.prefix_bucket
        else:
            when = event_time(record)
            if when is None:
                return
            bucket = stream.prefix_bucket = int(min(when, time.time()) // stream.bucket_s)
            stream.prefix = prefix
        records = stream.records
        records[bucket] = records.get(bucket, 0) + 1
        # an error: an error level (aliases looked up only for what is not a canonical level yet) or
        # an HTTP 5xx answer, which nginx logs at level info; inline, this runs for every record
        log = record.get("log")
        level = log.get("level") if type(log) is dict else None
        if level is not None and level not in _NOT_ERRORS and (level in ERROR_LEVELS or is_error(level)):
            stream.errors[bucket] = stream.errors.get(bucket, 0) + 1
            return
        http = record.get("http")
        if http is not None and type(http) is dict:
            response = http.get("response")
            code = response.get("status_code") if type(response) is dict else None
            if type(code) is int and 500 <= code <= 599:
                stream.errors[bucket] = stream.errors.get(bucket, 0) + 1

    def count_prefix(self) -> int:
        """How much of an @timestamp (the wire form) `observe_counts` groups by: its 10 seconds
        (`2026-12-06T16:01:2`) when a bucket is a whole number of 10 seconds (such a group then falls
        in one bucket), else its second."""
        return 18 if self.bucket_s % 10 == 0 else 19

    def observe_counts(self, counts: Mapping[tuple[str, str], list[Any]],
                       maybe: Mapping[tuple[str, str, Any, Any], int]) -> None:
        """`observe` of many log records at once (the transform's fast path, shipper/fast.py), with the
        same result: `counts[(service, prefix)]` = [records, lowest @timestamp, highest @timestamp],
        the prefix `count_prefix` characters of the @timestamp, or all of it for one later than the
        batch's time (clamped alone, as `observe` clamps it); `maybe[(service, prefix, log.level,
        http.response.status_code)]` = records that may be errors (not a level known to be none, or
        a numeric status code of 500 or more): which are is decided here, by observe's rule. `counts`
        in the order the records came (a stream is made, or refused past max_streams, in that order;
        a service whose stream another replica owns is counted in `partial`, as `observe` does)."""
        streams = self.streams
        partial = self.partial
        buckets: dict[tuple[str, str], tuple[Stream, int]] = {}
        for (name, prefix), (n, low, high) in counts.items():
            if high > self.freshest_ts:
                self.freshest_ts = high
            stream = streams.get(name)
            if stream is not None:
                self.dirty.add(name)
                self.counted += n
            else:
                stream = partial.get(name)
                if stream is None:  # as `_new`, for n records
                    if self.owns(name):
                        if len(streams) >= self.max_streams:
                            self.refused += n
                            continue
                        stream = streams[name] = Stream(max_ts=high, min_ts=low, bucket_s=self.bucket_s)
                        self.dirty.add(name)
                        self.counted += n
                    else:
                        if len(partial) >= self.max_streams:
                            self.partial_refused += n
                            continue
                        stream = partial[name] = Stream(max_ts=high, min_ts=low, bucket_s=self.bucket_s)
            if high > stream.max_ts:
                stream.max_ts = high
            if low < stream.min_ts:
                stream.min_ts = low
            when = event_time({"@timestamp": low})
            if when is None:
                continue
            bucket = int(min(when, time.time()) // stream.bucket_s)
            buckets[(name, prefix)] = (stream, bucket)
            stream.records[bucket] = stream.records.get(bucket, 0) + n
        for (name, prefix, level, code), n in maybe.items():
            found = buckets.get((name, prefix))
            if found is None:
                continue
            # observe's rule: an error level, or else an HTTP 5xx answer
            if ((level is not None and level not in _NOT_ERRORS and (level in ERROR_LEVELS or is_error(level)))
                    or (type(code) is int and 500 <= code <= 599)):
                stream, at = found
                stream.errors[at] = stream.errors.get(at, 0) + n

    def _new(self, name: str, ts: str) -> Stream | None:
        """The first record of a service since the last tick: its own stream, or a partial one when
        another replica owns its stream; None past the cap (counted)."""
        if self.owns(name):
            if len(self.streams) >= self.max_streams:
                self.refused += 1
                return None
            self.dirty.add(name)
            self.counted += 1
            stream = self.streams[name] = Stream(max_ts=ts, min_ts=ts, bucket_s=self.bucket_s)
            return stream
        if len(self.partial) >= self.max_streams:
            self.partial_refused += 1
            return None
        stream = self.partial[name] = Stream(max_ts=ts, min_ts=ts, bucket_s=self.bucket_s)
        return stream

    def take_partial(self) -> dict[str, Stream]:
        """The counts of services owned elsewhere since the last call (to be sent on)."""
        partial, self.partial = self.partial, {}
        return partial

    def merge(self, service: str, part: Stream, now: float, caught_up: bool = True,
              scale: float = 1.0) -> bool:
        """Counts of `service`'s records that another replica read (a share), or that were counted
        here as another's before this replica came to own the stream: merged as if read here (last
        seen = the newest record, per-bucket records and errors). `scale`: the sender's bucket size
        over this one's. False when the stream cap refuses a new stream."""
        stream = self.streams.get(service)
        if stream is None:
            if len(self.streams) >= self.max_streams:
                self.refused += sum(part.records.values())
                return False
            stream = self.streams[service] = Stream(max_ts=part.max_ts, min_ts=part.min_ts, bucket_s=self.bucket_s)
        if part.max_ts > stream.max_ts:
            stream.max_ts = part.max_ts
        if part.min_ts < stream.min_ts:
            stream.min_ts = part.min_ts
        for buckets, into in ((part.records, stream.records), (part.errors, stream.errors)):
            for bucket, n in buckets.items():
                mine = bucket if scale == 1.0 else int(bucket * scale)
                into[mine] = into.get(mine, 0) + n
        if not caught_up:
            stream.behind_at = now
        self.dirty.add(service)
        return True

    def listening_since(self, service: str) -> float | None:
        """Since when silence of `service` can be heard: caught up here, and no share from a replica
        that was behind since then."""
        stream = self.streams.get(service)
        if self.caught_up_since is None or stream is None:
            return self.caught_up_since
        return max(self.caught_up_since, stream.behind_at)

    def drop(self, services: Iterable[str]) -> None:
        """Forget services another replica owns now."""
        for service in services:
            self.streams.pop(service, None)
            self.dirty.discard(service)

    def rebalanced(self) -> None:
        """Nothing was consumed during the rebalance: caught-up has to be shown again before silence counts."""
        self.caught_up_since = None

    def mark_alerting(self, service: str, now: float, window_s: float) -> None:
        """The service has an error alert open now: the window that shows it stays out of its baseline."""
        stream = self.streams.get(service)
        if stream is not None:
            current = int(now // stream.bucket_s)
            stream.alerting.update(range(current - max(1, round(window_s / stream.bucket_s)) + 1, current + 1))

    def seed(self, service: str, last_ts: str) -> None:
        """A service last seen (per the index) before this shipper started, so its silence is noticed."""
        if service not in self.streams and len(self.streams) < self.max_streams:
            # no error history: the baseline starts with the first record
            self.streams[service] = Stream(max_ts=last_ts, min_ts=UNSEEN, bucket_s=self.bucket_s)
            self.dirty.add(service)

    def pipeline(self, now: float, lag: dict[str, int], dead_lettered_total: int,
                 partitions: Iterable[str] | None = None) -> None:
        """Once per tick: event times of what was seen, caught-up state, dead-letter history.

        `partitions` ("topic/partition") are the ones this replica owns: one whose lag is not known
        yet (just assigned, nothing fetched: no high watermark) is not caught up."""
        if self.started is None:
            self.started = now
        for name in self.dirty:  # only what changed: a tick never walks every stream
            stream = self.streams.get(name)
            if stream is None:
                continue
            if stream.max_ts != stream.seen_ts:
                stream.seen_ts = stream.max_ts
                stream.last_event = min(now, event_time({"@timestamp": stream.max_ts}) or now)
            if stream.min_ts != stream.seen_min:
                stream.seen_min = stream.min_ts
                stream.first_event = min(now, event_time({"@timestamp": stream.min_ts}) or now)
        behind = not lag or sum(lag.values()) > self.caught_up_max_lag
        if partitions is not None and any(p not in lag for p in partitions):
            behind = True
        if self.freshest_ts:
            freshest = event_time({"@timestamp": self.freshest_ts})
            if freshest is not None and now - freshest > self.max_event_delay_s:
                behind = True  # everything processed since the last tick was old: a backlog is draining
            self.freshest_ts = ""
        if behind:
            self.caught_up_since = None
        elif self.caught_up_since is None:
            self.caught_up_since = now
        self.dead_letters.append((now, dead_lettered_total))
        self._prune(now)

    def take_dirty(self) -> set[str]:
        """The streams that had records since the last call (call after `pipeline`)."""
        dirty, self.dirty = self.dirty, set()
        return dirty

    def _prune(self, now: float) -> None:
        keep_dl = now - 24 * 3600
        while len(self.dead_letters) > 1 and self.dead_letters[1][0] <= keep_dl:
            self.dead_letters.pop(0)
        if len(self.dead_letters) > 100_000:
            del self.dead_letters[: len(self.dead_letters) - 100_000]
        for name in self.dirty:
            self.prune(name, now)

    def prune(self, service: str, now: float) -> None:
        """Drop a stream's buckets older than any window looks at (per stream, when it is looked at)."""
        stream = self.streams.get(service)
        if stream is None:
            return
        oldest = int((now - (self.history_windows + 2) * self.error_window_s) // self.bucket_s)
        for bucket in [b for b in stream.records if b < oldest]:
            del stream.records[bucket]
            stream.errors.pop(bucket, None)
        for bucket in [b for b in stream.errors if b < oldest]:
            del stream.errors[bucket]
        stream.alerting = {b for b in stream.alerting if b >= oldest}

    def silence(self, service: str, now: float, rules: RuleSettings) -> tuple[bool | None, str]:
        stream = self.streams.get(service)
        if stream is None:
            return None, "never seen since start"
        quiet = now - stream.last_event
        if quiet <= rules.silence_s:
            return False, f"last record {quiet:.0f}s ago"
        listening = self.listening_since(service)
        if listening is None:
            return None, "shipper not caught up"
        if now - listening <= rules.silence_s:
            return None, "caught up too recently to tell"
        return True, f"no records for {quiet:.0f}s (threshold {rules.silence_s:g}s) while the shipper is caught up"

    def error_spike(self, service: str, now: float, rules: RuleSettings) -> tuple[bool | None, str]:
        stream = self.streams.get(service)
        if stream is None:
            return None, "never seen since start"
        if now - stream.last_event > rules.error_window_s:  # nothing to judge by (silence is its own rule)
            return None, "no records in the window"
        size = stream.bucket_s
        current = int(now // size)
        per_window = max(1, round(rules.error_window_s / size))
        recent = sum(stream.errors.get(b, 0) for b in range(current - per_window + 1, current + 1))
        history_s = now - rules.error_window_s - stream.first_event
        windows = min(rules.error_baseline_windows, math.floor(history_s / rules.error_window_s))
        if windows < 1:
            return None, "no baseline yet"
        start = current - per_window * (windows + 1) + 1
        calm = [b for b in range(start, current - per_window + 1) if b not in stream.alerting]
        # all in alert: only the minimum count decides, until calm windows come back
        baseline = sum(stream.errors.get(b, 0) for b in calm) * per_window / len(calm) if calm else 0.0
        threshold = max(float(rules.error_min_count), rules.error_rate_factor * baseline)
        why = f"{recent} errors in {rules.error_window_s:g}s (baseline {baseline:.1f} per window)"
        return recent >= threshold, why

    def error_ratio(self, service: str, now: float, rules: RuleSettings,
                    alert_open: bool = False) -> tuple[bool | None, str]:
        """Over error_ratio_max fires; an open alert resolves only at or below error_ratio_resolve
        (hysteresis). Judged only on a full window of data and at least error_ratio_min_records."""
        stream = self.streams.get(service)
        if stream is None:
            return None, "never seen since start"
        current = int(now // stream.bucket_s)
        per_window = max(1, round(rules.error_window_s / stream.bucket_s))
        window = range(current - per_window + 1, current + 1)
        total = sum(stream.records.get(b, 0) for b in window)
        errors = sum(stream.errors.get(b, 0) for b in window)
        share = errors / total if total else 0.0
        why = f"{errors} of {total} records in {rules.error_window_s:g}s are errors ({share:.0%}, " \
              f"limit {rules.error_ratio_max:.0%})"
        if total < rules.error_ratio_min_records:  # too few to judge: an open alert stays as it is
            return None, why + f"; under {rules.error_ratio_min_records} records"
        first = event_time({"@timestamp": stream.min_ts}) or now
        if now - first < rules.error_window_s:  # seconds of data are no window's ratio
            return None, why + f"; under {rules.error_window_s:g}s of data"
        if alert_open:
            return share > rules.error_ratio_resolve, why + f"; resolves at {rules.error_ratio_resolve:.0%}"
        return share > rules.error_ratio_max, why

    def dead_letter_growth(self, now: float, rules: RuleSettings) -> tuple[bool | None, str]:
        if not self.dead_letters:
            return None, "no data"
        window_start = now - rules.dead_letter_window_s
        base = next((total for when, total in self.dead_letters if when >= window_start), self.dead_letters[-1][1])
        grown = self.dead_letters[-1][1] - base
        why = f"{grown} dead letters in {rules.dead_letter_window_s:g}s"
        if grown >= rules.dead_letter_min:
            return True, why
        if self.started is not None and now - self.started < rules.dead_letter_window_s:
            return None, why
        return False, why

    def consumer_lag(self, now: float, lag_total: int, rules: RuleSettings) -> tuple[bool | None, str]:
        if lag_total <= rules.lag_max:
            self.lag_over_since = None
            return False, f"lag {lag_total}"
        if self.lag_over_since is None:
            self.lag_over_since = now
        over = now - self.lag_over_since
        return over >= rules.lag_for_s, f"lag {lag_total} over {rules.lag_max} for {over:.0f}s"

