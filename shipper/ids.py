"""Document ids: what makes two deliveries the same document (the engine's `create` then answers 409).

- A record with its own `event.id`: a hash of that id and of the record's raw bytes. A client that
  sends the same record twice (a retry) sends the same bytes: one document. Two different records
  that share an `event.id` (a request id reused for every line of a request) differ in their bytes:
  two documents.
- A record without one: its Kafka coordinates and the topic's id, `<topic>-<partition>-<offset>-<topic
  id>`. A redelivery after a crash or a rebalance reads the same offset of the same topic: one
  document; a topic deleted and created again, or another cluster's topic of the same name, has
  another id (shipper/topic_ids.py), so its records at the same offsets are new documents.
- Any id (the monitor's too) longer than the engines' 512-byte limit is replaced by its hash.
docs/ARCHITECTURE.md explains the choice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from shipper.provenance import Message

MAX_ID_BYTES = 512  # Elasticsearch and OpenSearch refuse a longer _id
SHORT_ID = MAX_ID_BYTES // 4  # characters: an id no longer always fits (a character is at most 4 bytes)


def record_id(record: dict[str, Any], message: Message, topic_id: str = "") -> str:
    event = record.get("event")
    own = event.get("id") if type(event) is dict else None
    if type(own) is str and own:
        digest = hashlib.blake2b(own.encode(errors="surrogatepass"), digest_size=20)
        digest.update(b"\x00")
        digest.update(message.value or b"")
        return digest.hexdigest()
    return coordinates_id(message.topic, message.partition, message.offset, topic_id)


def coordinates_id(topic: str, partition: int, offset: int, topic_id: str = "") -> str:
    """`<topic>-<partition>-<offset>-<topic id>`. Unambiguous although topic names and base64url
    ids may hold `-`: read from the right, the id is always 22 characters and the numbers are digits."""
    base = f"{topic}-{partition}-{offset}"
    return f"{base}-{topic_id}" if topic_id else base


def bounded_id(doc_id: str) -> str:
    """The id itself when it fits in 512 bytes, else a hash of it (a character is at most 4 bytes in UTF-8)."""
    if len(doc_id) <= SHORT_ID or len(doc_id.encode(errors="surrogatepass")) <= MAX_ID_BYTES:
        return doc_id
    return "h-" + hashlib.blake2b(doc_id.encode(errors="surrogatepass"), digest_size=20).hexdigest()
