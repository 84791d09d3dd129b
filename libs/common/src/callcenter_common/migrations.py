"""Alembic wiring every service reuses: its `env.py` is two lines, its first migration one call."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, PrimaryKeyConstraint, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from callcenter_common.db import Database
from callcenter_common.outbox import outbox_columns, processed_event_columns


def run_alembic_env(metadata: MetaData, database_url: Callable[[], str]) -> None:
    """Body of a service's `migrations/env.py`."""
    config = context.config
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run(connection, metadata)
        return
    url = config.get_main_option("sqlalchemy.url") or database_url()
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def online() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.begin() as conn:
            await conn.run_sync(_run, metadata)
        await engine.dispose()

    asyncio.run(online())


def _run(connection: Connection, metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def alembic_config(script_location: Path, **attributes: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes.update(attributes)
    return config


async def upgrade_database(db: Database, script_location: Path) -> None:
    """`alembic upgrade head` on this database; replicas starting together take turns."""
    async with db.engine.begin() as conn:
        if not db.is_sqlite:
            lock_id = zlib.crc32(str(script_location.resolve()).encode())
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
        await conn.run_sync(_upgrade, script_location)


def _upgrade(connection: Connection, script_location: Path) -> None:
    command.upgrade(alembic_config(script_location, connection=connection), "head")


def create_bus_tables() -> None:
    """For a service's first migration: the outbox and processed-events tables."""
    op.create_table("outbox", *outbox_columns())
    op.create_table(
        "processed_events",
        *processed_event_columns(),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    )
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])


def drop_bus_tables() -> None:
    op.drop_index("ix_processed_events_processed_at", "processed_events")
    op.drop_table("processed_events")
    op.drop_table("outbox")
