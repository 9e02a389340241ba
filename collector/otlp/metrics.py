"""OTLP metric data points -> the `metric` object of the library's metric document
(docs/ARCHITECTURE.md "Metric document": `metric.name/type/unit` and the values).

- Gauge -> `gauge`, `value`.
- Sum, monotonic -> `counter`: cumulative temporality gives `value` (the running total, as the
  library's counters), delta temporality gives `delta` (the change over the interval).
- Sum, not monotonic (an UpDownCounter) -> `gauge`: `value` (cumulative) or `delta`.
- Histogram -> `histogram`: `count`, `sum`, `min`, `max` and `p50/p95/p99` estimated from the
  buckets (linear inside the bucket, the edges of the open buckets taken from min/max).
- ExponentialHistogram -> the same, from its exponential buckets.
- Summary -> `histogram`: `count`, `sum`, `p50/p95/p99` when those quantiles are sent.
Every sum and histogram also carries `metric.temporality` (`delta` or `cumulative`).
A data point flagged "no recorded value" (a staleness marker) is skipped, not an error.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from collector.otlp.mapping import Rejected

Values = dict[str, Any]
_TEMPORALITY = {1: "delta", 2: "cumulative"}
_NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


class Series:
    """What the last point of each cumulative (or delta-summed) series was, so that every document
    has the library's shape: per-interval values for the interval `event.start` .. `@timestamp`.

    Bounded: at most `limit` series (the least recently seen is forgotten; its next point is then a
    first point). Per process: with several intake replicas a series should reach one of them
    (OTLP exporters keep one connection). Shared by the mapping threads, hence the lock."""

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self._last: OrderedDict[tuple[Any, ...], tuple[int, int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def step(self, key: tuple[Any, ...], start: int, now: int, value: Any) -> tuple[int, int, Any] | None:
        """Remember (start, now, value) for `key`; return what was remembered before, if anything."""
        with self._lock:
            last = self._last.pop(key, None)
            self._last[key] = (start, now, value)
            if len(self._last) > self.limit:
                self._last.popitem(last=False)
            return last

    def accumulate(self, key: tuple[Any, ...], start: int, now: int, amount: float) -> float:
        """The running total of a delta series after adding `amount`."""
        with self._lock:
            last = self._last.pop(key, None)
            total = amount + (last[2] if last is not None else 0)
            self._last[key] = (start, now, total)
            if len(self._last) > self.limit:
                self._last.popitem(last=False)
            return total

    def __len__(self) -> int:
        return len(self._last)


def points(metric: Any, series: Series | None = None,
           scope: tuple[Any, ...] = ()) -> Iterator[tuple[Any, Values | Rejected, int]]:
    """(data point, metric object, start of its interval in ns or 0) for each data point of `metric`;
    a bad point yields (point, Rejected, 0). `series` (with `scope`, what identifies the resource)
    turns cumulative values into per-interval ones and delta sums into running totals."""
    series = series if series is not None else Series(0)
    kind = metric.WhichOneof("data")
    base: Values = {"name": metric.name}
    if metric.unit:
        base["unit"] = metric.unit
    if kind == "gauge":
        for p in metric.gauge.data_points:
            if not p.flags & _NO_RECORDED_VALUE:
                yield p, _checked(p, {**base, "type": "gauge", "value": _number(p)}), 0
    elif kind == "sum":
        data = metric.sum
        temporality = _TEMPORALITY.get(data.aggregation_temporality)
        mtype = "counter" if data.is_monotonic else "gauge"
        for p in data.data_points:
            if p.flags & _NO_RECORDED_VALUE:
                continue
            if temporality is None:
                yield p, Rejected(f"{metric.name}: aggregation temporality unspecified (the data model forbids it)"), 0
                continue
            number = _number(p)
            values = {**base, "type": mtype, "temporality": temporality}
            key = (*scope, metric.name, _attributes_key(p))
            start = 0
            if number is None or (type(number) is float and not math.isfinite(number)):
                values["value"] = number
            elif temporality == "delta":  # the change; `value` is the running total this intake saw
                total = series.accumulate(key, p.start_time_unix_nano, p.time_unix_nano, number)
                values["value"], values["delta"], start = total, number, p.start_time_unix_nano
            else:  # the running total; `delta` is the change since this series' previous point
                last = series.step(key, p.start_time_unix_nano, p.time_unix_nano, number)
                values["value"] = number
                if last is not None and last[0] == p.start_time_unix_nano and number >= last[2]:
                    values["delta"], start = number - last[2], last[1]
                elif p.start_time_unix_nano:  # first point, or restarted: the change since its start
                    values["delta"], start = number, p.start_time_unix_nano
                    if last is not None:
                        values["reset"] = True
            yield p, _checked(p, values), start
    elif kind in ("histogram", "exponential_histogram"):
        data = metric.histogram if kind == "histogram" else metric.exponential_histogram
        temporality = _TEMPORALITY.get(data.aggregation_temporality)
        for p in data.data_points:
            if p.flags & _NO_RECORDED_VALUE:
                continue
            if temporality is None:
                yield p, Rejected(f"{metric.name}: aggregation temporality unspecified (the data model forbids it)"), 0
                continue
            try:
                buckets = _explicit_buckets(p) if kind == "histogram" else _exponential_buckets(p)
            except OverflowError:
                yield p, Rejected(f"{metric.name}: exponential histogram scale out of range"), 0
                continue
            if temporality == "delta":
                yield p, _checked(p, _histogram(base, temporality, p, buckets)), p.start_time_unix_nano
                continue
            key = (*scope, metric.name, _attributes_key(p))
            state = (p.count, p.sum if p.HasField("sum") else None, buckets)
            last = series.step(key, p.start_time_unix_nano, p.time_unix_nano, state)
            interval = _interval(last, p.start_time_unix_nano, state)
            if interval is None:  # first point of the series (or restarted): its whole life so far
                yield p, _checked(p, _histogram(base, temporality, p, buckets)), p.start_time_unix_nano
            else:
                count, total_sum, diff = interval
                assert last is not None
                yield p, _checked(p, _interval_histogram(base, count, total_sum, diff)), last[1]
    elif kind == "summary":
        for p in metric.summary.data_points:
            if not p.flags & _NO_RECORDED_VALUE:
                values = {**base, "type": "histogram", "count": p.count, "sum": p.sum}
                for q in p.quantile_values:
                    for name, wanted in (("min", 0.0), ("max", 1.0), *QUANTILES):
                        if abs(q.quantile - wanted) < 1e-9:
                            values[name] = q.value
                yield p, _checked(p, values), p.start_time_unix_nano
    else:
        yield metric, Rejected(f"{metric.name or '(no name)'}: a metric without data"), 0


def _attributes_key(p: Any) -> tuple[bytes, ...]:
    return tuple(sorted(kv.SerializeToString() for kv in p.attributes))


def _interval(last: tuple[int, int, Any] | None, start: int,
              total: tuple[int, float | None, list[tuple[float, float, int]]]
              ) -> tuple[int, float | None, list[tuple[float, float, int]]] | None:
    """(count, sum, buckets) since the series' previous point; None when there is none to compare
    with (first point, a restart: another start time or fewer observations, other buckets)."""
    if last is None or last[0] != start:
        return None
    count, total_sum, buckets = total
    before_count, before_sum, before = last[2]
    if count < before_count or len(before) != len(buckets):
        return None
    diff = []
    for (lo, hi, c), (lo0, hi0, c0) in zip(buckets, before, strict=True):
        if (lo, hi) != (lo0, hi0) or c < c0:
            return None
        diff.append((lo, hi, c - c0))
    moved = None if total_sum is None or before_sum is None else total_sum - before_sum
    return count - before_count, moved, diff


def _interval_histogram(base: Values, count: int, total_sum: float | None,
                        buckets: list[tuple[float, float, int]]) -> Values:
    """A cumulative histogram's interval: count, sum and quantiles of the new observations (the
    point's min and max are over its whole life, so they are not the interval's and are left out)."""
    values: Values = {**base, "type": "histogram", "temporality": "cumulative", "count": count}
    if total_sum is not None:
        values["sum"] = total_sum
    if count:
        for name, q in QUANTILES:
            estimate = quantile(buckets, q)
            if estimate is not None:
                values[name] = estimate
    return values


def _number(p: Any) -> float | int | None:
    kind = p.WhichOneof("value")
    if kind == "as_double":
        return p.as_double
    if kind == "as_int":
        return p.as_int
    return None


def _checked(p: Any, values: Values) -> Values | Rejected:
    if not values["name"]:
        return Rejected("metric.name: required")
    for key, value in values.items():
        if value is None:
            return Rejected(f"{values['name']}: data point without a value")
        if type(value) is float and not math.isfinite(value):
            return Rejected(f"{values['name']}: {key} is not a finite number")
    return values


def _histogram(base: Values, temporality: str | None, p: Any,
               buckets: list[tuple[float, float, int]]) -> Values:
    values: Values = {**base, "type": "histogram", "count": p.count}
    if temporality:
        values["temporality"] = temporality
    if p.HasField("sum"):
        values["sum"] = p.sum
    low = p.min if p.HasField("min") else None
    high = p.max if p.HasField("max") else None
    if low is not None:
        values["min"] = low
    if high is not None:
        values["max"] = high
    if p.count:
        for name, q in QUANTILES:
            estimate = quantile(buckets, q, low, high)
            if estimate is not None:
                values[name] = estimate
    return values


def _explicit_buckets(p: Any) -> list[tuple[float, float, int]]:
    """(lower, upper, count) in ascending order: bucket i covers (bounds[i-1], bounds[i]]."""
    bounds = list(p.explicit_bounds)
    counts = list(p.bucket_counts)
    if not counts or len(counts) != len(bounds) + 1:
        return []
    edges = [-math.inf, *bounds, math.inf]
    return [(edges[i], edges[i + 1], c) for i, c in enumerate(counts)]


def _exponential_buckets(p: Any) -> list[tuple[float, float, int]]:
    """Bucket `index` covers (base**index, base**(index+1)] with base = 2**(2**-scale); negatives mirrored."""
    base = 2.0 ** (2.0 ** -p.scale)
    out: list[tuple[float, float, int]] = []
    neg = p.negative
    for k in range(len(neg.bucket_counts) - 1, -1, -1):
        index = neg.offset + k
        out.append((-(base ** (index + 1)), -(base ** index), neg.bucket_counts[k]))
    if p.zero_count:
        out.append((-p.zero_threshold, p.zero_threshold, p.zero_count))
    pos = p.positive
    for k, count in enumerate(pos.bucket_counts):
        index = pos.offset + k
        out.append((base ** index, base ** (index + 1), count))
    return out


def quantile(buckets: list[tuple[float, float, int]], q: float, low: float | None = None,
             high: float | None = None) -> float | None:
    """The q-quantile estimated from bucket counts: linear inside the bucket holding rank q*total;
    an open edge (-inf/+inf) is replaced by the observed min/max, else the bucket's finite edge."""
    total = sum(c for _, _, c in buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for lower, upper, count in buckets:
        if count <= 0:
            continue
        if seen + count >= rank:
            lo = low if (lower == -math.inf and low is not None) else lower
            hi = high if (upper == math.inf and high is not None) else upper
            if not math.isfinite(lo):
                lo = hi
            if not math.isfinite(hi):
                hi = lo
            if not (math.isfinite(lo) and math.isfinite(hi)):
                return None
            estimate = lo + (hi - lo) * max(0.0, rank - seen) / count
            if low is not None:
                estimate = max(estimate, low)
            if high is not None:
                estimate = min(estimate, high)
            return estimate
        seen += count
    return None
