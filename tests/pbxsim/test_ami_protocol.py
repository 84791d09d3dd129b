"""The AMI server on raw asyncio streams: framing, login, permissions, lists, robustness hooks."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from pbxsim import PbxSimulator

CRLF = b"\r\n"


async def raw_connect(sim: PbxSimulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert sim.ami_port is not None
    return await asyncio.open_connection("127.0.0.1", sim.ami_port)


async def read_frame(reader: asyncio.StreamReader) -> list[str]:
    block = await asyncio.wait_for(reader.readuntil(CRLF + CRLF), 5)
    return block[:-4].decode().split("\r\n")


def frame(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_banner_login_fullybooted_then_successfulauth(make_sim):
    sim = await make_sim(agi=False)
    reader, writer = await raw_connect(sim)
    try:
        assert await reader.readline() == b"Asterisk Call Manager/11.0.0\r\n"
        writer.write(frame("Action: Login", "ActionID: l1", "Username: probe", "Secret: probe123", "Events: on"))
        assert await read_frame(reader) == ["Response: Success", "ActionID: l1", "Message: Authentication accepted"]
        booted = await read_frame(reader)
        assert booted[:2] == ["Event: FullyBooted", "Privilege: system,all"]
        auth = await read_frame(reader)
        assert auth[:2] == ["Event: SuccessfulAuth", "Privilege: security,all"]
        assert "AccountID: probe" in auth and "UsingPassword: 0" in auth
    finally:
        writer.close()


async def test_challenge_md5_login_with_events_off_sends_no_events(make_sim):
    sim = await make_sim(agi=False)
    reader, writer = await raw_connect(sim)
    try:
        await reader.readline()
        writer.write(frame("Action: Challenge", "ActionID: c1", "AuthType: MD5"))
        reply = await read_frame(reader)
        challenge = reply[2].split(": ")[1]
        key = hashlib.md5(f"{challenge}probe123".encode()).hexdigest()
        writer.write(frame("Action: Login", "AuthType: MD5", "Username: probe", f"Key: {key}", "Events: off"))
        assert await read_frame(reader) == ["Response: Success", "Message: Authentication accepted"]
        call = await sim.inbound_call()
        await sim.run_until(lambda: call.waiting)
        writer.write(frame("action: ping", "actionid: p1"))  # header names are case-insensitive
        pong = await read_frame(reader)
        assert pong[:3] == ["Response: Success", "ActionID: p1", "Ping: Pong"]  # no event came before it
    finally:
        writer.close()


async def test_failed_login_answers_then_closes(make_sim):
    sim = await make_sim(agi=False)
    reader, writer = await raw_connect(sim)
    try:
        await reader.readline()
        writer.write(frame("Action: Login", "ActionID: bad", "Username: probe", "Secret: wrong"))
        assert await read_frame(reader) == ["Response: Error", "ActionID: bad", "Message: Authentication failed"]
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed the socket
    finally:
        writer.close()


async def test_before_login_everything_but_login_is_denied(make_sim):
    sim = await make_sim(agi=False)
    reader, writer = await raw_connect(sim)
    try:
        await reader.readline()
        writer.write(frame("Action: Ping", "ActionID: x"))
        assert await read_frame(reader) == ["Response: Error", "ActionID: x", "Message: Permission denied"]
        writer.write(frame("ActionID: y", "Channel: PJSIP/1001"))
        assert await read_frame(reader) == ["Response: Error", "ActionID: y", "Message: Missing action in request"]
    finally:
        writer.close()


async def logged_in(client_factory, sim: PbxSimulator):
    client = await client_factory(sim)
    assert (await client.login("probe", "probe123")).get("Response") == "Success"
    return client


async def test_unknown_action_and_lines_without_colon(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await logged_in(connect, sim)
    reply = await client.action("FooBarBaz")
    assert reply.names() == ["Response", "ActionID", "Message"]
    assert (
        reply["Message"] == "Invalid/unknown command: FooBarBaz. Use Action: ListCommands to show available commands."
    )
    commands = await client.action("ListCommands")
    assert commands["Originate"] == "Originate a call.  (Priv: <none>)"
    client.send_raw(frame("Action: Ping", "ActionID: g1", "this line has no colon"))
    pong = await client.wait_for(lambda f: f.get("ActionID") == "g1")
    assert pong["Ping"] == "Pong"


async def test_events_action_turns_events_off_and_on(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await logged_in(connect, sim)
    assert (await client.action("Events", EventMask="off"))["Events"] == "Off"
    call = await sim.inbound_call()
    await sim.run_until(lambda: call.waiting)
    await client.ping_barrier()
    assert not client.events("Newchannel")
    assert (await client.action("Events", EventMask="call"))["Events"] == "On"
    call.hangup()
    await client.wait_for(lambda f: f.event == "Hangup")
    await client.ping_barrier()
    assert not client.events("VarSet")  # dialplan class stays off


async def test_empty_event_lists_and_list_framing(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await logged_in(connect, sim)
    for action, complete in (
        ("CoreShowChannels", "CoreShowChannelsComplete"),
        ("QueueStatus", "QueueStatusComplete"),
        ("QueueSummary", "QueueSummaryComplete"),
        ("BridgeList", "BridgeListComplete"),
    ):
        frames = await client.send(action)
        assert frames[0].names() == ["Response", "ActionID", "EventList", "Message"]
        assert frames[0]["EventList"] == "start"
        assert frames[-1].event == complete and frames[-1]["ListItems"] == "0"
        assert frames[-1].names() == ["Event", "ActionID", "EventList", "ListItems"]


async def test_getvar_setvar_userevent_command(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await logged_in(connect, sim)
    call = await sim.inbound_call()
    await sim.run_until(lambda: call.waiting)
    assert (await client.action("Setvar", Channel=call.channel, Variable="ACD_QUEUE", Value="vip"))[
        "Message"
    ] == "Variable Set"
    got = await client.action("Getvar", Channel=call.channel, Variable="ACD_QUEUE")
    assert (got["Variable"], got["Value"]) == ("ACD_QUEUE", "vip")
    assert (await client.action("Getvar", Channel="PJSIP/nope-00000000", Variable="X"))["Message"] == "No such channel"
    assert (await client.action("UserEvent", UserEvent="AgentPaused", Agent="1001"))["Message"] == "Event Sent"
    user = await client.wait_for(lambda f: f.event == "UserEvent")
    assert user.names()[:3] == ["Event", "Privilege", "UserEvent"] and user["Agent"] == "1001"
    version = await client.action("Command", Command="core show version")
    assert version["Message"] == "Command output follows" and version["Output"].startswith("Asterisk 22.10.1")
    assert (await client.action("Command", Command="no such thing"))["Response"] == "Error"


async def test_action_errors_use_asterisk_messages(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await logged_in(connect, sim)
    cases = [
        ({"Action": "Hangup"}, "No channel specified"),
        ({"Action": "Hangup", "Channel": "PJSIP/nonexistent-00000000"}, "No such channel"),
        ({"Action": "Originate", "Channel": "PJSIP/1001"}, "Originate with 'Exten' requires 'Context' and 'Priority'"),
        (
            {"Action": "Redirect", "Channel": "PJSIP/x-00000000", "Context": "x", "Exten": "s", "Priority": "1"},
            "Channel does not exist: PJSIP/x-00000000",
        ),
        ({"Action": "BlindTransfer", "Channel": "PJSIP/x-00000000", "Exten": "1"}, "Channel specified does not exist"),
        ({"Action": "BridgeInfo"}, "BridgeUniqueid must be provided"),
    ]
    for headers, message in cases:
        action = headers.pop("Action")
        reply = await client.action(action, **headers)
        assert (reply["Response"], reply["Message"]) == ("Error", message), action


async def test_emit_raw_reaches_clients_and_drop_cuts_them(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await logged_in(connect, sim)
    sim.emit_raw(b"Event: Garbage\r\nno colon here\r\n\r\n")
    garbage = await client.wait_for(lambda f: f.event == "Garbage")
    assert garbage.raw.startswith(b"Event: Garbage")
    await sim.drop_ami_clients()
    await asyncio.wait_for(client.closed.wait(), 5)
    again = await logged_in(connect, sim)  # the server still accepts new connections
    assert (await again.action("Ping"))["Ping"] == "Pong"


async def test_slow_reader_is_dropped_past_the_buffer_limit(make_sim, sim_config, connect):
    sim_config.write_buffer_limit = 64 * 1024
    sim = await make_sim(agi=False)
    reader, writer = await raw_connect(sim)
    try:
        await reader.readline()
        writer.write(frame("Action: Login", "Username: probe", "Secret: probe123"))
        await read_frame(reader)
        filler = b"Event: Filler\r\nData: " + b"x" * 65536 + b"\r\n\r\n"
        for _ in range(1000):  # a client that never reads: the socket buffers fill, then it is dropped
            sim.emit_raw(filler)
            await asyncio.sleep(0)
            if not sim.ami.sessions:
                break
        assert not sim.ami.sessions
    finally:
        writer.close()


@pytest.mark.parametrize("events", ["on", "call,agi"])
async def test_login_event_mask(make_sim, connect, events):
    sim = await make_sim(agi=False)
    client = await connect(sim)
    await client.login("probe", "probe123", events=events)
    await client.ping_barrier()
    assert bool(client.events("FullyBooted")) == (events == "on")
