"""Where a record came from: its Kafka coordinates, its raw bytes and the service it was read as.

The Kafka message itself is an `Origin` (no copy per record); `Meta` builds one by hand (tests,
benchmarks). `Provenance` travels with a record's bulk action so that a refused item can be
dead-lettered with the bytes that were produced, not the enriched document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class Origin(Protocol):
    """A record's place in Kafka, as aiokafka's ConsumerRecord exposes it."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...  # epoch milliseconds, as Kafka keeps it
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...  # a header's value may be null


class Message(Origin, Protocol):
    @property
    def value(self) -> bytes | None: ...


class Meta(NamedTuple):
    """A Message built by hand."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes | None]] = ()
    value: bytes | None = None


class Provenance(NamedTuple):
    """Immutable; a tuple because one is made per record (a frozen dataclass costs 3x as much to build)."""

    origin: Origin
    raw: bytes | None
    service: str
