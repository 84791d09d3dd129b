"""Every service migrates to head on PostgreSQL and on SQLite, and its models match its migrations."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from callcenter_common.catalog import SERVICES
from callcenter_common.db import Database
from callcenter_common.migrations import upgrade_database

PACKAGES = [info.package for info in SERVICES]


def schema_of(package: str) -> tuple[MetaData, Path]:
    models = importlib.import_module(f"{package}.models")
    main = importlib.import_module(f"{package}.main")
    return models.Base.metadata, main.MIGRATIONS


def differences(connection: Connection, metadata: MetaData) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [d for d in compare_metadata(context, metadata) if not _is_ignorable(d)]


def _is_ignorable(diff: object) -> bool:
    # alembic's own bookkeeping table is not in any service's models.
    return isinstance(diff, tuple) and len(diff) > 1 and getattr(diff[1], "name", "") == "alembic_version"


@pytest.mark.parametrize("package", PACKAGES)
async def test_migrations_match_models_on_postgres(package: str, pg_url: str) -> None:
    metadata, migrations = schema_of(package)
    db = Database(pg_url)
    try:
        await upgrade_database(db, migrations)
        await upgrade_database(db, migrations)  # a second start changes nothing
        async with db.engine.connect() as conn:
            assert await conn.run_sync(differences, metadata) == []
    finally:
        await db.dispose()


@pytest.mark.parametrize("package", PACKAGES)
async def test_migrations_run_on_sqlite(package: str, tmp_path: Path) -> None:
    metadata, migrations = schema_of(package)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    try:
        await upgrade_database(db, migrations)
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: c.dialect.get_table_names(c)))
        assert set(metadata.tables) <= tables
    finally:
        await db.dispose()
