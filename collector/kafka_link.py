"""How our Kafka clients behave while the broker is away, one rule for the intakes' gate
(collector.ingest.producer.KafkaGate) and the tailer's sink (collector.tail.sink.KafkaSink):

- no producer is made until a bootstrap server answers with a real peer (`broker_listens`): a
  producer left reconnecting to a stopped broker logs an error per attempt, ten or twenty a second,
  and a broker port inside the ephemeral range with nothing listening can be "connected" to itself
  (TCP simultaneous open), where the client reads its own requests back as answers;
- tries while it is away are spaced by a wait that doubles per failed try up to MAX_WAIT_S
  (`next_wait`);
- the outage is said once when it starts and once when it ends (by the caller, in its own words);
  aiokafka's own repeated warnings pass once a minute (`quiet_aiokafka`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

MAX_WAIT_S = 30.0
# aiokafka's loggers that speak per connection attempt or per failed request
_AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.client", "aiokafka.conn", "aiokafka.cluster", "aiokafka.producer.sender",
                     "aiokafka.producer.producer")


def next_wait(wait: float, first: float, cap: float = MAX_WAIT_S) -> float:
    """The wait after a failed try that followed `wait`: doubled, at most `cap` (or `first` when
    that is longer)."""
    return min(wait * 2, max(cap, first))


async def broker_listens(bootstrap: str, timeout_s: float) -> str | None:
    """None when a bootstrap server accepts a TCP connection that is not the client's own; else why."""
    reason = "no bootstrap server"
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout_s)
        except (OSError, ValueError, TimeoutError) as exc:
            reason = f"cannot connect to {server.strip()}: {type(exc).__name__}"
            continue
        sock = writer.get_extra_info("socket")
        itself = sock is not None and sock.getsockname() == sock.getpeername()
        writer.close()
        if not itself:
            return None
        reason = f"{server.strip()}: the connection reached itself (nothing listens on that port)"
    return reason


class OncePerWindow(logging.Filter):
    """Lets a warning or error through once per `window_s` per message template (debug and info pass):
    a broker gone away makes aiokafka log the same error per reconnect attempt, 20 a second, until
    the producer is dropped. Bounded: at most 256 templates remembered (they are aiokafka's, not the
    network's)."""

    def __init__(self, window_s: float = 60.0, clock: Any = time.monotonic):
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.msg)
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.window_s:
            return False
        if len(self._last) >= 256:
            self._last.clear()
        self._last[key] = now
        return True


def quiet_aiokafka() -> None:
    """Installs one OncePerWindow on each of aiokafka's chatty loggers (idempotent)."""
    for name in _AIOKAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OncePerWindow) for f in logger.filters):
            logger.addFilter(OncePerWindow())
