"""Random AMI actions and phone behaviour, in any order, on any channel: the model never fails,
and what it reports stays consistent (one Hangup per Newchannel, one BridgeDestroy per
BridgeCreate, every BridgeEnter matched by a BridgeLeave)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from pbxsim import Answer, Busy, EndpointConfig, Manual, NoAnswer, PbxSimulator
from pbxsim.amiclient import AmiClient

AGI_COMMANDS = [
    "ANSWER",
    'STREAM FILE beep ""',
    "GET DATA beep 2000 2",
    "SET VARIABLE X y",
    "EXEC Wait 2",
    "HANGUP",
    "SET VARIABLE ROUTE agents-dial,1002",
    "SET VARIABLE ROUTE hangup",
]


async def random_step(rng: random.Random, sim: PbxSimulator, client: AmiClient, step: int) -> None:
    names = [c.name for c in sim.channels()] or ["PJSIP/none-00000000"]
    ch, other = rng.choice(names), rng.choice(names)
    ext = rng.choice(["1001", "1002", "1003", "1004", "1005"])
    op = rng.randrange(14)
    if op == 0:
        await sim.inbound_call(dtmf=rng.choice(["", "1#"]))
    elif op == 1:
        data = ch + rng.choice(["", ",T"])
        await client.action(
            "Originate", Channel=f"PJSIP/{ext}", Application="Bridge", Data=data, Async="true", Timeout="4000"
        )
    elif op == 2:
        await client.action("Hangup", Channel=ch, Cause=str(rng.choice([16, 17, 21])))
    elif op == 3:
        context, exten = rng.choice([("waiting", "s"), ("agents-dial", "1001"), ("agents-dial", "1002")])
        await client.action("Redirect", Channel=ch, Context=context, Exten=exten, Priority="1")
    elif op == 4:
        await client.action("BlindTransfer", Channel=ch, Context="agents-dial", Exten=rng.choice(["1001", "1004"]))
    elif op == 5:
        await client.action("Atxfer", Channel=ch, Context="agents-dial", Exten=rng.choice(["1002", "1003", "1004"]))
    elif op == 6:
        await client.action("MixMonitor", Channel=ch, File=f"r{step}.wav", Options=rng.choice(["", "b"]))
    elif op == 7:
        await client.action("Originate", Channel="PJSIP/1009", Application="ChanSpy", Data=f"{ch},q", Async="true")
    elif op == 8:
        callers = [c for c in sim.channels() if c.name.startswith(("PJSIP/trunk-", "PJSIP/carrier-"))]
        if callers:
            sim.far_end_hangup(rng.choice(callers).name)
    elif op == 9:
        phone = sim.endpoint(ext)
        actions = [phone.answer, phone.hold, phone.unhold, phone.hangup, lambda: phone.reject(17)]
        try:
            rng.choice(actions)()
        except RuntimeError:
            pass  # the phone has no call, or no ringing one
    elif op == 10:
        await client.action("Bridge", Channel1=ch, Channel2=other)
    elif op == 11:
        await client.action(
            "Originate", Channel="PJSIP/1001", Context="outbound", Exten="013900139000", Priority="1", Async="true"
        )
    elif op == 12:
        await client.send("CoreShowChannels")
        await client.send("Status")
    else:
        await client.action("StopMixMonitor", Channel=ch)


@pytest.mark.parametrize("seed", range(8))
async def test_random_actions_keep_the_model_consistent(seed, make_sim, sim_config, connect, fastagi):
    rng = random.Random(seed)

    async def ivr(conn) -> None:
        for command in rng.sample(AGI_COMMANDS, 4):
            await conn.command(command)

    fastagi.script = ivr
    sim_config.endpoints.update(
        {
            "1003": EndpointConfig(NoAnswer()),
            "1004": EndpointConfig(Busy()),
            "1005": EndpointConfig(Manual()),
            "1009": EndpointConfig(Answer(0.2), "Supervisor", "1009"),
        }
    )
    sim = await make_sim(agi=seed % 2 == 1)
    client = await connect(sim)
    await client.login("probe", "probe123")
    for step in range(150):
        await random_step(rng, sim, client, step)
        await sim.advance(rng.choice([0, 0.1, 0.3, 1, 5]))
    for info in sim.channels():
        ch = sim.pbx.find(info.name)
        if ch is not None and not ch.hungup:
            sim.pbx.far_end_hangup(ch)
    await sim.advance(60)
    await client.ping_barrier()

    assert sim.channels() == [] and sim.bridges() == [] and sim.trunk_in_use == 0
    assert Counter(f["Uniqueid"] for f in client.events("Newchannel")) == Counter(
        f["Uniqueid"] for f in client.events("Hangup")
    )
    assert Counter(f["BridgeUniqueid"] for f in client.events("BridgeCreate")) == Counter(
        f["BridgeUniqueid"] for f in client.events("BridgeDestroy")
    )
    membership: Counter[tuple[str, str]] = Counter()
    for frame in client.frames:
        if frame.event in ("BridgeEnter", "BridgeLeave"):
            membership[(frame["BridgeUniqueid"], frame["Channel"])] += 1 if frame.event == "BridgeEnter" else -1
    assert all(count == 0 for count in membership.values())
