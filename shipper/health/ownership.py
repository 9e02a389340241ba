"""Which replica computes a service's health state, stream signals and alerts: exactly one.

Every producer keys its records by service name (the prober, the ingest API, the library's Kafka
output), so all of a service's records on a topic are in one partition, and the replica of the
consumer group that owns that partition sees all of them and nothing of it reaches the others.
That replica owns the service: its health state for the partition of the health topics
(SHIPPER_HEALTH_TOPICS), its stream signals (silence, error rate, error ratio) for its name's
partition of the first logs topic (neither health nor metrics topics): one partition, whatever
key or topic the records arrive with, so one owner even for names given by SHIPPER_SERVICE_MAP
(whose records arrive on their key's partition) and for producers that do not key by service;
the replicas that read such records send their counts on to that owner (shipper/health/shares.py).
Partition
ownership is Kafka's, so a rebalance moves services with their partitions: the old owner hands
them over (writes the newest event of their alerts, drops them without resolving), the new owner
restores them from the index before it reads their records.

Pipeline-scoped rules (dead letters, consumer lag) are evaluated by one replica: the owner of the
first partition of the first topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2

HEALTH, STREAM = "health", "stream"  # what a replica owns of a service
TP = tuple[str, int]


def partition_of(service: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the key `service` (murmur2, as the Java client)."""
    return (murmur2(service.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class Ownership:
    topics: list[str]
    health_topics: frozenset[str] = frozenset()
    metrics_topics: frozenset[str] = frozenset()
    owned: set[TP] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)  # topic -> partitions
    everything: bool = True  # until the first assignment (a monitor used without Kafka owns all)
    _cache: dict[tuple[str, str], bool] = field(default_factory=dict)

    def topics_of(self, part: str) -> list[str]:
        """The topics whose partition decides `part`; all topics when none is named for it."""
        if part == HEALTH:
            named = [t for t in self.topics if t in self.health_topics]
        else:
            named = [t for t in self.topics if t not in self.health_topics and t not in self.metrics_topics]
        return named or list(self.topics)

    def home(self, service: str) -> TP | None:
        """The one partition whose owner owns `service`'s stream: its name's partition in the first
        logs topic (None before the partition counts are known)."""
        for topic in self.topics_of(STREAM):
            if self.counts.get(topic):
                return topic, partition_of(service, self.counts[topic])
        return None

    def owns(self, part: str, service: str) -> bool:
        if self.everything:
            return True
        key = (part, service)
        found = self._cache.get(key)
        if found is None:
            if part == STREAM:
                found = self.home(service) in self.owned
            else:
                found = any((t, partition_of(service, self.counts[t])) in self.owned
                            for t in self.topics_of(part) if self.counts.get(t))
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = found
        return found

    def leader(self) -> bool:
        """Whether this replica evaluates the pipeline-scoped rules."""
        return self.everything or (self.topics[0], 0) in self.owned

    def assign(self, partitions: Iterable[TP], counts: dict[str, int]) -> None:
        self.everything = False
        self.owned.update(partitions)
        self.counts.update({t: n for t, n in counts.items() if n})
        self._cache.clear()

    def revoke(self, partitions: Iterable[TP]) -> None:
        self.everything = False
        self.owned.difference_update(partitions)
        self._cache.clear()
