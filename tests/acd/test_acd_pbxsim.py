"""The ACD against the PBX simulator over real TCP, with real PostgreSQL and RabbitMQ (issue #4)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from acd_support import (
    CallEventLog,
    everything_delivered,
    model_view,
    originate,
    originate_behind_the_acds_back,
    pbx_view,
    started_acd,
)
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from testkit import auth_header, wait_until

from acd.config import AcdSettings
from acd.main import create_app
from acd.models import AnnouncedCall
from acd.service import AcdService
from callcenter_common.auth import TokenIssuer
from callcenter_common.bus import RabbitBus
from callcenter_common.settings import PlatformSettings
from pbxsim import PbxSimulator

RunApp = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]


def malformed_frames() -> float:
    return REGISTRY.get_sample_value("acd_ami_events_total", {"outcome": "malformed"}) or 0.0


async def test_core_6_call_life_publishes_call_events_in_order_exactly_once(
    acd_settings: AcdSettings,
    sim: PbxSimulator,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
) -> None:
    log, listener = call_events
    app = create_app(acd_settings)
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app):
        service = await started_acd(app)
        call = await sim.inbound_call(caller="13800138000", dnis="4008001234")
        await wait_until(lambda: call.waiting)
        no_answer = await originate(service, call.channel, "1003", timeout_ms=300)
        assert (no_answer.get("Response"), no_answer.get("Reason")) == ("Failure", "3")
        answered = await originate(service, call.channel, "1001")
        assert answered.get("Response") == "Success"
        await wait_until(lambda: call.bridged)
        sim.endpoint("1001").hold()
        sim.endpoint("1001").unhold()
        call.hangup()
        await wait_until(lambda: log.has("call.ended", call.linkedid))
        await service.resync()  # a resync after the end finds nothing to say
        await everything_delivered(app, log, listener)

    assert log.names() == [
        "call.started",
        "call.ringing",
        "call.agent_missed",
        "call.ringing",
        "call.answered",
        "call.held",
        "call.resumed",
        "call.ended",
    ]
    assert {e.correlation_id for e in log.envelopes if e.name.startswith("call.")} == {call.linkedid}
    assert (
        log.one("call.started", call.linkedid)["dnis"],
        log.one("call.started", call.linkedid)["caller_number"],
    ) == (
        "4008001234",
        "13800138000",
    )
    missed = log.one("call.agent_missed", call.linkedid)
    assert (missed["agent_extension"], missed["reason"]) == ("1003", "no_answer")
    assert log.one("call.answered", call.linkedid)["agent_extension"] == "1001"
    ended = log.one("call.ended", call.linkedid)
    assert (ended["outcome"], ended["hangup_by"], ended["agent_extension"], ended["seen_by_resync"]) == (
        "answered",
        "caller",
        "1001",
        False,
    )


async def test_core_1_thirty_concurrent_calls_are_each_announced_once(
    acd_settings: AcdSettings,
    sim: PbxSimulator,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
) -> None:
    log, listener = call_events
    app = create_app(acd_settings)
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app):
        service = await started_acd(app)
        calls = [await sim.inbound_call(caller=f"1390000{i:04d}") for i in range(30)]  # one E1: 30 B-channels
        await wait_until(lambda: all(c.waiting for c in calls))
        await asyncio.gather(*(originate(service, c.channel, str(2000 + i)) for i, c in enumerate(calls)))
        await wait_until(lambda: all(c.bridged for c in calls))
        assert len(service.model.calls) == 30
        assert model_view(service) == pbx_view(sim)
        for call in calls:
            call.hangup()
        await wait_until(lambda: all(log.has("call.ended", c.linkedid) for c in calls))
        await everything_delivered(app, log, listener)
        assert not service.model.calls and model_view(service) == pbx_view(sim) == set()
    for i, call in enumerate(calls):
        assert log.names(call.linkedid) == ["call.started", "call.ringing", "call.answered", "call.ended"]
        assert log.one("call.answered", call.linkedid)["agent_extension"] == str(2000 + i)


async def test_agent_8_1_blind_and_attended_transfers_sent_through_the_acd(
    acd_settings: AcdSettings,
    sim: PbxSimulator,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
) -> None:
    log, listener = call_events
    app = create_app(acd_settings)
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app):
        service = await started_acd(app)
        blind, attended = await sim.inbound_call(caller="13800000001"), await sim.inbound_call(caller="13800000002")
        await wait_until(lambda: blind.waiting and attended.waiting)
        await originate(service, blind.channel, "1001")
        await wait_until(lambda: blind.bridged)
        agent = service.model.calls[blind.linkedid].agent_channel
        assert agent is not None
        await service.ami.send({"Action": "BlindTransfer", "Channel": agent, "Exten": "1002", "Context": "agents-dial"})
        await wait_until(lambda: len([n for n in log.names(blind.linkedid) if n == "call.answered"]) == 2)
        blind.hangup()

        await originate(service, attended.channel + ",T", "1001")  # T: the agent may transfer (trace 06)
        await wait_until(lambda: attended.bridged and log.has("call.answered", attended.linkedid))
        agent = service.model.calls[attended.linkedid].agent_channel
        assert agent is not None
        # "Atxfer successfully queued" trips panoramisk like an Originate without Async would.
        await service.ami.send({"Action": "Atxfer", "Channel": agent, "Exten": "1002", "Context": "agents-dial"})
        await wait_until(lambda: len([n for n in log.names(attended.linkedid) if n == "call.answered"]) == 2)
        await service.ami.send({"Action": "Hangup", "Channel": agent})
        await wait_until(lambda: log.has("call.transferred", attended.linkedid))
        assert model_view(service) == pbx_view(sim)
        attended.hangup()
        await wait_until(lambda: log.has("call.ended", blind.linkedid) and log.has("call.ended", attended.linkedid))
        await everything_delivered(app, log, listener)

    assert log.names(blind.linkedid) == [
        "call.started",
        "call.ringing",
        "call.answered",
        "call.transferred",
        "call.ringing",
        "call.answered",
        "call.ended",
    ]
    assert log.names(attended.linkedid) == [
        "call.started",
        "call.ringing",
        "call.answered",
        "call.held",
        "call.ringing",
        "call.answered",
        "call.resumed",
        "call.transferred",
        "call.ended",
    ]
    for call, kind in ((blind, "blind"), (attended, "attended")):
        transferred = log.one("call.transferred", call.linkedid)
        assert (transferred["kind"], transferred["target"], transferred["agent_extension"]) == (kind, "1002", "1001")
        assert log.one("call.ended", call.linkedid)["agent_extension"] == "1002"


async def test_core_6_ami_cut_mid_call_resyncs_the_model_with_the_pbx(
    acd_settings: AcdSettings,
    sim: PbxSimulator,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
) -> None:
    log, listener = call_events
    app = create_app(acd_settings)
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app):
        service = await started_acd(app)
        talking = await sim.inbound_call(caller="13800000001")
        waiting = await sim.inbound_call(caller="13800000002")
        await wait_until(lambda: talking.waiting and waiting.waiting)
        await originate(service, talking.channel, "1001")
        await wait_until(
            lambda: log.has("call.answered", talking.linkedid) and log.has("call.started", waiting.linkedid)
        )

        # The link drops, and the ACD cannot log back in while the PBX goes on without it.
        secret = sim.config.users.pop("acd")
        await sim.drop_ami_clients()
        await wait_until(lambda: not service.ami.connected)
        talking.hangup()
        arrived = await sim.inbound_call(caller="13800000003")
        await wait_until(lambda: arrived.waiting and talking.hungup)
        await originate_behind_the_acds_back(sim, arrived.channel, "1002")
        await wait_until(lambda: arrived.bridged)

        sim.config.users["acd"] = secret
        await wait_until(lambda: service.ami.connected)
        await service.wait_resynced()
        assert model_view(service) == pbx_view(sim)
        assert set(service.model.calls) == {waiting.linkedid, arrived.linkedid}
        assert service.ami.reconnects == 1
        await wait_until(lambda: log.has("call.ended", talking.linkedid) and log.has("call.answered", arrived.linkedid))

        waiting.hangup()
        arrived.hangup()
        await wait_until(lambda: log.has("call.ended", waiting.linkedid) and log.has("call.ended", arrived.linkedid))
        await everything_delivered(app, log, listener)
        assert model_view(service) == pbx_view(sim) == set()

    assert log.names(talking.linkedid) == ["call.started", "call.ringing", "call.answered", "call.ended"]
    gone = log.one("call.ended", talking.linkedid)
    assert (gone["outcome"], gone["hangup_by"], gone["seen_by_resync"], gone["agent_extension"]) == (
        "answered",
        "unknown",
        True,
        "1001",
    )
    assert log.names(waiting.linkedid) == ["call.started", "call.ended"]
    assert log.one("call.ended", waiting.linkedid)["outcome"] == "abandoned"
    assert log.names(arrived.linkedid) == ["call.started", "call.answered", "call.ended"]
    assert log.one("call.answered", arrived.linkedid)["agent_extension"] == "1002"
    assert log.one("call.started", arrived.linkedid)["dnis"] == "4008001234"  # from Status DNID


async def test_core_6_acd_restart_mid_call_publishes_each_fact_once(
    acd_settings: AcdSettings,
    sim: PbxSimulator,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
) -> None:
    log, listener = call_events
    first = create_app(acd_settings)
    cleanup_bus(first.state.runtime.bus)
    async with run_app(first):
        service = await started_acd(first)
        talking = await sim.inbound_call(caller="13800000001")
        waiting = await sim.inbound_call(caller="13800000002")
        await wait_until(lambda: talking.waiting and waiting.waiting)
        await originate(service, talking.channel, "1001")
        await wait_until(
            lambda: log.has("call.answered", talking.linkedid) and log.has("call.started", waiting.linkedid)
        )
        sim.endpoint("1001").hold()
        await wait_until(lambda: log.has("call.held", talking.linkedid))

    # The ACD is down: one call ends, another comes in and is answered.
    talking.hangup()
    arrived = await sim.inbound_call(caller="13800000003")
    await wait_until(lambda: arrived.waiting and talking.hungup)
    await originate_behind_the_acds_back(sim, arrived.channel, "1002")
    await wait_until(lambda: arrived.bridged)

    second = create_app(acd_settings)  # same database: it remembers what the first one announced
    cleanup_bus(second.state.runtime.bus)
    async with run_app(second):
        service = await started_acd(second)
        assert model_view(service) == pbx_view(sim)
        assert set(service.model.calls) == {waiting.linkedid, arrived.linkedid}
        await wait_until(lambda: log.has("call.ended", talking.linkedid) and log.has("call.answered", arrived.linkedid))
        waiting.hangup()
        arrived.hangup()
        await wait_until(lambda: log.has("call.ended", waiting.linkedid) and log.has("call.ended", arrived.linkedid))
        await everything_delivered(second, log, listener)
        async with second.state.runtime.db.session() as session:
            left = (await session.execute(select(func.count()).select_from(AnnouncedCall))).scalar_one()
        assert left == 0  # ended calls are forgotten

    assert log.names(talking.linkedid) == ["call.started", "call.ringing", "call.answered", "call.held", "call.ended"]
    gone = log.one("call.ended", talking.linkedid)
    assert (gone["outcome"], gone["hangup_by"], gone["seen_by_resync"]) == ("answered", "unknown", True)
    assert log.names(waiting.linkedid) == ["call.started", "call.ended"]
    assert log.names(arrived.linkedid) == ["call.started", "call.answered", "call.ended"]


async def test_malformed_ami_input_is_skipped_and_the_connection_stays_up(
    acd_settings: AcdSettings,
    sim: PbxSimulator,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="acd.ami")
    log, listener = call_events
    app = create_app(acd_settings)
    cleanup_bus(app.state.runtime.bus)
    malformed_before = malformed_frames()
    async with run_app(app):
        service = await started_acd(app)
        call = await sim.inbound_call()
        await wait_until(lambda: call.waiting and log.has("call.started", call.linkedid))
        sim.emit_raw(b"garbage line without a colon\r\nanother one\r\n\r\n")
        sim.emit_raw(b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-99\r\n\r\n")
        sim.emit_raw(b"Event: BridgeEnter\r\nUniqueid: " + call.uniqueid.encode() + b"\r\n\r\n")
        sim.emit_raw(b"Event: VarSet\r\nVariable: DNIS\r\nValue: " + b"8" * 300_000 + b"\r\n\r\n")
        sim.emit_raw(b"Event: SomethingAsteriskWillAddOneDay\r\nFoo: bar\r\n\r\n")
        sim.emit_raw(b"Event: Hangup\r\nUniqueid: 42\r\nCause: \xff\xfe\r\n\r\n")
        await originate(service, call.channel, "1001")
        call.hangup()
        await wait_until(lambda: log.has("call.ended", call.linkedid))
        await everything_delivered(app, log, listener)
        assert service.ami.connected and service.ami.reconnects == 0
        assert model_view(service) == pbx_view(sim) == set()
    assert malformed_frames() - malformed_before == 4
    assert log.names(call.linkedid) == ["call.started", "call.ringing", "call.answered", "call.ended"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "acd.ami")
    assert "neither Event nor Response" in logged and "65536 bytes" in logged
    assert "unknown AMI event 'SomethingAsteriskWillAddOneDay'" in logged


async def test_core_6_live_calls_channels_and_ami_status_over_rest(
    acd_settings: AcdSettings,
    sim: PbxSimulator,
    run_app: RunApp,
    tokens: TokenIssuer,
    cleanup_bus: Callable[[RabbitBus], None],
) -> None:
    app = create_app(acd_settings)
    cleanup_bus(app.state.runtime.bus)
    lead = auth_header(tokens.issue(user_id="u1", work_number="9001", roles=["supervisor"]))
    agent_1001 = auth_header(tokens.issue(user_id="u2", work_number="1001", roles=["agent"], extension="1001"))
    agent_1002 = auth_header(tokens.issue(user_id="u3", work_number="1002", roles=["agent"], extension="1002"))
    async with run_app(app) as client:
        service = await started_acd(app)
        assert (await client.get("/readyz")).json()["checks"]["ami"] is True
        assert (await client.get("/calls")).status_code == 401
        talking = await sim.inbound_call(caller="13800000001")
        waiting = await sim.inbound_call(caller="13800000002", dnis="4008005555")
        await wait_until(lambda: talking.waiting and waiting.waiting)
        await originate(service, talking.channel, "1001")
        await wait_until(
            lambda: len(service.model.calls) == 2 and service.model.calls[talking.linkedid].answered_at is not None
        )

        page = (await client.get("/calls", params={"limit": 1}, headers=lead)).json()
        assert [c["call_id"] for c in page["items"]] == [talking.linkedid]
        assert page["items"][0]["status"] == "talking" and page["items"][0]["agent_extension"] == "1001"
        rest = (await client.get("/calls", params={"cursor": page["next_cursor"]}, headers=lead)).json()
        assert [(c["call_id"], c["status"], c["dnis"]) for c in rest["items"]] == [
            (waiting.linkedid, "waiting", "4008005555")
        ]
        assert rest["next_cursor"] is None
        mine = (await client.get("/calls", headers=agent_1001)).json()["items"]
        assert [c["call_id"] for c in mine] == [talking.linkedid]
        assert (await client.get("/calls", headers=agent_1002)).json()["items"] == []
        channels = (await client.get("/channels", params={"call_id": talking.linkedid}, headers=lead)).json()
        assert sorted(c["kind"] for c in channels["items"]) == ["agent", "external"]
        bad = await client.get("/calls", params={"cursor": "not-a-cursor"}, headers=lead)
        assert bad.status_code == 422 and bad.json()["field"] == "cursor"
        status = (await client.get("/ami/status", headers=lead)).json()
        assert (status["connected"], status["reconnects"], status["resyncs"], status["live_calls"]) == (True, 0, 1, 2)
        assert status["last_event_at"] is not None
        talking.hangup()
        waiting.hangup()
        await wait_until(lambda: not service.model.calls)


async def test_embedded_acd_starts_without_a_pbx_and_reports_not_ready(
    pg_url: str, platform_settings: PlatformSettings, run_app: RunApp, cleanup_bus: Callable[[RabbitBus], None]
) -> None:
    settings = AcdSettings(
        database_url=pg_url,
        platform=platform_settings,
        ami_port=1,  # nothing listens there
        ami_reconnect_initial_seconds=0.01,
        ami_reconnect_max_seconds=0.05,
    )
    app = create_app(settings)
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app) as client:
        service: AcdService = app.state.acd
        await wait_until(lambda: service.ami._failures >= 3)  # it keeps trying, with back-off
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["ami"] is False
        assert (await client.get("/healthz")).status_code == 200
        assert "ConnectionRefusedError" in service.ami_status()["last_error"]
