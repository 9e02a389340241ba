"""One OTLP export, whatever carried it (OTLP/HTTP in `app`, OTLP/gRPC in `grpc_server`).

With the ingest API's rules and its own classes (auth, Kafka gate, limits): bearer token ->
service (401); the resource may name that service or one of its instances, another service is
refused (403); Kafka known to be down: 503 before anything is parsed; at most
`INGEST_MAX_RECORDS` log records or data points, counted before the request is built (413);
decoded with the generated classes, entry by entry when the whole does not decode (a record that
cannot be decoded is rejected, the rest kept; 400 only when the request itself is unusable); each
record mapped to the library's ECS document (collector.otlp.mapping), one that cannot be used
counted in `partial_success` (every one unusable: 400); what the request produces is bounded by
what is left of the in-flight bound (413) and held in it; then every accepted document is produced
with acks=all and only then the answer goes out. Kafka unavailable: 503 with Retry-After. Parsing
and mapping run in two worker threads, off the event loop. Refusals are `Problem`s with HTTP
statuses; each transport says them its own way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from collector.ingest.auth import Authenticator
from collector.ingest.body import Hold, InFlight, Problem
from collector.ingest.metrics import IngestStats
from collector.ingest.producer import KafkaGate, Unavailable
from collector.otlp import bound, decode
from collector.otlp.config import OtlpSettings
from collector.otlp.mapping import Mapper, Origin, OtherService, Rejected
from collector.otlp.metrics import Series, points
from collector.redact import Redactor

_SHAPE_ERRORS = (RecursionError, TypeError, ValueError, OverflowError, orjson.JSONEncodeError)


@dataclass(frozen=True)
class Signal:
    """What differs between logs and metrics."""

    endpoint: str  # the OTLP/HTTP path, also the stats label
    request_cls: type[Message]
    response_cls: type[Message]
    path: bound.Path
    what: str
    rejected_field: str
    topic: Callable[[OtlpSettings], str]


LOGS = Signal("/v1/logs", ExportLogsServiceRequest, ExportLogsServiceResponse, bound.LOGS, "log records",
              "rejected_log_records", lambda s: s.topic_logs)
METRICS = Signal("/v1/metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse, bound.METRICS,
                 "data points", "rejected_data_points", lambda s: s.topic_metrics)


class OutputTooLarge(Exception):
    """A request's records add up to more bytes once mapped than it may hold (413)."""


