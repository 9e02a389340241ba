"""How health tracking and alerting plug into the pipeline (see docs/ARCHITECTURE.md).

The pipeline asks the monitor for each service's state (stamped on its records), shows it every
enriched record with the Kafka message it came from, and ticks it every second; documents the
monitor returns are written with the batch that caused them, so they are committed together, and
ids derived from the message's coordinates (not from the enriched record, which carries
event.ingested) are the same on redelivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shipper.provenance import Message, Origin

if TYPE_CHECKING:  # the engine module (and its templates) is not needed to load the settings
    from shipper.engines.base import SearchEngine

Doc = tuple[str, dict[str, Any]]  # (document id, document with its data_stream.* fields set)


@dataclass
class PipelineStatus:
    caught_up: bool = False
    lag_total: int = 0
    lag_by_partition: dict[str, int] = field(default_factory=dict)
    dead_lettered_total: int = 0
    consumed_total: int = 0
    indexed_total: int = 0
    stream_overflow_total: int = 0  # records sent to a catch-all stream (shipper/streamcap.py)


class Monitor(Protocol):
    async def start(self, engine: SearchEngine) -> None: ...

    def state_of(self, service: str) -> str | None: ...

    def observe(self, record: dict[str, Any], origin: Origin | None = None) -> list[Doc]: ...

    def receive_shares(self, messages: Sequence[Message]) -> list[tuple[Message, str]]:
        """Stream shares (messages with the share header, shipper/health/shares.py) read from Kafka;
        returns those that are no valid share, with the reason (they are dead-lettered)."""
        ...

    async def tick(self, now: float, pipeline: PipelineStatus) -> list[Doc]: ...

    def metrics(self) -> list[str]: ...

    async def partitions_revoked(self, revoked: list[tuple[str, int]]) -> None: ...

    async def partitions_assigned(self, assigned: list[tuple[str, int]], counts: dict[str, int]) -> None: ...

    async def stop(self) -> None: ...


class NullMonitor:
    async def start(self, engine: SearchEngine) -> None:
        return None

    def state_of(self, service: str) -> str | None:
        return None

    def observe(self, record: dict[str, Any], origin: Origin | None = None) -> list[Doc]:
        return []

    def receive_shares(self, messages: Sequence[Message]) -> list[tuple[Message, str]]:
        """Health tracking is off: valid shares (of replicas that track it) are left aside all the same."""
        from shipper.health.shares import decode  # the health package imports this module

        return [(m, reason) for m in messages if isinstance(reason := decode(m.value), str)]

    async def tick(self, now: float, pipeline: PipelineStatus) -> list[Doc]:
        return []

    def metrics(self) -> list[str]:
        return []

    async def partitions_revoked(self, revoked: list[tuple[str, int]]) -> None:
        return None

    async def partitions_assigned(self, assigned: list[tuple[str, int]], counts: dict[str, int]) -> None:
        return None

    async def stop(self) -> None:
        return None
