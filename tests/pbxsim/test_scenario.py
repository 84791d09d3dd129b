"""The scenario runner: calls at a rate, a trivial ACD over AMI, callers who give up."""

from __future__ import annotations

from pbxsim.scenario import ScenarioConfig, main, run_scenario


async def test_every_call_is_served_when_agents_suffice(tmp_path):
    result = await run_scenario(
        ScenarioConfig(calls=12, rate=4, agents=3, talk_seconds=2, virtual=True, record=True, recordings_dir=tmp_path)
    )
    assert (result.offered, result.connected, result.completed, result.abandoned) == (12, 12, 12, 0)
    assert len(list(tmp_path.glob("*.wav"))) == 12
    assert result.events > 12 * 15


async def test_impatient_callers_abandon_and_the_trunk_overflows():  # CORE-1
    result = await run_scenario(
        ScenarioConfig(calls=60, rate=20, agents=1, talk_seconds=30, abandon_ratio=1.0, patience=5, virtual=True)
    )
    assert result.rejected == 30  # 30 B-channels: the second half of the burst finds the trunk full
    assert result.connected + result.abandoned == 30 and result.abandoned > 20


def test_command_line_prints_a_summary(capsys):
    assert main(["--calls", "3", "--rate", "10", "--agents", "3", "--talk-seconds", "1", "--virtual"]) == 0
    out = capsys.readouterr().out
    assert "calls offered      3" in out and "completed          3" in out
