"""Kafka: an aiokafka producer on a background thread with its own event loop.

Logs go to the logs topic and metric documents to the metrics topic, keyed by service name.
A dead broker only fills the bounded queue (then drops, counted); the worker keeps reconnecting
with backoff and, once delivery works again, sends a notice with the number dropped.

No copies on a resend: with `acks=all` (the default) the producer is idempotent, so its own
retries of a batch are written once; after an error only the records Kafka did not acknowledge
are sent again, and a record the broker refuses for good (over the topic's message limit) is
counted as rejected instead of being resent for ever with everything queued behind it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from collector.outputs.base import MetricBytes, Output
from collector.outputs.fit import fit

# aiokafka logs every refused connection; those records would loop back into this very output
_QUIET = ("aiokafka", "kafka")
MAX_REQUEST_SIZE = 1 << 20  # aiokafka's default, whatever the broker's message.max.bytes
_RECORD_OVERHEAD = 512  # batch header and record framing around key and value (about 100 bytes)


def _refuses_us(exc: BaseException) -> bool:
    """Authentication or authorization (topic ACL) refused: the broker's 4xx."""
    from aiokafka import errors

    return isinstance(exc, errors.AuthenticationFailedError | errors.SaslAuthenticationFailed
                      | errors.TopicAuthorizationFailedError | errors.ClusterAuthorizationFailedError)


def _refused_for_good(exc: BaseException) -> bool:
    """The broker will never take this record as it is (larger than the topic allows, or corrupt)."""
    from aiokafka import errors

    return isinstance(exc, errors.MessageSizeTooLargeError | errors.RecordListTooLargeError
                      | errors.CorruptRecordException | errors.InvalidTopicError)


class KafkaOutput(Output):
    name = "kafka"

    def __init__(self, bootstrap_servers: str, key: str, topic_logs: str, topic_metrics: str,
                 acks: str = "all", request_timeout: float = 10.0, max_request_size: int = MAX_REQUEST_SIZE,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.bootstrap_servers = bootstrap_servers
        self.key = key.encode()
        self.topic_logs = topic_logs
        self.topic_metrics = topic_metrics
        self.acks: int | str = "all" if acks == "all" else int(acks)
        self.request_timeout = request_timeout
        self.max_request_size = max_request_size
        self.max_value = max_request_size - len(self.key) - _RECORD_OVERHEAD
        for name in _QUIET:
            quiet = logging.getLogger(name)
            quiet.propagate = False
            if not quiet.handlers:
                quiet.addHandler(logging.NullHandler())  # else logging's last resort prints to stderr

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _connect(self) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks=self.acks,
            # the broker drops the producer's own resends of a batch it already has (needs acks=all)
            enable_idempotence=self.acks == "all",
            linger_ms=5,
            request_timeout_ms=int(self.request_timeout * 1000),
            max_batch_size=1 << 20,
            max_request_size=self.max_request_size,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    def _prepare(self, records: list[bytes]) -> list[tuple[str, bytes]]:
        """(topic, value) for each record that fits `max_request_size`, cut to fit if need be; one
        that cannot be cut is dropped and counted. Done once per record, not per retry."""
        out = []
        for rec in records:
            topic = self.topic_metrics if type(rec) is MetricBytes else self.topic_logs
            value = fit(bytes(rec), self.max_value)
            if value is None:
                self.refused(1, f"a record of {len(rec)} bytes is over max_request_size "
                                f"({self.max_request_size}) and cannot be cut to fit")
                continue
            if len(value) != len(rec):
                self.truncated += 1
            out.append((topic, value))
        return out

    async def _send(self, producer: Any, pending: list[tuple[str, bytes]]
                    ) -> list[tuple[tuple[str, bytes], Exception]]:
        """Sends `pending` and waits for every answer. Acknowledged records are counted delivered and
        removed from `pending`, refused-for-good ones counted rejected and removed; what is left
        (with its error) is to be sent again."""
        futures = []
        error: Exception | None = None
        for topic, value in pending:
            try:
                futures.append(await producer.send(topic, value=value, key=self.key))
            except Exception as exc:  # the rest is not sent at all
                error = exc
                break
        results = await asyncio.gather(*futures, return_exceptions=True)
        left: list[tuple[tuple[str, bytes], Exception]] = []
        for record, result in zip(pending, results, strict=False):
            if not isinstance(result, Exception):
                self.delivered += 1
            elif _refused_for_good(result):
                self.refused(1, f"Kafka refused a record of {len(record[1])} bytes for {record[0]!r} "
                                f"({type(result).__name__})")
            else:
                left.append((record, result))
        if error is not None:
            left += [(record, error) for record in pending[len(futures):]]
        pending[:] = [record for record, _ in left]
        return left

    async def _main(self) -> None:
        producer = None
        backoff = 0.0
        pending: list[tuple[str, bytes]] = []
        while True:
            if not pending:
                if not self._queue and not self.closing:
                    await asyncio.to_thread(self._wake.wait, 0.2)
                self._wake.clear()
                taken = self.take()
                if not taken:
                    if self.closing:
                        break
                    continue
                pending = self._prepare(taken)
                if not pending:
                    continue
            try:
                if producer is None:
                    producer = await self._connect()
                unsent = await self._send(producer, pending)
                if unsent:
                    raise unsent[0][1]
            except Exception as exc:
                if _refuses_us(exc):
                    self.auth_failed(f"Kafka refused access ({type(exc).__name__}: {exc})")
                self.failures += 1
                self.connected = False
                if producer is not None:
                    try:
                        await producer.stop()
                    except Exception:
                        pass
                    producer = None
                if self.closing:
                    self.dropped += len(pending)  # held for retry, lost at the shutdown deadline
                    break
                backoff = self.next_backoff(backoff)
                await asyncio.to_thread(self.sleep, backoff)
                continue  # only what was not acknowledged is sent again
            self.connected = True
            self._told = False
            backoff = 0.0
            notice = self.drop_notice()
            pending = self._prepare([notice]) if notice is not None else []
        if producer is not None:
            try:
                await producer.stop()
            except Exception:
                pass
