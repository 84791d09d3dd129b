"""FastAGI: the simulator as the AGI client, against fastagi-*.txt and the routing convention."""

from __future__ import annotations

import asyncio

from pbxsim import CallHandle, InboundContext, PbxSimulator, SimConfig
from pbxsim.amiclient import AmiClient
from pbxsim.traces import Normalizer, Rules, Trace, TraceFrame, compare_streams

NOT_COMPARED = frozenset({"VarSet", "Newexten", "RTCPSent", "DeviceStateChange"})
ENV_NAMES = [
    "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language", "agi_type",
    "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname", "agi_callingpres", "agi_callingani2",
    "agi_callington", "agi_callingtns", "agi_dnid", "agi_rdnis", "agi_context", "agi_extension",
    "agi_priority", "agi_enhanced", "agi_accountcode", "agi_threadid",
]  # fmt: skip


def bench_config(config: SimConfig, url: str) -> SimConfig:
    """The command bench of fastagi-commands.txt: NoOp, AGI(…) with no Answer() before it."""
    config.contexts["from-trunk"] = InboundContext(noop="FastAGI command bench", answer=False)
    config.agi_url = url
    return config


def replay_script(frames: list[TraceFrame]):
    """A FastAGI server that does what the trace's server did, reading as many lines as Asterisk sent."""

    async def script(conn) -> None:
        for frame in frames[1:]:
            if frame.direction == ">>":
                conn.writer.write(("\n".join(frame.lines) + "\n").encode())
            else:
                for _ in frame.lines:
                    await conn.line()

    return script


def expected_ami(trace: Trace, channel: str) -> list[list[tuple[str, str]]]:
    norm = Normalizer()
    raw = [f.headers for f in trace.received() if f.get("Channel") == channel and f.event not in NOT_COMPARED]
    return [norm.headers(h) for h in raw]


def actual_ami(client: AmiClient, channel: str) -> list[list[tuple[str, str]]]:
    norm = Normalizer()
    return [
        norm.headers(f.headers) for f in client.frames if f.get("Channel") == channel and f.event not in NOT_COMPARED
    ]


async def start_bench(make_sim, sim_config, connect, fastagi, trace, session: int, script: str, dtmf: str):
    agi = trace("fastagi-commands.txt")
    frames = agi.connections[session]
    fastagi.script = replay_script(frames)
    sim = await make_sim(bench_config(sim_config, fastagi.url(script)))
    client = await connect(sim)
    await client.login("probe", "probe123")
    call = await sim.inbound_call("13800138000", frames[0].get("agi_dnid") or "", dtmf=dtmf)
    return sim, client, call, frames


async def test_fastagi_env_and_command_replies_match_asterisk(make_sim, sim_config, connect, fastagi, trace):
    sim, client, call, frames = await start_bench(make_sim, sim_config, connect, fastagi, trace, 0, "commands", "123")
    await sim.run_until(fastagi.finished.is_set)
    await sim.run_until(lambda: call.hungup)
    await client.ping_barrier()

    conn = fastagi.connections[0]
    env = {key: value for key, _, value in (line.partition(": ") for line in frames[0].lines)}
    assert [line.split(":")[0] for line in conn.env_lines] == ENV_NAMES
    assert conn.env_lines[0:3] == [
        "agi_network: yes",
        "agi_network_script: commands",
        f"agi_request: {fastagi.url('commands')}",
    ]
    assert conn.env["agi_channel"] == call.channel and conn.env["agi_uniqueid"] == call.uniqueid
    for name in ENV_NAMES[4:]:
        if name not in ("agi_uniqueid", "agi_threadid"):
            assert conn.env[name] == env[name], name

    expected = [line for frame in frames[1:] if frame.direction == "<<" for line in frame.lines]
    assert conn.received == expected  # every reply, the 520 usage text, the HANGUP line, the 511s

    trace_ami = trace("fastagi-commands-ami.txt")
    problems = compare_streams(
        expected_ami(trace_ami, env["agi_channel"]), actual_ami(client, call.channel), Rules(ignore=NOT_COMPARED)
    )
    assert not problems, "\n".join(problems)
    assert (sim.config.recordings_dir / "agi-rec.wav").is_file()  # RECORD FILE wrote its (silent) file


