"""A bound on the data streams (and so the index templates) the shipper creates for services.

Every new dataset makes a data stream, its first backing index (a shard, two with a replica) and,
for a family new to the cluster, an index template (shipper/templates.py). Elasticsearch allows
1,000 shards per data node by default (`cluster.max_shards_per_node`), shared with everything else
on the cluster; past it no index can be created, and every stream's rollover fails. So one producer
inventing service names must not be able to create streams without end.

The rule: at most `SHIPPER_MAX_STREAMS` service streams (`<type>-<dataset>-<namespace>`, the
product's own `elk.*` streams not counted). The streams that exist in the namespace at start count
(a restart or a second replica does not grant a new allowance); a record whose stream would be one
more goes to the catch-all stream of its type, `logs-overflow-<ns>` / `metrics-overflow-<ns>`, with
its service.name untouched. Every such record is counted (`shipper_stream_overflow_total`) and the
first one is logged once, naming the cap. A stream is admitted for good: streams already written
keep receiving their records (nothing is evicted), so the well-behaved services that came first
are not affected. Routing pays one set lookup per record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collector.contract.promtext import single
from collector.contract.streams import DATASET_OVERFLOW, LOGS, METRICS, data_stream_name, is_own_dataset
from shipper.log import get_logger

if TYPE_CHECKING:  # the engine module (and its templates) is not needed to load the settings
    from shipper.engines.base import SearchEngine

log = get_logger("shipper.streams")

# 100 streams: 100 shards a day with data (200 with a replica) of the 1,000 a node allows by default
DEFAULT_MAX_STREAMS = 100


class StreamCap:
    def __init__(self, limit: int = DEFAULT_MAX_STREAMS) -> None:
        self.limit = limit
        self.known: set[str] = set()  # streams a record may go to at once: admitted ones and the catch-alls
        self.admitted = 0  # service streams among them (what the cap counts)
        self.overflowed = 0  # records sent to a catch-all because their stream would pass the cap
        self.hit = False
        self._catch_all: dict[tuple[str, str], str] = {}

    def admit(self, type_: str, dataset: str, namespace: str) -> tuple[str, str]:
        """(stream, dataset) for a record whose stream is not known yet: its own while under the cap,
        else the type's catch-all. The caller has checked `known` (the hot path)."""
        if dataset == DATASET_OVERFLOW:  # a service named so shares the catch-all, outside the count
            return self.catch_all(type_, namespace), dataset
        name = data_stream_name(type_, dataset, namespace)
        if name in self.known:
            return name, dataset
        if self.admitted < self.limit:
            self.known.add(name)
            self.admitted += 1
            return name, dataset
        self.overflowed += 1
        if not self.hit:
            self.hit = True
            log.error("stream cap reached: records of new datasets go to the catch-all stream",
                      cap=self.limit, refused=name, catch_all=self.catch_all(type_, namespace),
                      setting="SHIPPER_MAX_STREAMS")
        return self.catch_all(type_, namespace), DATASET_OVERFLOW

    def catch_all(self, type_: str, namespace: str) -> str:
        key = (type_, namespace)
        name = self._catch_all.get(key)
        if name is None:
            name = self._catch_all[key] = data_stream_name(type_, DATASET_OVERFLOW, namespace)
            self.known.add(name)
        return name

    def load(self, existing: list[str], namespace: str) -> None:
        """The namespace's service streams that already exist count against the cap (all of them are
        admitted, even past it: they exist already)."""
        suffix = f"-{namespace}"
        for name in existing:
            type_, _, rest = name.partition("-")
            dataset = rest.removesuffix(suffix)
            if (type_ not in (LOGS, METRICS) or not name.endswith(suffix) or not dataset or "-" in dataset
                    or is_own_dataset(dataset) or dataset == DATASET_OVERFLOW or name in self.known):
                continue
            self.known.add(name)
            self.admitted += 1

    def metrics(self) -> list[str]:
        return [
            *single("shipper_streams", "gauge", "Service data streams the shipper writes to (capped).", self.admitted),
            *single("shipper_streams_max", "gauge", "The cap on service data streams (SHIPPER_MAX_STREAMS).",
                    self.limit),
            *single("shipper_stream_overflow_total", "counter",
                    "Records sent to the catch-all stream because their own would pass the stream cap.",
                    self.overflowed),
        ]


async def existing_streams(engine: SearchEngine, namespace: str) -> list[str]:
    """Names of the namespace's data streams in the engine."""
    answer = await engine.request("GET", f"/_data_stream/{LOGS}-*-{namespace},{METRICS}-*-{namespace}")
    return [str(s.get("name")) for s in (answer or {}).get("data_streams", []) if isinstance(s, dict)]
