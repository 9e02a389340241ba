"""What every transform step sees besides the record: the settings, fixed at start, and the batch
context (the settings plus this batch's `now`, formatted once), made once per batch."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from collector.contract.streams import DEFAULT_NAMESPACE, TOPIC_HEALTH, TOPIC_METRICS
from collector.contract.timefmt import format_ts
from shipper.streamcap import StreamCap


@dataclass(frozen=True, slots=True)
class TopicRoles:
    """Which topics carry metric documents and which carry probe results; every other topic carries logs."""

    metrics: frozenset[str] = frozenset({TOPIC_METRICS})
    health: frozenset[str] = frozenset({TOPIC_HEALTH})


@dataclass(slots=True)
class TransformSettings:
    host_name: str
    service_map: dict[str, str] = field(default_factory=dict)
    state_of: Callable[[str], str | None] = lambda service: None
    namespace: str = DEFAULT_NAMESPACE
    max_record_bytes: int = 1024 * 1024
    roles: TopicRoles = field(default_factory=TopicRoles)
    max_future: timedelta = timedelta(days=1)  # a later @timestamp is a producer's clock gone wrong
    streams: StreamCap = field(default_factory=StreamCap)  # which service streams may be created
    native: bool = True  # the fast path's compiled part, when installed (shipper/native.py)
    _patterns: list[tuple[re.Pattern[str], str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._patterns = [(re.compile(f"^(?:{pattern})$"), service) for pattern, service in self.service_map.items()]

    def mapped_service(self, name: str) -> str | None:
        if name in self.service_map:
            return self.service_map[name]
        for pattern, service in self._patterns:
            if pattern.match(name):
                return service
        return None


@dataclass(slots=True)
class Batch:
    settings: TransformSettings
    now: datetime
    ingested: str = ""  # `now` in the wire form: event.ingested of every record of the batch
    latest: str = ""  # the latest acceptable @timestamp in the wire form (compares as a string)
    topic_ids: Mapping[str, str] = field(default_factory=dict)  # Kafka's topic ids (shipper/topic_ids.py)

    def __post_init__(self) -> None:
        self.ingested = format_ts(self.now)
        self.latest = format_ts(self.now + self.settings.max_future)
