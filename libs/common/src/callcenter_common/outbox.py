"""Transactional outbox and idempotent consumption.

`Outbox.add(session, envelope)` writes the event in the same transaction as the state
change.  `OutboxRelay` publishes committed rows in order, in batches with publisher
confirms, and deletes them only once the broker has confirmed; while the broker is
away the rows wait.  `Inbox.handler(...)` applies each event id once per consumer:
the mark and the effect commit together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter_common.bus import Bus, BusUnavailable, Handler
from callcenter_common.db import OUTBOX_PENDING, Database
from callcenter_common.events import Envelope

log = logging.getLogger("callcenter.outbox")

OUTBOX_RELAYED = Counter("callcenter_outbox_relayed_total", "Outbox rows confirmed by the broker", ["service"])
OUTBOX_FAILURES = Counter("callcenter_outbox_relay_failures_total", "Relay rounds that failed", ["service"])
OUTBOX_LAG = Gauge("callcenter_outbox_oldest_seconds", "Age of the oldest unrelayed event", ["service"])
INBOX_DUPLICATES = Counter("callcenter_inbox_duplicates_total", "Redelivered events skipped", ["consumer"])


def outbox_columns() -> list[Column[object]]:
    return [
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("name", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    ]


def processed_event_columns() -> list[Column[object]]:
    return [
        Column("consumer", String(100), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    ]


class BusTables:
    """The two tables every service database has for the bus."""

    def __init__(self, metadata: MetaData) -> None:
        self.outbox = Table("outbox", metadata, *outbox_columns())
        self.processed = Table(
            "processed_events",
            metadata,
            *processed_event_columns(),
            PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
            Index("ix_processed_events_processed_at", "processed_at"),
        )


class Outbox:
    def __init__(self, tables: BusTables) -> None:
        self.table = tables.outbox

    async def add(self, session: AsyncSession, *envelopes: Envelope) -> None:
        """Stage events in the session's transaction; they leave only if it commits."""
        if not envelopes:
            return
        await session.execute(
            insert(self.table),
            [
                {
                    "event_id": str(e.id),
                    "name": e.name,
                    "payload": e.model_dump_json(),
                    "created_at": e.occurred_at,
                }
                for e in envelopes
            ],
        )
        session.info[OUTBOX_PENDING] = True


class OutboxRelay:
    """Moves committed outbox rows to the bus, oldest first."""

    def __init__(
        self,
        service: str,
        db: Database,
        bus: Bus,
        tables: BusTables,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
    ) -> None:
        self.service = service
        self.db = db
        self.bus = bus
        self.table = tables.outbox
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop = asyncio.Event()
        db.on_outbox_commit(self.notify)

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Let the round under way finish (a row confirmed by the broker is also deleted, so a
        restart does not send it again) and relay what was committed last; then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._stop.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        self._stopping = False
        self._stop.clear()

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
            self._wake.clear()
            stopping = self._stopping
            try:
                await self.drain()
                failures = 0
            except (BusUnavailable, OSError) as exc:
                failures += 1
                OUTBOX_FAILURES.labels(self.service).inc()
                log.warning("outbox relay of %s waits for the broker: %s", self.service, exc)
            except Exception:
                failures += 1
                OUTBOX_FAILURES.labels(self.service).inc()
                log.exception("outbox relay of %s failed", self.service)
            if stopping:
                return
            if failures:
                await self._pause(min(0.1 * 2**failures, self.poll_seconds * 5))

    async def _pause(self, seconds: float) -> None:
        # A stop during the pause ends it at once; new commits do not (the broker is away).
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def drain(self) -> int:
        """Publish every committed row; returns how many were confirmed."""
        total = 0
        while True:
            sent = await self._relay_batch()
            total += sent
            if sent < self.batch_size:
                return total

    async def _relay_batch(self) -> int:
        async with self.db.session() as session:
            query = select(self.table.c.seq, self.table.c.payload, self.table.c.created_at)
            query = query.order_by(self.table.c.seq).limit(self.batch_size)
            if not self.db.is_sqlite:
                # Replicas of one service share the table: each row is relayed by one of them.
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if not rows:
                OUTBOX_LAG.labels(self.service).set(0)
                return 0
            oldest = rows[0].created_at
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            OUTBOX_LAG.labels(self.service).set((datetime.now(UTC) - oldest).total_seconds())
            await self.bus.publish_many([Envelope.model_validate_json(r.payload) for r in rows])
            await session.execute(delete(self.table).where(self.table.c.seq.in_([r.seq for r in rows])))
        OUTBOX_RELAYED.labels(self.service).inc(len(rows))
        return len(rows)


ConsumerHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]


class Inbox:
    """Applies an event id once per consumer name, in the handler's own transaction."""

    def __init__(self, db: Database, tables: BusTables) -> None:
        self.db = db
        self.table = tables.processed

    def handler(self, consumer: str, handle: ConsumerHandler) -> Handler:
        async def run(envelope: Envelope) -> None:
            async with self.db.session() as session:
                if not await self._claim(session, consumer, envelope):
                    INBOX_DUPLICATES.labels(consumer).inc()
                    return
                await handle(session, envelope)

        return run

    async def _claim(self, session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
        values = {"consumer": consumer, "event_id": str(envelope.id), "processed_at": datetime.now(UTC)}
        dialect = postgresql if not self.db.is_sqlite else sqlite
        stmt = dialect.insert(self.table).values(**values).on_conflict_do_nothing()
        result = await session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def prune(self, older_than: timedelta) -> int:
        """Forget ids older than any redelivery could be."""
        cutoff = datetime.now(UTC) - older_than
        async with self.db.session() as session:
            result = await session.execute(delete(self.table).where(self.table.c.processed_at < cutoff))
        return int(getattr(result, "rowcount", 0))