class Outcome:
    """What one request's mapping produced: Kafka pairs and their bytes (at most `room`), rejected
    count and first reason, other services."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.bytes = 0
        self.out: list[tuple[bytes, bytes]] = []
        self.rejected = 0
        self.reason = ""
        self.others: set[str] = set()

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if not self.reason:
            self.reason = reason


class Intake:
    def __init__(self, settings: OtlpSettings):
        self.settings = settings
        self.gate = KafkaGate(settings)
        self.auth = Authenticator(settings)
        self.mapper = Mapper(Redactor(settings.redact), settings.default_environment, settings.otlp_max_attributes,
                             self.auth.services)
        self.stats = IngestStats()
        self.series = Series()  # cumulative <-> per-interval metric values (collector.otlp.metrics)
        self.busy = InFlight(settings.max_in_flight_bytes)  # request bytes read, mapped or produced right now
        # parsing and mapping: off the event loop, at most two at a time (CPU-bound: more would only
        # hold more requests' objects at once)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="otlp-map")

    def service(self, authorization: str | None) -> str:
        service = self.auth.service_for(authorization)
        if service is None:
            raise Problem(401, "a valid bearer token is required (Authorization: Bearer <token>)",
                          {"WWW-Authenticate": 'Bearer realm="otlp"'})
        return service

    def refuse_if_down(self) -> None:
        """503 straight away while Kafka is known to be down: before the body is read or parsed."""
        try:
            self.gate.refuse_if_down()
        except Unavailable as exc:
            raise Problem(503, exc.reason, {"Retry-After": str(exc.retry_after)}) from None

    async def export(self, signal: Signal, body: bytes, kind: str, service: str, hold: Hold) -> Message:
        """The export's response message once every accepted record is in Kafka; Problem otherwise.

        Parsing and mapping run in `self.pool` (two threads), not on the event loop: a 10 MB body
        costs seconds of CPU, and `/health` and every other client must not wait for it."""
        settings, stats = self.settings, self.stats
        self.refuse_if_down()
        room = max(settings.max_in_flight_bytes - hold.bytes, settings.max_record_bytes)
        outcome = await asyncio.get_running_loop().run_in_executor(
            self.pool, self._decode_and_map, signal, body, kind, service, room)
        hold.grow(outcome.bytes)  # what the request produces counts in the in-flight bound (503 past it)
        if outcome.others:
            raise Problem(403, f"this token may write for service {service!r} only; the request's resources "
                               f"name {sorted(outcome.others)[:5]}")
        if outcome.rejected and not outcome.out:
            stats.rejected[signal.endpoint] += outcome.rejected
            raise Problem(400, f"all {outcome.rejected} {signal.what} were rejected; first: {outcome.reason}")
        if outcome.out:
            t0 = time.perf_counter()
            try:
                await self.gate.produce(signal.topic(settings), outcome.out)
            except Unavailable as exc:
                raise Problem(503, exc.reason, {"Retry-After": str(exc.retry_after)}) from None
            stats.produce.observe(time.perf_counter() - t0)
            stats.accepted[signal.endpoint] += len(outcome.out)
        response = signal.response_cls()
        if outcome.rejected:
            stats.rejected[signal.endpoint] += outcome.rejected
            partial = response.partial_success
            setattr(partial, signal.rejected_field, outcome.rejected)
            partial.error_message = f"{outcome.rejected} {signal.what} rejected; first: {outcome.reason}"[:1000]
        return response

    def _decode_and_map(self, signal: Signal, body: bytes, kind: str, service: str, room: int) -> Outcome:
        """In a worker thread: the request parsed and mapped; Problem 400/413 when it cannot be."""
        limit = self.settings.max_records
        try:
            parsed = decode.parse(body, kind, signal.request_cls, signal.path, limit)
        except decode.Malformed as exc:
            raise Problem(400, str(exc)) from None
        except bound.TooMany as exc:
            raise Problem(413, f"{signal.what}: {exc}, the limit per request is {limit}") from None
        outcome = Outcome(room)
        if parsed.rejected:  # entries that could not be decoded: the rest go on (partial_success)
            outcome.rejected, outcome.reason = parsed.rejected, parsed.reason
        try:
            if signal is LOGS:
                self._map_logs(outcome, parsed.message, service)
            else:
                self._map_metrics(outcome, parsed.message, service)
        except OutputTooLarge:
            raise Problem(413, f"the {signal.what} would be more than {room} bytes once mapped (resource "
                               "attributes are copied into every record): send fewer per request") from None
        return outcome

    # ------------------------------------------------------------------------------------ mapping

    def _add(self, outcome: Outcome, key: bytes, rec: dict[str, Any]) -> None:
        value = orjson.dumps(rec)
        limit = self.settings.max_record_bytes
        if len(value) > limit:
            outcome.reject(f"a record is {len(value)} bytes once mapped, over the limit of {limit}")
        else:
            outcome.bytes += len(value)
            if outcome.bytes > outcome.room:
                raise OutputTooLarge
            outcome.out.append((key, value))

    def _origin(self, outcome: Outcome, resource: Any, service: str) -> Origin | None:
        """The resource's contribution, or None (noted for the 403) when it names another service."""
        try:
            return self.mapper.origin(resource.attributes, service)
        except OtherService as exc:
            outcome.others.add(exc.name[:100])
            return None

    def _map_logs(self, outcome: Outcome, request: Any, service: str) -> None:
        key = service.encode()
        log = self.mapper.log
        for rl in request.resource_logs:
            origin = self._origin(outcome, rl.resource, service)
            if origin is None:
                continue
            for sl in rl.scope_logs:
                scope_name = sl.scope.name
                for lr in sl.log_records:
                    try:
                        self._add(outcome, key, log(origin, scope_name, lr))
                    except _SHAPE_ERRORS:
                        outcome.reject("a log record could not be mapped (nested too deeply?)")

    def _map_metrics(self, outcome: Outcome, request: Any, service: str) -> None:
        key = service.encode()
        for rm in request.resource_metrics:
            origin = self._origin(outcome, rm.resource, service)
            if origin is None:
                continue
            # a series: this resource (its service and node, its attributes) x metric x point attributes
            scope = (service, origin.service.get("node", {}).get("name"), rm.resource.SerializeToString())
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point, values, start in points(metric, self.series, scope):
                        if isinstance(values, Rejected):
                            outcome.reject(str(values))
                            continue
                        try:
                            doc = self.mapper.metric_doc(origin, point.time_unix_nano, values, point.attributes,
                                                         start)
                            self._add(outcome, key, doc)
                        except _SHAPE_ERRORS:
                            outcome.reject(f"{metric.name}: a data point could not be mapped")
