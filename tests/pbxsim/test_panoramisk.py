"""The simulator through panoramisk 1.4, the ACD's AMI library, over real TCP.

panoramisk.testing is not used: it changes the line ending for the whole process, after
which a real Manager never logs in (THIRD-PARTY.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from panoramisk import Manager

from pbxsim import EndpointConfig, Manual, PbxSimulator


@pytest.fixture
async def managers() -> AsyncIterator[list[Manager]]:
    started: list[Manager] = []
    yield started
    for manager in started:
        manager.close()
        manager.reconnect_timeout = 3600  # close() lets connection_lost schedule a reconnect


@pytest.fixture
def manager_for(managers: list[Manager]) -> Callable[[PbxSimulator], Awaitable[tuple[Manager, asyncio.Queue[str]]]]:
    async def connect(sim: PbxSimulator) -> tuple[Manager, asyncio.Queue[str]]:
        logins: asyncio.Queue[str] = asyncio.Queue()
        manager = Manager(
            host="127.0.0.1",
            port=sim.ami_port,
            username="probe",
            secret="probe123",
            ping_delay=3600,
            reconnect_timeout=0,
            loop=asyncio.get_running_loop(),
            on_login=lambda m: logins.put_nowait("login"),
        )
        managers.append(manager)
        await manager.connect()
        assert await asyncio.wait_for(logins.get(), 5) == "login"
        return manager, logins

    return connect


async def test_events_and_event_lists_through_panoramisk(make_sim, manager_for):
    sim = await make_sim(agi=False)
    manager, _ = await manager_for(sim)
    seen: asyncio.Queue[str] = asyncio.Queue()
    manager.register_event("*", lambda m, event: seen.put_nowait(event.event))
    call = await sim.inbound_call()
    await sim.run_until(lambda: call.waiting)
    names = [await asyncio.wait_for(seen.get(), 5) for _ in range(3)]
    assert names[:2] == ["Newchannel", "Newexten"]
    channels = await manager.send_action({"Action": "CoreShowChannels"})
    assert channels[0].eventlist == "start"
    assert [m.event for m in channels[1:]] == ["CoreShowChannel", "CoreShowChannelsComplete"]
    assert channels[1].channel == call.channel and channels[1].application == "MusicOnHold"
    pong = await manager.send_action({"Action": "Ping"})
    assert pong.ping == "Pong"


async def test_async_originate_resolves_with_originate_response(make_sim, manager_for):
    sim = await make_sim(agi=False)
    manager, _ = await manager_for(sim)
    call = await sim.inbound_call()
    await sim.run_until(lambda: call.waiting)
    future = manager.send_action(
        {"Action": "Originate", "Channel": "PJSIP/1001", "Application": "Bridge", "Data": call.channel, "Async": "true"}
    )
    await sim.run_until(lambda: call.bridged)
    response, originate = await asyncio.wait_for(future, 5)
    assert response.message == "Originate successfully queued"
    assert (originate.event, originate.response, originate.reason) == ("OriginateResponse", "Success", "4")


async def test_actions_waiting_at_a_disconnect_are_resent_after_fullybooted(make_sim, sim_config, manager_for):
    sim_config.endpoints["1001"] = EndpointConfig(Manual(), "Agent 1001", "1001")
    sim = await make_sim(agi=False)
    manager, logins = await manager_for(sim)
    call = await sim.inbound_call()
    await sim.run_until(lambda: call.waiting)
    # Without Async the answer waits for the phone; the connection drops before it comes.
    future = manager.send_action(
        {
            "Action": "Originate",
            "Channel": "PJSIP/1001",
            "Application": "Bridge",
            "Data": call.channel,
            "Async": "false",
        }
    )
    await sim.run_until(lambda: sim.pbx.channels_of("1001") != [])
    first = sim.endpoint("1001").channel
    await sim.drop_ami_clients()
    assert await asyncio.wait_for(logins.get(), 5) == "login"  # panoramisk reconnected and logged in again
    await sim.run_until(lambda: any(c is not first for c in sim.pbx.channels_of("1001")))  # sent again
    sim.endpoint("1001").answer()
    reply = await asyncio.wait_for(future, 5)
    assert reply.message == "Originate successfully queued"
    assert call.bridged


async def test_command_output_through_panoramisk(make_sim, manager_for):
    sim = await make_sim(agi=False)
    manager, _ = await manager_for(sim)
    reply = await manager.send_command("core show version")
    assert "Asterisk 22.10.1" in str(reply)
