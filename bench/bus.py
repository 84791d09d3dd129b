"""Bus throughput: outbox -> RabbitMQ -> consumer, next to raw aio-pika publish-with-confirms -> consume.

    .venv/bin/python bench/bus.py [--events 20000]

Both paths use the same broker, queue type (quorum, as deployed), prefetch and persistent
messages.  The outbox path starts with the events committed in PostgreSQL and ends when the
consumer has handled the last one; the raw path starts with the events built in memory.  The
cost of committing the events is printed apart (it is the business transaction's, not the bus's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import ClassVar

import aio_pika
import asyncpg
from sqlalchemy import MetaData

from callcenter_common.bus import RabbitBus
from callcenter_common.db import Database
from callcenter_common.events import Envelope, Event
from callcenter_common.outbox import BusTables, Outbox, OutboxRelay

PG = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PREFETCH = 256


class CallAnsweredSample(Event):
    name: ClassVar[str] = "bench.call_answered"

    call_id: str
    caller_number: str
    agent_extension: str


def sample(i: int) -> Envelope:
    return CallAnsweredSample(call_id=f"1700000000.{i}", caller_number="13800138000", agent_extension="1001").envelope(
        "bench", correlation_id=f"1700000000.{i}"
    )


async def outbox_path(n: int, db: Database, exchange: str) -> tuple[float, float]:
    metadata = MetaData()
    tables = BusTables(metadata)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    outbox = Outbox(tables)
    bus = RabbitBus(AMQP, exchange=exchange, prefetch=PREFETCH)
    received = 0
    done = asyncio.Event()

    async def consume(_: Envelope) -> None:
        nonlocal received
        received += 1
        if received == n:
            done.set()

    bus.subscribe("bench.outbox", ["bench.#"], consume)
    await bus.start()
    await bus.wait_connected(10)

    started = time.perf_counter()
    per_tx = 10

    async def writer(start: int, stop: int) -> None:
        for first in range(start, stop, per_tx):
            async with db.session() as session:
                await outbox.add(session, *(sample(i) for i in range(first, min(first + per_tx, stop))))

    workers = 8
    chunk = n // workers
    await asyncio.gather(*(writer(w * chunk, n if w == workers - 1 else (w + 1) * chunk) for w in range(workers)))
    commit_seconds = time.perf_counter() - started

    relay = OutboxRelay("bench", db, bus, tables, batch_size=1000)
    started = time.perf_counter()
    relay.start()
    relay.notify()
    await asyncio.wait_for(done.wait(), 300)
    relay_seconds = time.perf_counter() - started
    await relay.stop()
    await _delete_queue(bus, "bench.outbox")
    await bus.close()
    return commit_seconds, relay_seconds


async def raw_path(n: int, exchange_name: str) -> float:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        publish_channel = await connection.channel(publisher_confirms=True)
        exchange = await publish_channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=PREFETCH)
        queue = await consume_channel.declare_queue("bench.raw", durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange_name, routing_key="bench.#")
        received = 0
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal received
            Envelope.from_bytes(message.body)  # the same parse the bus does
            await message.ack()
            received += 1
            if received == n:
                done.set()

        await queue.consume(on_message)
        envelopes = [sample(i) for i in range(n)]
        started = time.perf_counter()
        batch = 1000
        for first in range(0, n, batch):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(e.to_bytes(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=e.name,
                    )
                    for e in envelopes[first : first + batch]
                )
            )
        await asyncio.wait_for(done.wait(), 300)
        seconds = time.perf_counter() - started
        await consume_channel.queue_delete("bench.raw")
        await publish_channel.exchange_delete(exchange_name)
    return seconds


async def _delete_queue(bus: RabbitBus, name: str) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        await channel.queue_delete(f"{name}.dlq")
        await channel.exchange_delete(bus.exchange_name)


async def main(n: int) -> None:
    name = f"bench_bus_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name)
    try:
        raw_seconds = await raw_path(n, f"bench.raw.{name}")
        commit_seconds, relay_seconds = await outbox_path(n, db, f"bench.outbox.{name}")
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    raw_rate, outbox_rate = n / raw_seconds, n / relay_seconds
    print(f"events: {n}  (persistent, quorum queue, prefetch {PREFETCH})")
    print(f"raw aio-pika publish+confirm -> consume : {raw_rate:10.0f} events/s")
    print(f"outbox -> RabbitMQ -> consumer          : {outbox_rate:10.0f} events/s")
    print(f"ratio outbox / raw                      : {outbox_rate / raw_rate:10.2f}   (aim >= 0.5)")
    print(f"(committing the events to the outbox, 10 per transaction, 8 writers: {n / commit_seconds:.0f} events/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().events))
