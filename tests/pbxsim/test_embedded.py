"""The simulator on real time, as the embedded mode runs it."""

from __future__ import annotations

from pathlib import Path

from pbxsim import Answer, EndpointConfig, PbxSimulator, SimConfig
from pbxsim.amiclient import AmiClient


async def test_real_time_call_from_trunk_to_agent_and_back(tmp_path: Path):
    config = SimConfig(
        port=0,
        users={"acd": "secret"},
        answer_seconds=0.0,  # no waiting on the wall clock in a test
        recordings_dir=tmp_path,
        endpoints={"1001": EndpointConfig(Answer(0.0), "Agent 1001", "1001")},
    )
    async with PbxSimulator(config) as sim:  # RealClock by default
        client = AmiClient()
        assert sim.ami_port is not None
        await client.connect("127.0.0.1", sim.ami_port)
        try:
            await client.login("acd", "secret")
            call = await sim.inbound_call()
            await sim.run_until(lambda: call.waiting, 5)
            await client.action(
                "Originate", Channel="PJSIP/1001", Application="Bridge", Data=call.channel, Async="true"
            )
            await sim.run_until(lambda: call.bridged, 5)
            await client.action("MixMonitor", Channel=call.channel, File="embedded.wav")
            call.hangup()
            hangup = await client.wait_for(lambda f: f.event == "Hangup" and f["Channel"] == call.channel)
            assert hangup["Cause"] == "16"
            assert sim.channels() == [] and (tmp_path / "embedded.wav").is_file()
        finally:
            await client.close()