async def test_caller_hangs_up_during_agi(make_sim, sim_config, connect, fastagi, trace):
    sim, client, call, frames = await start_bench(make_sim, sim_config, connect, fastagi, trace, 1, "hangup-test", "")
    await sim.run_until(lambda: call.agi_command == "EXEC Wait 10")
    await sim.advance(2.5)
    call.hangup()  # the caller's BYE while the IVR runs
    await sim.run_until(fastagi.finished.is_set)
    await sim.run_until(lambda: call.hungup)
    await client.ping_barrier()

    conn = fastagi.connections[0]
    expected = [line for frame in frames[1:] if frame.direction == "<<" for line in frame.lines]
    assert conn.received == expected  # 200 result=-1, HANGUP, GET VARIABLE still works, then 511
    env_channel = frames[0].get("agi_channel") or ""
    problems = compare_streams(
        expected_ami(trace("fastagi-commands-ami.txt"), env_channel),
        actual_ami(client, call.channel),
        Rules(ignore=NOT_COMPARED),
    )
    assert not problems, "\n".join(problems)


async def run_ivr(sim: PbxSimulator, fastagi, commands: list[str], dtmf: str = "") -> tuple[CallHandle, list[str]]:
    replies: list[str] = []

    async def script(conn) -> None:
        for command in commands:
            replies.append(await conn.command(command))

    fastagi.script = script
    call = await sim.inbound_call(dtmf=dtmf)
    await sim.run_until(fastagi.finished.is_set)
    await sim.settle()
    return call, replies


async def test_ivr_variables_reach_the_channel_and_the_call_waits(make_sim, connect, fastagi):
    sim = await make_sim()
    client = await connect(sim)
    await client.login("probe", "probe123")
    call, replies = await run_ivr(
        sim, fastagi, ["ANSWER", "GET DATA beep 3000 4", "SET VARIABLE IVR_MENU sales"], dtmf="12#"
    )
    assert replies == ["200 result=0", "200 result=12", "200 result=1"]
    await sim.run_until(lambda: call.waiting)
    assert call.variables["IVR_MENU"] == "sales"
    await client.ping_barrier()
    varsets = [(f["Variable"], f["Value"]) for f in client.events("VarSet") if f.get("Channel") == call.channel]
    assert ("IVR_MENU", "sales") in varsets
    assert [f["Digit"] for f in client.events("DTMFEnd")] == ["1", "2", "#"]
    status = await client.send("Status", Channel=call.channel, Variables="IVR_MENU")
    assert status[1].get("Variable") == "IVR_MENU=sales"


async def test_route_variable_hangup_ends_the_call(make_sim, fastagi):
    sim = await make_sim()
    call, _ = await run_ivr(sim, fastagi, ["SET VARIABLE ROUTE hangup"])
    await sim.run_until(lambda: call.hungup)
    assert not call.waiting


async def test_route_variable_sends_the_call_to_a_context(make_sim, fastagi):
    sim = await make_sim()
    call, _ = await run_ivr(sim, fastagi, ["SET VARIABLE ROUTE agents-dial,1002"])
    await sim.run_until(lambda: call.bridged)
    assert any(c.name.startswith("PJSIP/1002-") for c in sim.channels())


async def test_set_context_extension_priority_move_the_call(make_sim, fastagi):
    sim = await make_sim()
    call, replies = await run_ivr(sim, fastagi, ["SET CONTEXT agents-dial", "SET EXTENSION 1001", "SET PRIORITY 1"])
    assert replies == ["200 result=0"] * 3
    await sim.run_until(lambda: call.bridged)
    assert call.info().context == "agents-dial"


async def test_get_data_partial_input_times_out_with_digits(make_sim, fastagi):
    sim = await make_sim()
    _, replies = await run_ivr(sim, fastagi, ["GET DATA beep 2000 4", "WAIT FOR DIGIT 1000"], dtmf="12,5")
    assert replies == ["200 result=12 (timeout)", f"200 result={ord('5')}"]


async def test_unreachable_fastagi_server_lets_the_call_go_on(make_sim, sim_config):
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()  # nothing listens on that port any more
    sim_config.agi_url = f"agi://127.0.0.1:{port}/inbound"
    sim = await make_sim()
    call = await sim.inbound_call()
    await sim.run_until(lambda: call.waiting)
    assert call.variables["AGISTATUS"] == "FAILURE"


async def test_server_that_closes_at_once_lets_the_call_go_on(make_sim, fastagi):
    sim = await make_sim()  # the default script closes right after the env block
    call = await sim.inbound_call()
    await sim.run_until(lambda: call.waiting)
    assert call.variables["AGISTATUS"] == "SUCCESS"
