"""agent-state on real PostgreSQL and RabbitMQ, with demo people, an injected clock and an event log.

`agent_state` starts the service on the test's database; `events` is a second bus
connection that records what the service published and plays the ACD (publishes call.*).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from agent_state.config import AgentStateSettings
from agent_state.demo import DEMO_PASSWORD, seed_demo
from agent_state.main import create_app
from agent_state.models import User, bus_tables
from agent_state.security import Passwords
from callcenter_common.bus import RabbitBus
from callcenter_common.clock import ManualClock
from callcenter_common.events import Envelope
from callcenter_common.settings import PlatformSettings

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
CHEAP_HASH = {"password_hash_time_cost": 1, "password_hash_memory_kib": 1024, "password_hash_parallelism": 1}
WAIT_SECONDS = 10.0


class EventLog:
    """Everything published on the test exchange, in arrival order."""

    def __init__(self, bus: RabbitBus) -> None:
        self.bus = bus
        self.envelopes: list[Envelope] = []
        self._changed = asyncio.Condition()

    async def record(self, envelope: Envelope) -> None:
        async with self._changed:
            self.envelopes.append(envelope)
            self._changed.notify_all()

    async def wait_for(self, name: str, match: Callable[[dict[str, Any]], bool] = lambda _: True) -> Envelope:
        def found() -> Envelope | None:
            return next((e for e in self.envelopes if e.name == name and match(e.data)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), WAIT_SECONDS)
        result = found()
        assert result is not None
        return result

    def named(self, name: str, match: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[Envelope]:
        return [e for e in self.envelopes if e.name == name and match(e.data)]

    async def publish(self, envelope: Envelope) -> None:
        await self.bus.publish(envelope)


@dataclass
class Running:
    app: FastAPI
    client: httpx.AsyncClient
    clock: ManualClock
    users: dict[str, str] = field(default_factory=dict)  # work number -> user id

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def login(self, work_number: str, extension: str | None = None, password: str = DEMO_PASSWORD) -> str:
        body: dict[str, Any] = {"work_number": work_number, "password": password}
        if extension is not None:
            body["extension"] = extension
        response = await self.client.post("/auth/login", json=body)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def state(self, token: str, agent_id: str = "me") -> dict[str, Any]:
        response = await self.client.get(f"/agents/{agent_id}/state", headers=self.auth(token))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def wait_state(self, token: str, state: str, agent_id: str = "me") -> dict[str, Any]:
        """Poll until the state is reached: for changes made by consumers and background tasks."""
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while True:
            current = await self.state(token, agent_id)
            if current["state"] == state:
                return current
            assert asyncio.get_running_loop().time() < deadline, f"still {current['state']}, wanted {state}"
            await asyncio.sleep(0.02)

    async def wait_processed(self, envelope: Envelope) -> None:
        """Wait until the service's call consumer has committed this event (its inbox row)."""
        table = bus_tables.processed
        query = select(func.count()).select_from(table).where(table.c.event_id == str(envelope.id))
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while True:
            async with self.app.state.runtime.db.session() as session:
                if (await session.execute(query)).scalar_one():
                    return
            assert asyncio.get_running_loop().time() < deadline, f"{envelope.name} {envelope.id} never processed"
            await asyncio.sleep(0.02)

    async def group_id(self, name_prefix: str, token: str) -> str:
        response = await self.client.get("/groups", headers=self.auth(token))
        return next(g["id"] for g in response.json()["items"] if g["name"].startswith(name_prefix))


StartApp = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def agent_settings(pg_url: str, platform_settings: PlatformSettings, jwt_keys: tuple[str, str]) -> AgentStateSettings:
    return AgentStateSettings(
        database_url=pg_url,
        platform=platform_settings,
        jwt_private_key=jwt_keys[0],
        after_call_work_poll_seconds=0.02,
        outbox_poll_seconds=0.2,
        **CHEAP_HASH,
    )


@pytest.fixture
async def events(
    platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]
) -> AsyncIterator[EventLog]:
    bus = RabbitBus(platform_settings.amqp_url, exchange=platform_settings.exchange, queue_type="classic")
    log = EventLog(bus)
    bus.subscribe("test.event-log", ["#"], log.record, exclusive=True)
    cleanup_bus(bus)
    await bus.start()
    await bus.wait_connected(WAIT_SECONDS)
    yield log
    await bus.close()


@pytest.fixture
def start_agent_state(
    agent_settings: AgentStateSettings,
    clock: ManualClock,
    run_app: Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]],
    cleanup_bus: Callable[[RabbitBus], None],
) -> StartApp:
    """Start (or restart) the service on the test's database; the demo people are seeded once."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Running]:
        settings = agent_settings.model_copy(update=overrides) if overrides else agent_settings
        app = create_app(settings, clock=clock)
        runtime = app.state.runtime
        assert isinstance(runtime.bus, RabbitBus)
        cleanup_bus(runtime.bus)
        async with run_app(app) as client:
            await runtime.bus.wait_connected(WAIT_SECONDS)
            async with runtime.db.session() as session:
                await seed_demo(session, passwords=Passwords(time_cost=1, memory_kib=1024, parallelism=1), clock=clock)
            running = Running(app, client, clock)
            async with runtime.db.session() as session:
                running.users = {u.work_number: u.id for u in (await session.scalars(select(User))).all()}
            yield running

    return start


@pytest.fixture
async def agent_state(start_agent_state: StartApp, events: EventLog) -> AsyncIterator[Running]:
    async with start_agent_state() as running:
        yield running


@pytest.fixture
async def second_pg_url(new_pg_database: Callable[[], Awaitable[str]]) -> str:
    """Another service's own database, for tests that run a second service."""
    return await new_pg_database()
