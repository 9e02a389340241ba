"""Reading back what a test produced to the real broker."""

from __future__ import annotations

import socket
import time
from typing import Any

from aiokafka import AIOKafkaConsumer


async def consume(bootstrap: str, topic: str, count: int, wait: float = 20.0) -> list[Any]:
    """Every message of `topic`, waiting until `count` arrived, then a moment more: anything beyond
    `count` would be a duplicate, and it must get the chance to show up."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + wait
        while len(out) < count and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(msgs)
        for msgs in (await consumer.getmany(timeout_ms=1000)).values():
            out.extend(msgs)
    finally:
        await consumer.stop()
    return out


def self_connected() -> socket.socket:
    """A TCP socket connected to itself (simultaneous open): what a client can get from a port in the
    ephemeral range that nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.connect(sock.getsockname())
    assert sock.getsockname() == sock.getpeername()
    return sock
