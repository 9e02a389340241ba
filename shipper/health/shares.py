"""Stream shares: the counts of a service's log records read by a replica that does not own its
stream, sent on to the replica that does (issue 20 item 6).

A service's stream (silence, error rate, error ratio) is owned by the owner of its name's
partition in the first logs topic (shipper/health/ownership.py). Its records may arrive anywhere:
a name given by SHIPPER_SERVICE_MAP arrives on its Kafka key's partition, several keys mapped to
one name on several partitions, a producer that does not key by service on all of them. Each
replica counts what it reads of services it does not own (bounded: at most `max_services` of them
between two ticks) and, once a tick, produces those counts to Kafka: one message per owning
partition, on that very partition of the first logs topic. Whoever reads that partition owns the
services in it at that moment (after a rebalance too), and merges the counts as if it had read the
records. Kafka, not a side channel, because the partition is what decides ownership: a share can
never reach a replica that does not own its services, nor be lost in a handover (an unread share
is read by the partition's next owner), and it is committed like any record (a redelivered share
is merged once: the monitor remembers the newest share offset per partition).

A share is marked twice, so that only the shipper's own writes count: the Kafka header
`SHARE_HEADER` of collector/contract/streams.py (no intake sets Kafka headers: only a producer
with write access to the topics, who could as well forge records, can write one) and the
own-writer marker `event.provider: elk-shipper` as a plain string (is_own_written). A message
with the header that is no valid share is dead-lettered, never indexed as a log document.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from collector.contract.streams import OWN_WRITER, is_own_written
from collector.contract.timefmt import format_epoch
from shipper.health.signals import Stream

SHARE_ACTION = "stream-share"
MAX_SERVICES_PER_SHARE = 200  # services in one message (a few hundred bytes each: far under 1 MiB)
MAX_BUCKETS = 1000  # buckets of one service in one share (one tick's records span a few)
MAX_NAME = 4096

Count = Annotated[StrictInt, Field(ge=0)]
Timestamp = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]


class ServiceShare(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=MAX_NAME)
    max_ts: Timestamp
    min_ts: Timestamp
    buckets: list[tuple[StrictInt, Count, Count]] = Field(max_length=MAX_BUCKETS)  # (bucket, records, errors)


class Share(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str = Field(max_length=MAX_NAME)  # the sender's consumer group: another group's shares are not ours
    bucket_s: float = Field(gt=0)
    caught_up: StrictBool  # the sender was caught up: its silence of the service can be trusted
    services: list[ServiceShare] = Field(max_length=MAX_SERVICES_PER_SHARE)

    def stream(self, service: ServiceShare, bucket_s: float) -> tuple[Stream, float]:
        """One service's counts as a partial Stream, and the scale from its buckets to `bucket_s`'s."""
        part = Stream(max_ts=service.max_ts, min_ts=service.min_ts, bucket_s=self.bucket_s)
        for bucket, records, errors in service.buckets:
            part.records[bucket] = part.records.get(bucket, 0) + records
            if errors:
                part.errors[bucket] = part.errors.get(bucket, 0) + errors
        return part, self.bucket_s / bucket_s


def encode(parts: dict[str, Stream], group: str, bucket_s: float, caught_up: bool, now: float) -> list[bytes]:
    """Message values for `parts` (service -> counts), MAX_SERVICES_PER_SHARE services each."""
    services = [{"name": name, "max_ts": part.max_ts, "min_ts": part.min_ts,
                 "buckets": [[b, n, part.errors.get(b, 0)] for b, n in sorted(part.records.items())]}
                for name, part in parts.items()]
    return [orjson.dumps({"@timestamp": format_epoch(now),
                          "event": {"provider": OWN_WRITER, "kind": "metric", "action": SHARE_ACTION},
                          "share": {"group": group, "bucket_s": bucket_s, "caught_up": caught_up,
                                    "services": services[i:i + MAX_SERVICES_PER_SHARE]}})
            for i in range(0, len(services), MAX_SERVICES_PER_SHARE)]


def decode(value: bytes | None) -> Share | str:
    """The share in a message with SHARE_HEADER, or why it is none (it is then dead-lettered)."""
    try:
        doc: Any = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return "a stream share that is not JSON"
    if not is_own_written(doc) or doc["event"].get("action") != SHARE_ACTION:
        return "a message with the stream-share header that is not the shipper's own share"
    try:
        return Share.model_validate(doc.get("share"))
    except ValidationError as exc:
        return f"an invalid stream share: {exc.errors()[0]['msg']}"[:500]
