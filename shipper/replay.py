"""`shipper replay`: send dead letters back to the topic they came from, after the cause is fixed.

Reads the dead-letter topic in its own consumer group (so a replay resumes where the last one
stopped), optionally only one error type, and stops when it has reached the end. Replayed
records get fresh offsets and so fresh ids; replay each dead letter once.
"""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from shipper.config import ShipperSettings
from shipper.deadletter import original_bytes
from shipper.producer import DeadLetterProducer


async def replay(settings: ShipperSettings, error_type: str | None = None) -> tuple[int, int]:
    """Returns (replayed, skipped)."""
    consumer = AIOKafkaConsumer(
        settings.dead_letter_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.group_id}-replay", enable_auto_commit=False, auto_offset_reset="earliest",
    )
    producer = DeadLetterProducer(settings)
    replayed = skipped = 0
    await consumer.start()
    await producer.start()
    try:
        for _ in range(60):  # a missing or empty dead-letter topic is "nothing to replay", not a hang
            if consumer.assignment():
                break
            await consumer.getmany(timeout_ms=500)
        else:
            return 0, 0
        partitions = list(consumer.assignment())
        end = await consumer.end_offsets(partitions)
        while True:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= end[tp] for tp in partitions):
                break
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            commit: dict[TopicPartition, int] = {}
            for tp, messages in batches.items():
                for message in messages:
                    if message.offset >= end[tp]:
                        continue
                    doc = orjson.loads(message.value) if message.value else {}
                    letter = doc.get("dead_letter", {})
                    if (error_type and doc.get("error", {}).get("type") != error_type) or letter.get("truncated"):
                        skipped += 1  # a truncated original cannot be replayed: it is still at its source offset
                    else:
                        await producer.send(letter["topic"], original_bytes(doc), key=message.key)
                        replayed += 1
                    commit[tp] = message.offset + 1
            if commit:
                await consumer.commit(commit)
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed, skipped
