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
from collections.abc import Iterator
from typing import Any

from collector.otlp.mapping import Rejected

Values = dict[str, Any]
_TEMPORALITY = {1: "delta", 2: "cumulative"}
_NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def points(metric: Any) -> Iterator[tuple[Any, Values | Rejected]]:
    """(data point, metric object) for each data point of `metric`; a bad point yields (point, Rejected)."""
    kind = metric.WhichOneof("data")
    base: Values = {"name": metric.name}
    if metric.unit:
        base["unit"] = metric.unit
    if kind == "gauge":
        for p in metric.gauge.data_points:
            if not p.flags & _NO_RECORDED_VALUE:
                yield p, _checked(p, {**base, "type": "gauge", "value": _number(p)})
    elif kind == "sum":
        data = metric.sum
        temporality = _TEMPORALITY.get(data.aggregation_temporality)
        mtype = "counter" if data.is_monotonic else "gauge"
        field = "delta" if temporality == "delta" else "value"
        for p in data.data_points:
            if not p.flags & _NO_RECORDED_VALUE:
                values = {**base, "type": mtype, field: _number(p)}
                if temporality:
                    values["temporality"] = temporality
                yield p, _checked(p, values)
    elif kind == "histogram":
        temporality = _TEMPORALITY.get(metric.histogram.aggregation_temporality)
        for p in metric.histogram.data_points:
            if not p.flags & _NO_RECORDED_VALUE:
                yield p, _checked(p, _histogram(base, temporality, p, _explicit_buckets(p)))
    elif kind == "exponential_histogram":
        temporality = _TEMPORALITY.get(metric.exponential_histogram.aggregation_temporality)
        for p in metric.exponential_histogram.data_points:
            if not p.flags & _NO_RECORDED_VALUE:
                try:
                    buckets = _exponential_buckets(p)
                except OverflowError:
                    yield p, Rejected(f"{metric.name}: exponential histogram scale out of range")
                    continue
                yield p, _checked(p, _histogram(base, temporality, p, buckets))
    elif kind == "summary":
        for p in metric.summary.data_points:
            if not p.flags & _NO_RECORDED_VALUE:
                values = {**base, "type": "histogram", "count": p.count, "sum": p.sum}
                for q in p.quantile_values:
                    for name, wanted in (("min", 0.0), ("max", 1.0), *QUANTILES):
                        if abs(q.quantile - wanted) < 1e-9:
                            values[name] = q.value
                yield p, _checked(p, values)
    else:
        yield metric, Rejected(f"{metric.name or '(no name)'}: a metric without data")


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
