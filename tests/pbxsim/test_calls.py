"""The call model through AMI: recordings, capacity, identities, phones, transfers, spying."""

from __future__ import annotations

import wave

from pbxsim import Busy, EndpointConfig, Manual, NoAnswer, PbxSimulator
from pbxsim.amiclient import AmiClient


async def login(connect, sim: PbxSimulator) -> AmiClient:
    client = await connect(sim)
    await client.login("probe", "probe123")
    return client


async def waiting_call(sim: PbxSimulator):
    call = await sim.inbound_call()
    await sim.run_until(lambda: call.waiting)
    return call


async def connect_agent(client: AmiClient, sim: PbxSimulator, call, agent: str = "1001", options: str = "") -> None:
    """What the ACD does (01): Originate the agent into Bridge(<caller>)."""
    data = call.channel + (f",{options}" if options else "")
    reply = await client.action(
        "Originate",
        Channel=f"PJSIP/{agent}",
        Application="Bridge",
        Data=data,
        Timeout="15000",
        CallerID='"13800138000" <13800138000>',
        Async="true",
    )
    assert reply["Message"] == "Originate successfully queued"
    await sim.run_until(lambda: call.bridged)


async def test_mixmonitor_writes_a_valid_wav_of_the_call_length(make_sim, connect):  # CORE-4
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    call = await waiting_call(sim)
    await connect_agent(client, sim, call)
    reply = await client.action(
        "MixMonitor", Channel=call.channel, File=f"/var/spool/asterisk/monitor/in-{call.uniqueid}.wav", Options="b"
    )
    assert reply.names() == ["Response", "ActionID"]
    await sim.advance(12.5)
    call.hangup()
    await sim.settle()
    [path] = sim.recordings()
    assert path == sim.config.recordings_dir / f"in-{call.uniqueid}.wav"
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == 12.5 * 8000
        assert w.readframes(10) == bytes(20)  # silence, as the traces recorded (no RTP)
    await client.ping_barrier()
    started = client.events("MixMonitorStart")
    assert len(started) == 1 and not client.events("MixMonitorStop")  # Asterisk 22 sends no Stop on hang-up (01)


async def test_stopmixmonitor_sends_mixmonitorstop_and_closes_the_file(make_sim, sim_config, connect):
    sim_config.recording_tone_hz = 440.0
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    call = await waiting_call(sim)
    await connect_agent(client, sim, call)
    await client.action("MixMonitor", Channel=call.channel, File="tone.wav")
    await sim.advance(2)
    assert (await client.action("StopMixMonitor", Channel=call.channel))["Response"] == "Success"
    await client.wait_for(lambda f: f.event == "MixMonitorStop")
    with wave.open(str(sim.config.recordings_dir / "tone.wav"), "rb") as w:
        assert w.getnframes() == 2 * 8000
        assert w.readframes(8000) != bytes(16000)  # a tone, not silence
    assert (await client.action("StopMixMonitor", Channel=call.channel))["Message"] == "Could not stop MixMonitor"


async def test_trunk_holds_thirty_calls_and_refuses_the_next(make_sim):  # CORE-1
    sim = await make_sim(agi=False)
    calls = [await sim.inbound_call(f"1390000{i:04d}") for i in range(30)]
    assert sim.trunk_in_use == 30 and not any(c.rejected for c in calls)
    extra = await sim.inbound_call("13911112222")
    assert extra.rejected and sim.rejected_calls == 1
    calls[0].hangup()
    assert not (await sim.inbound_call("13911113333")).rejected  # a freed B-channel takes the next call


