"""Kafka: an aiokafka producer on a background thread with its own event loop.

Logs go to the logs topic and metric documents to the metrics topic, keyed by service name.
A dead broker only fills the bounded queue (then drops, counted); the worker keeps reconnecting
with backoff and, once delivery works again, sends a notice with the number dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from collector.outputs.base import MetricBytes, Output

# aiokafka logs every refused connection; those records would loop back into this very output
_QUIET = ("aiokafka", "kafka")


class KafkaOutput(Output):
    name = "kafka"

    def __init__(self, bootstrap_servers: str, key: str, topic_logs: str, topic_metrics: str,
                 acks: str = "1", request_timeout: float = 10.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.bootstrap_servers = bootstrap_servers
        self.key = key.encode()
        self.topic_logs = topic_logs
        self.topic_metrics = topic_metrics
        self.acks: int | str = "all" if acks == "all" else int(acks)
        self.request_timeout = request_timeout
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
            linger_ms=5,
            request_timeout_ms=int(self.request_timeout * 1000),
            max_batch_size=1 << 20,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def _main(self) -> None:
        producer = None
        backoff = 0.0
        pending: list[bytes] = []
        while True:
            if not pending:
                if not self._queue and not self.closing:
                    await asyncio.to_thread(self._wake.wait, 0.2)
                self._wake.clear()
                pending = self.take()
                if not pending:
                    if self.closing:
                        break
                    continue
            try:
                if producer is None:
                    producer = await self._connect()
                futures = [
                    await producer.send(
                        self.topic_metrics if type(rec) is MetricBytes else self.topic_logs,
                        value=bytes(rec), key=self.key,
                    )
                    for rec in pending
                ]
                await asyncio.gather(*futures)
            except Exception:
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
                continue  # the batch is retried: at-least-once
            self.delivered += len(pending)
            self.connected = True
            backoff = 0.0
            notice = self.drop_notice()
            pending = [notice] if notice is not None else []
        if producer is not None:
            try:
                await producer.stop()
            except Exception:
                pass
