"""Prometheus text exposition for the scrape endpoints (ingest API, shipper).

(`collector.metrics` aggregates per emit interval into ECS documents and resets on collect, which
is the wrong model for a scrape endpoint: these counters only grow.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def label(value: str) -> str:
    """A label value with backslash, quote and newline escaped (some come from engines or clients)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(pairs: Mapping[str, object]) -> str:
    return "{" + ",".join(f'{k}="{label(str(v))}"' for k, v in pairs.items()) + "}" if pairs else ""


def metric(name: str, kind: str, help_: str, samples: Iterable[tuple[Mapping[str, object], float | int]]) -> list[str]:
    """HELP and TYPE, then one line per (labels, value)."""
    return [f"# HELP {name} {help_}", f"# TYPE {name} {kind}",
            *(f"{name}{labels(pairs)} {value}" for pairs, value in samples)]


def single(name: str, kind: str, help_: str, value: float | int) -> list[str]:
    return metric(name, kind, help_, [({}, value)])


@dataclass
class Histogram:
    bounds: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def lines(self, name: str, help_: str) -> list[str]:
        out = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
        return [*out, f"{name}_sum {self.sum:.6f}", f"{name}_count {self.count}"]


def render(lines: Iterable[str]) -> str:
    return "\n".join(lines) + "\n"
