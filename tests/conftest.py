"""Fixtures of the whole suite: real PostgreSQL and RabbitMQ, throw-away per test.

- `pg_url`: a fresh PostgreSQL database for one test, dropped afterwards;
  `new_pg_database()` makes more (a second service's own database).
- `platform_settings`: `PlatformSettings` for tests: RabbitMQ in this session's own
  vhost (created here, deleted at the end), a test JWT key, no retry pauses.
- `tokens`: mints JWTs with the test key (agent-state issues the real ones).
- `run_app(app)`: runs an app's lifespan and gives an httpx client to it.
- `cleanup_bus(bus)`: deletes the queues a `RabbitBus` declared, when the test ends.

Helpers that are not fixtures live in `testkit.py` (`from testkit import auth_header`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aio_pika
import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from callcenter_common.auth import TokenIssuer, generate_keypair
from callcenter_common.bus import RabbitBus
from callcenter_common.settings import PlatformSettings

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _rabbitmqctl(*args: str) -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60).returncode == 0


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A vhost of this test session's own, so nothing is shared with a running platform."""
    vhost = f"test-{uuid.uuid4().hex[:8]}"
    if _rabbitmqctl("add_vhost", vhost) and _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"):
        yield AMQP_BASE.rstrip("/") + "/" + vhost
        _rabbitmqctl("delete_vhost", vhost)
    else:
        yield AMQP_BASE


@pytest.fixture(scope="session")
def jwt_keys() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture(scope="session")
def tokens(jwt_keys: tuple[str, str]) -> TokenIssuer:
    return TokenIssuer(jwt_keys[0], issuer="callcenter.agent-state", audience="callcenter")


@pytest.fixture
def platform_settings(amqp_url: str, jwt_keys: tuple[str, str]) -> PlatformSettings:
    return PlatformSettings(
        env="test",
        bus="rabbitmq",
        amqp_url=amqp_url,
        exchange=f"test.{uuid.uuid4().hex[:8]}",
        jwt_public_key=jwt_keys[1],
        consumer_retry_backoff_seconds=0,
        consumer_max_deliveries=3,
        log_json=False,
    )


NewDatabase = Callable[[], Awaitable[str]]


@pytest.fixture
async def new_pg_database() -> AsyncIterator[NewDatabase]:
    """Creates throw-away PostgreSQL databases (one per call), dropped when the test ends."""
    names: list[str] = []
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)

    async def create() -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        names.append(name)
        return f"{base}/{name}"

    yield create
    if names:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_url(new_pg_database: NewDatabase) -> str:
    """A fresh PostgreSQL database for one test."""
    return await new_pg_database()


RunApp = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def run_app() -> RunApp:
    @asynccontextmanager
    async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client

    return running


@pytest.fixture
async def cleanup_bus(amqp_url: str) -> AsyncIterator[Callable[[RabbitBus], None]]:
    buses: list[RabbitBus] = []
    yield buses.append
    names = {n for bus in buses for s in bus.subscriptions if not s.exclusive for n in (s.queue, f"{s.queue}.dlq")}
    exchanges = {bus.exchange_name for bus in buses}
    if not names and not exchanges:
        return
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