async def test_uniqueid_and_linkedid_follow_the_bridge(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    call = await waiting_call(sim)
    epoch, _, seq = call.uniqueid.partition(".")
    assert epoch.isdigit() and seq.isdigit() and call.linkedid == call.uniqueid
    await connect_agent(client, sim, call)
    await client.ping_barrier()
    agent_new = next(f for f in client.events("Newchannel") if f["Channel"].startswith("PJSIP/1001-"))
    assert agent_new["Linkedid"] == agent_new["Uniqueid"]  # its own until bridged
    agent_enter = next(f for f in client.events("BridgeEnter") if f["Channel"].startswith("PJSIP/1001-"))
    assert agent_enter["Linkedid"] == call.linkedid  # then the caller's (README surprise 4)
    [bridge] = sim.bridges()
    assert set(bridge.channels) == {call.channel, agent_new["Channel"]}
    assert [c.name for c in sim.channels()] == [call.channel, agent_new["Channel"]]


async def test_manual_phone_answer_hold_unhold_hangup(make_sim, sim_config, connect):
    sim_config.endpoints["1001"] = EndpointConfig(Manual(), "Agent 1001", "1001")
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    call = await waiting_call(sim)
    await client.action("Originate", Channel="PJSIP/1001", Application="Bridge", Data=call.channel, Async="true")
    await sim.advance(20)
    assert not call.bridged  # it rings until the agent answers (or Originate's 30 s default timeout)
    sim.endpoint("1001").answer()
    assert call.bridged
    sim.endpoint("1001").hold()
    sim.endpoint("1001").unhold()
    sim.endpoint("1001").hangup()  # Bridge() without F: the caller goes too
    assert call.hungup
    await client.ping_barrier()
    names = [
        f.event
        for f in client.frames
        if f.event in ("Hold", "MusicOnHoldStart", "Unhold", "MusicOnHoldStop", "HangupRequest")
    ]
    assert names[-5:] == ["Hold", "MusicOnHoldStart", "Unhold", "MusicOnHoldStop", "HangupRequest"]


async def test_rejected_and_unanswered_originates(make_sim, sim_config, connect):
    sim_config.endpoints.update({"1003": EndpointConfig(NoAnswer()), "1004": EndpointConfig(Busy())})
    sim_config.default_endpoint = None
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    call = await waiting_call(sim)
    for ext in ("1004", "1003", "9999"):
        await client.action(
            "Originate",
            ActionID=f"o-{ext}",
            Channel=f"PJSIP/{ext}",
            Application="Bridge",
            Data=call.channel,
            Timeout="5000",
            Async="true",
        )
    await sim.advance(6)
    await client.ping_barrier()
    reasons = {f["ActionID"]: (f["Response"], f["Reason"], f["Uniqueid"]) for f in client.events("OriginateResponse")}
    assert reasons == {
        "o-1004": ("Failure", "0", "<unknown>"),  # 486: Reason 0, not 5 (03)
        "o-1003": ("Failure", "3", "<unknown>"),  # no answer within Timeout (02)
        "o-9999": ("Failure", "0", "<unknown>"),  # no such endpoint
    }
    causes = {f["Channel"].split("-")[0]: (f["Cause"], f.get("TechCause")) for f in client.events("Hangup")}
    assert causes == {"PJSIP/1004": ("17", "486"), "PJSIP/1003": ("19", "480")}
    assert call.waiting


async def test_ami_hangup_and_redirect_of_a_waiting_caller(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    first, second = await waiting_call(sim), await waiting_call(sim)
    assert (await client.action("Hangup", Channel=first.channel, Cause="21"))["Message"] == "Channel Hungup"
    assert first.hungup
    hangup = await client.wait_for(lambda f: f.event == "Hangup" and f["Channel"] == first.channel)
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("21", "Call Rejected")
    reply = await client.action("Redirect", Channel=second.channel, Context="agents-dial", Exten="1002", Priority="1")
    assert reply["Message"] == "Redirect successful"
    await sim.run_until(lambda: second.bridged)


async def test_blind_transfer_back_to_the_queue(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    call = await waiting_call(sim)
    await connect_agent(client, sim, call)
    agent = sim.endpoint("1001").channel
    assert agent is not None
    reply = await client.action("BlindTransfer", Channel=agent.name, Context="waiting", Exten="s")
    assert reply["Message"] == "Transfer succeeded"
    assert call.waiting and agent.hungup
    transfer = await client.wait_for(lambda f: f.event == "BlindTransfer")
    assert (transfer["TransfererChannel"], transfer["TransfereeChannel"], transfer["IsExternal"]) == (
        agent.name,
        call.channel,
        "Yes",
    )


async def test_atxfer_needs_the_transfer_feature(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    call = await waiting_call(sim)
    await connect_agent(client, sim, call)  # Bridge() without option T
    agent = sim.endpoint("1001").channel
    assert agent is not None
    reply = await client.action("Atxfer", Channel=agent.name, Exten="1002", Context="agents-dial")
    assert (reply["Response"], reply["Message"]) == ("Error", "No attended transfer feature code found")


async def test_chanspy_whisper_and_barge_look_like_listen(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    call = await waiting_call(sim)
    await connect_agent(client, sim, call)
    agent = sim.endpoint("1001").channel
    assert agent is not None
    for options in ("q", "qw", "qB"):
        await client.action(
            "Originate",
            Channel="PJSIP/1009",
            Application="ChanSpy",
            Data=f"{agent.name},{options}",
            CallerID='"Supervisor" <1009>',
            Async="true",
        )
        await sim.advance(1)
    await client.ping_barrier()
    starts = client.events("ChanSpyStart")
    assert [f["SpyeeChannel"] for f in starts] == [agent.name] * 3
    assert sim.bridges()[0].technology == "simple_bridge"  # the spy's audiohook keeps it off native_rtp
    call.hangup()
    await client.ping_barrier()
    assert len(client.events("ChanSpyStop")) == 3


async def test_outbound_originate_through_the_carrier(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    await client.action(
        "Originate",
        Channel="PJSIP/1001",
        Context="outbound",
        Exten="013900139000",
        Priority="1",
        CallerID='"Agent 1001" <1001>',
        Async="true",
    )
    await sim.run_until(lambda: len(sim.bridges()) == 1)
    carrier = next(c for c in sim.channels() if c.name.startswith("PJSIP/carrier-"))
    assert carrier.caller_num == "013900139000" and sim.trunk_in_use == 1  # the E1 carries outbound legs too
    sim.far_end_hangup(carrier.name)
    assert sim.channels() == [] and sim.trunk_in_use == 0


async def test_ami_bridge_joins_two_channels(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    first, second = await waiting_call(sim), await waiting_call(sim)
    reply = await client.action("Bridge", Channel1=first.channel, Channel2=second.channel)
    assert reply["Message"] == "Channel has been bridged"
    assert first.bridged and second.bridged and len(sim.bridges()) == 1
    first.hangup()
    assert second.hungup  # the bridge dissolves; [waiting] goes on to Hangup()


async def test_register_endpoint_at_run_time(make_sim, connect):
    sim = await make_sim(agi=False)
    client = await login(connect, sim)
    phone = sim.register_endpoint("3001", Manual(), "Agent 3001", "3001")
    call = await waiting_call(sim)
    await client.action("Originate", Channel="PJSIP/3001", Application="Bridge", Data=call.channel, Async="true")
    await client.wait_for(lambda f: f.event == "DialState")
    phone.reject(21)
    response = await client.wait_for(lambda f: f.event == "OriginateResponse")
    assert response["Response"] == "Failure"
    hangup = await client.wait_for(lambda f: f.event == "Hangup" and f["Channel"].startswith("PJSIP/3001-"))
    assert (hangup["Cause"], hangup["TechCause"]) == ("21", "603")
