"""In-process metrics: counters, gauges and histograms with labels, aggregated and emitted
periodically as ECS metric documents (docs/ARCHITECTURE.md, "Metric document").

Recording is a dict lookup and an add under a per-metric lock; documents are built only at
emit time. Histograms keep the interval's samples (capped) for exact p50/p95/p99.
"""

from __future__ import annotations

import threading
from typing import Any

LabelKey = tuple[tuple[str, Any], ...]
HIST_CAP = 10_000  # samples kept per series per interval; beyond it count/sum/min/max stay exact


def _key(labels: dict[str, Any]) -> LabelKey:
    return tuple(sorted(labels.items())) if labels else ()


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


class _Metric:
    type = ""

    def __init__(self, name: str, unit: str = "", description: str = ""):
        self.name = name
        self.unit = unit
        self.description = description
        self._lock = threading.Lock()

    def collect(self) -> list[dict[str, Any]]:
        """One partial document per series since the last collect."""
        raise NotImplementedError

    def _doc(self, key: LabelKey, values: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {"metric": {"name": self.name, "type": self.type, "unit": self.unit, **values}}
        if key:
            doc["labels"] = dict(key)
        return doc


class Counter(_Metric):
    type = "counter"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._values: dict[LabelKey, list[float]] = {}  # key -> [cumulative, at last emit]

    def inc(self, value: float = 1, **labels: Any) -> None:
        key = _key(labels)
        with self._lock:
            slot = self._values.get(key)
            if slot is None:
                self._values[key] = [value, 0]
            else:
                slot[0] += value

    def collect(self) -> list[dict[str, Any]]:
        with self._lock:
            out = []
            for key, slot in self._values.items():
                out.append(self._doc(key, {"value": slot[0], "delta": slot[0] - slot[1]}))
                slot[1] = slot[0]
        return out


class Gauge(_Metric):
    type = "gauge"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._values: dict[LabelKey, float] = {}

    def set(self, value: float, **labels: Any) -> None:
        with self._lock:
            self._values[_key(labels)] = value

    def add(self, value: float, **labels: Any) -> None:
        key = _key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + value

    def collect(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._doc(key, {"value": value}) for key, value in self._values.items()]


class Histogram(_Metric):
    type = "histogram"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._series: dict[LabelKey, list[Any]] = {}  # key -> [count, sum, min, max, samples]

    def observe(self, value: float, **labels: Any) -> None:
        key = _key(labels)
        with self._lock:
            s = self._series.get(key)
            if s is None:
                self._series[key] = [1, value, value, value, [value]]
                return
            s[0] += 1
            s[1] += value
            if value < s[2]:
                s[2] = value
            if value > s[3]:
                s[3] = value
            if len(s[4]) < HIST_CAP:
                s[4].append(value)

    def collect(self) -> list[dict[str, Any]]:
        with self._lock:
            series, self._series = self._series, {}
        out = []
        for key, (count, total, lo, hi, samples) in series.items():
            samples.sort()
            out.append(self._doc(key, {
                "count": count, "sum": total, "min": lo, "max": hi,
                "p50": _quantile(samples, 0.50), "p95": _quantile(samples, 0.95), "p99": _quantile(samples, 0.99),
            }))
        return out


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _get(self, cls: type[Any], name: str, unit: str, description: str) -> Any:
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = cls(name, unit, description)
            elif not isinstance(metric, cls):
                raise ValueError(f"metric {name!r} already registered as a {metric.type}")
            return metric

    def counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        return self._get(Counter, name, unit, description)

    def gauge(self, name: str, unit: str = "", description: str = "") -> Gauge:
        return self._get(Gauge, name, unit, description)

    def histogram(self, name: str, unit: str = "", description: str = "") -> Histogram:
        return self._get(Histogram, name, unit, description)

    def collect(self) -> list[dict[str, Any]]:
        """One partial document (`metric.*`, `labels`) per series; the interval state is reset."""
        with self._lock:
            metrics = list(self._metrics.values())
        docs: list[dict[str, Any]] = []
        for metric in metrics:
            docs.extend(metric.collect())
        return docs


REGISTRY = Registry()
