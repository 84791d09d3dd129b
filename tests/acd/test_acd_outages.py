"""Facts survive a broker outage (outbox) and a database outage (the writer retries; the AMI reader
pauses instead of waiting, and loses nothing)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from acd_support import CallEventLog, everything_delivered, originate, started_acd
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from testkit import wait_until

from acd.config import AcdSettings
from acd.main import create_app
from acd.models import bus_tables
from callcenter_common.bus import InMemoryBus, RabbitBus
from pbxsim import PbxSimulator

RunApp = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]
ANSWERED_CALL = ["call.started", "call.ringing", "call.answered", "call.ended"]


async def test_call_events_wait_in_the_outbox_while_the_broker_is_down(
    acd_settings: AcdSettings, sim: PbxSimulator, run_app: RunApp
) -> None:
    bus = InMemoryBus()  # not started: every publish fails as with RabbitMQ down
    log = CallEventLog()
    bus.subscribe("test-acd-listener", ["call.*", "test.barrier"], log.handle)
    app = create_app(acd_settings, bus=bus)
    async with run_app(app):
        service = await started_acd(app)
        call = await sim.inbound_call()
        await wait_until(lambda: call.waiting)
        await originate(service, call.channel, "1001")
        call.hangup()
        await wait_until(lambda: not service.model.calls and not len(service.queue) and not service.writer._batch)
        async with app.state.runtime.db.session() as session:
            waiting = (await session.execute(select(func.count()).select_from(bus_tables.outbox))).scalar_one()
        assert waiting == 4 and log.envelopes == []

        await bus.start()  # the broker is back: the relay sends them, in order
        await everything_delivered(app, log, bus)
    await bus.close()
    assert log.names(call.linkedid) == ANSWERED_CALL


async def test_a_database_outage_pauses_the_ami_reader_and_loses_no_fact(
    acd_settings: AcdSettings,
    sim: PbxSimulator,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log, listener = call_events
    app = create_app(acd_settings.model_copy(update={"fact_queue_limit": 10}))
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app):
        service = await started_acd(app)
        service.writer.retry_max_seconds = 0.05
        save = service.repository.save
        down = False

        async def flaky_save(*args: Any, **kwargs: Any) -> None:
            if down:
                raise OperationalError("INSERT", {}, ConnectionRefusedError("the database is away"))
            await save(*args, **kwargs)

        monkeypatch.setattr(service.repository, "save", flaky_save)
        agents = ["1001", "1002", "2001", "2002"]
        calls = [await sim.inbound_call(caller=f"1380000000{i}") for i in range(len(agents))]
        await wait_until(lambda: all(c.waiting for c in calls))
        for call, agent in zip(calls, agents, strict=True):
            await originate(service, call.channel, agent)
        await wait_until(lambda: all(log.has("call.answered", c.linkedid) for c in calls))

        down = True
        for agent in agents:
            sim.endpoint(agent).hold()
            sim.endpoint(agent).unhold()
        for call in calls:
            call.hangup()
        # 12 facts and room for 10: the reader stops taking more instead of waiting or dropping any.
        await wait_until(lambda: service.queue.full and service.ami._paused)
        assert not any(log.has("call.held", c.linkedid) for c in calls)

        down = False
        await wait_until(lambda: not service.queue.full and not service.ami._paused)
        await wait_until(lambda: all(log.has("call.ended", c.linkedid) for c in calls))
        await everything_delivered(app, log, listener)
        assert service.ami.connected and service.ami.reconnects == 0
    for call in calls:
        assert log.names(call.linkedid) == [
            "call.started",
            "call.ringing",
            "call.answered",
            "call.held",
            "call.resumed",
            "call.ended",
        ]
