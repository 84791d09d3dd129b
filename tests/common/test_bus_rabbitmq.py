"""The bus on a real RabbitMQ: outbox delivery across a broker outage, once-only consumption,
dead-lettering after bounded tries, a publisher that survives a broker restart (issue #2)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import ClassVar

import aio_pika
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter_common.bus import BusUnavailable, RabbitBus
from callcenter_common.db import Database
from callcenter_common.events import Envelope, Event
from callcenter_common.outbox import BusTables, Inbox, Outbox, OutboxRelay
from callcenter_common.settings import PlatformSettings


class VisitBooked(Event):
    name: ClassVar[str] = "visit.booked"

    patient: str


metadata = MetaData()
tables = BusTables(metadata)
applied = Table("applied", metadata, Column("id", Integer, primary_key=True), Column("patient", String(50)))


@pytest.fixture
async def database(pg_url: str) -> AsyncIterator[Database]:
    db = Database(pg_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield db
    await db.dispose()


def make_bus(settings: PlatformSettings, cleanup: Callable[[RabbitBus], None]) -> RabbitBus:
    bus = RabbitBus(
        settings.amqp_url,
        exchange=settings.exchange,
        max_deliveries=settings.consumer_max_deliveries,
        retry_backoff_seconds=0,
    )
    cleanup(bus)
    return bus


def rabbitmqctl(*args: str) -> None:
    assert shutil.which("rabbitmqctl"), "rabbitmqctl is needed to stop and start the broker"
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


async def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.broker_restart
async def test_event_committed_while_broker_is_down_is_delivered_after_it_returns(
    database: Database, platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]
) -> None:
    bus = make_bus(platform_settings, cleanup_bus)
    received: asyncio.Queue[Envelope] = asyncio.Queue()
    bus.subscribe("test.delivery", ["visit.*"], received.put)
    await bus.start()
    await bus.wait_connected(10)
    outbox = Outbox(tables)
    relay = OutboxRelay("test", database, bus, tables, poll_seconds=0.2)
    relay.start()
    try:
        rabbitmqctl("stop_app")
        try:
            await wait_for(lambda: not bus.connected, 10)
            async with database.session() as session:
                await session.execute(insert(applied).values(patient="before-outage"))
                await outbox.add(session, VisitBooked(patient="p-1").envelope("test"))
            with pytest.raises(BusUnavailable):
                await bus.publish(VisitBooked(patient="direct").envelope("test"))
            async with database.session() as session:
                waiting = await session.scalar(select(func.count()).select_from(tables.outbox))
            assert waiting == 1, "the event waits in the outbox while the broker is down"
        finally:
            rabbitmqctl("start_app")
        event = await asyncio.wait_for(received.get(), 60)
        assert VisitBooked.from_envelope(event).patient == "p-1"
        async with database.session() as session:
            assert await session.scalar(select(func.count()).select_from(tables.outbox)) == 0
        # The same publisher goes on publishing after the restart.
        await bus.publish(VisitBooked(patient="p-2").envelope("test"))
        event = await asyncio.wait_for(received.get(), 30)
        assert VisitBooked.from_envelope(event).patient == "p-2"
    finally:
        await relay.stop()
        await bus.close()


async def test_redelivered_event_is_applied_once(
    database: Database, platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]
) -> None:
    bus = make_bus(platform_settings, cleanup_bus)
    inbox = Inbox(database, tables)
    seen = asyncio.Event()
    deliveries = 0

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        await session.execute(insert(applied).values(patient=VisitBooked.from_envelope(envelope).patient))

    handler = inbox.handler("test.once", apply)

    async def counting(envelope: Envelope) -> None:
        nonlocal deliveries
        deliveries += 1
        await handler(envelope)
        if deliveries == 3:
            seen.set()

    bus.subscribe("test.once", ["visit.booked"], counting)
    await bus.start()
    await bus.wait_connected(10)
    try:
        envelope = VisitBooked(patient="p-once").envelope("test")
        for _ in range(3):  # the broker hands the same event over three times
            await bus.publish(envelope)
        await asyncio.wait_for(seen.wait(), 20)
        async with database.session() as session:
            rows = (await session.execute(select(applied.c.patient))).scalars().all()
        assert rows == ["p-once"]
    finally:
        await bus.close()


async def test_failing_consumer_dead_letters_after_bounded_tries(
    platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]
) -> None:
    bus = make_bus(platform_settings, cleanup_bus)
    attempts = 0

    async def always_fails(_: Envelope) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("cannot apply")

    bus.subscribe("test.poison", ["visit.booked"], always_fails)
    await bus.start()
    await bus.wait_connected(10)
    try:
        envelope = VisitBooked(patient="p-poison").envelope("test")
        await bus.publish(envelope)
        connection = await aio_pika.connect(platform_settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.get_queue("test.poison.dlq")
            async with asyncio.timeout(30):
                while (message := await dlq.get(fail=False)) is None:
                    await asyncio.sleep(0.05)
            await message.ack()
        assert Envelope.from_bytes(message.body).id == envelope.id
        assert attempts == platform_settings.consumer_max_deliveries
    finally:
        await bus.close()


async def test_unreadable_message_goes_to_dead_letter_queue(
    platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]
) -> None:
    bus = make_bus(platform_settings, cleanup_bus)
    handled: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        handled.append(envelope)

    bus.subscribe("test.garbage", ["visit.booked"], record)
    await bus.start()
    await bus.wait_connected(10)
    try:
        connection = await aio_pika.connect(platform_settings.amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(platform_settings.exchange)
            await exchange.publish(aio_pika.Message(b"{not json"), routing_key="visit.booked")
            dlq = await channel.get_queue("test.garbage.dlq")
            async with asyncio.timeout(20):
                while (message := await dlq.get(fail=False)) is None:
                    await asyncio.sleep(0.05)
            await message.ack()
        assert message.body == b"{not json"
        assert handled == []
    finally:
        await bus.close()


async def test_relay_publishes_in_commit_order_in_batches(
    database: Database, platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]
) -> None:
    bus = make_bus(platform_settings, cleanup_bus)
    received: list[str] = []
    done = asyncio.Event()

    async def collect(envelope: Envelope) -> None:
        received.append(VisitBooked.from_envelope(envelope).patient)
        if len(received) == 1200:
            done.set()

    bus.subscribe("test.order", ["visit.booked"], collect)
    await bus.start()
    await bus.wait_connected(10)
    relay = OutboxRelay("test", database, bus, tables, batch_size=500)
    outbox = Outbox(tables)
    try:
        async with database.session() as session:
            await outbox.add(session, *(VisitBooked(patient=f"p{i:04}").envelope("test") for i in range(1200)))
        assert await relay.drain() == 1200
        await asyncio.wait_for(done.wait(), 30)
        assert received == [f"p{i:04}" for i in range(1200)]
    finally:
        await bus.close()


async def test_rolled_back_transaction_sends_nothing(database: Database) -> None:
    outbox = Outbox(tables)
    with pytest.raises(RuntimeError):
        async with database.session() as session:
            await outbox.add(session, VisitBooked(patient="never").envelope("test"))
            raise RuntimeError("business rule failed")
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(tables.outbox)) == 0


async def test_stopping_the_relay_sends_what_was_committed_last(
    database: Database, platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]
) -> None:
    bus = make_bus(platform_settings, cleanup_bus)
    received: asyncio.Queue[Envelope] = asyncio.Queue()
    bus.subscribe("test.last", ["visit.booked"], received.put)
    await bus.start()
    await bus.wait_connected(10)
    relay = OutboxRelay("test", database, bus, tables, poll_seconds=60)
    outbox = Outbox(tables)
    try:
        relay.start()
        async with database.session() as session:
            await outbox.add(session, VisitBooked(patient="last-words").envelope("test"))
        await relay.stop()
        async with database.session() as session:
            assert await session.scalar(select(func.count()).select_from(tables.outbox)) == 0
        event = await asyncio.wait_for(received.get(), 10)
        assert VisitBooked.from_envelope(event).patient == "last-words"
    finally:
        await bus.close()
