"""Fixtures of the patient tests: the service on real PostgreSQL and RabbitMQ, a fake clock, an event tap."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from callcenter_common.auth import TokenIssuer
from callcenter_common.bus import RabbitBus
from callcenter_common.clock import ManualClock
from callcenter_common.events import Envelope, Event
from callcenter_common.settings import PlatformSettings
from patient.config import PatientSettings
from patient.main import create_app

PATIENT_EVENTS = ("patient.#", "payment.#")


@dataclass
class EventTap:
    """A consumer of its own on the test exchange: what the service published, and a way to publish to it."""

    bus: RabbitBus
    received: list[Envelope] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_event(self, envelope: Envelope) -> None:
        async with self._changed:
            self.received.append(envelope)
            self._changed.notify_all()

    async def wait_for(
        self, name: str, predicate: Callable[[dict[str, Any]], bool] = lambda _: True, timeout: float = 10
    ) -> Envelope:
        def found() -> Envelope | None:
            return next((e for e in self.received if e.name == name and predicate(e.data)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        result = found()
        assert result is not None
        return result

    def named(self, name: str) -> list[Envelope]:
        return [e for e in self.received if e.name == name]

    async def publish(self, event: Event, source: str = "test", **kwargs: Any) -> Envelope:
        envelope = event.envelope(source, **kwargs)
        await self.bus.publish(envelope)
        return envelope


@dataclass
class PatientHarness:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: TokenIssuer
    clock: ManualClock
    tap: EventTap

    def headers(
        self,
        work_number: str = "A1001",
        *,
        roles: Iterable[str] = ("agent",),
        groups: Iterable[str] = (),
        permissions: Iterable[str] = (),
        user_id: str | None = None,
        **extra: str,
    ) -> dict[str, str]:
        token = self.tokens.issue(
            user_id=user_id or f"u-{work_number.lower()}",
            work_number=work_number,
            roles=roles,
            groups=groups,
            permissions=permissions,
        )
        return {"Authorization": f"Bearer {token}", **extra}

    def agent(self, work_number: str = "A1001", groups: Iterable[str] = ("g1",), **extra: str) -> dict[str, str]:
        return self.headers(work_number, roles=("agent",), groups=groups, **extra)

    def supervisor(self, permissions: Iterable[str] = (), **extra: str) -> dict[str, str]:
        return self.headers("S9001", roles=("supervisor",), permissions=permissions, **extra)

    def admin(self) -> dict[str, str]:
        return self.headers("Z0001", roles=("admin",))

    async def wait_until(self, check: Callable[[], Any], timeout: float = 10) -> Any:
        """Poll an effect of a consumed event until it shows, or fail after `timeout`."""
        async with asyncio.timeout(timeout):
            while True:
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.02)

    async def processed(self, event_id: uuid.UUID) -> bool:
        """Whether a consumer of the service has applied this event."""
        async with self.app.state.runtime.db.session() as session:
            query = text("SELECT 1 FROM processed_events WHERE event_id = :id")
            return (await session.execute(query, {"id": str(event_id)})).first() is not None

    async def register(self, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": "陈伟", "mobile": "13800138000", "source_channel": "walk_in", **fields}
        r = await self.client.post("/patients", json=body, headers=headers or self.agent())
        assert r.status_code == 201, r.text
        return dict(r.json())


@pytest.fixture
def id_number_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 27, 2, 0, tzinfo=UTC))


@pytest.fixture
async def patient(
    pg_url: str,
    platform_settings: PlatformSettings,
    id_number_key: str,
    run_app: Any,
    tokens: TokenIssuer,
    clock: ManualClock,
    cleanup_bus: Callable[[RabbitBus], None],
) -> AsyncIterator[PatientHarness]:
    settings = PatientSettings(
        database_url=pg_url, platform=platform_settings, id_number_key=id_number_key, outbox_poll_seconds=0.05
    )
    app = create_app(settings, clock=clock)
    bus = app.state.runtime.bus
    assert isinstance(bus, RabbitBus)
    cleanup_bus(bus)
    tap_bus = RabbitBus(platform_settings.amqp_url, exchange=platform_settings.exchange, queue_type="classic")
    tap = EventTap(tap_bus)
    tap_bus.subscribe(f"test.tap.{id(tap)}", PATIENT_EVENTS, tap.on_event)
    cleanup_bus(tap_bus)
    await tap_bus.start()
    try:
        async with run_app(app) as client:
            await bus.wait_connected(10)
            await tap_bus.wait_connected(10)
            yield PatientHarness(app, client, tokens, clock, tap)
    finally:
        await tap_bus.close()
