"""The live model against what a real Asterisk 22 sent (shared/asterisk-traces): the call.* facts of each scenario."""

from __future__ import annotations

import pytest
from acd_support import new_replay, received_chunks, trace_path

from callcenter_common.contracts.acd import CallAgentMissed, CallAnswered, CallEnded, CallStarted


def test_core_6_inbound_call_answered_by_agent_01() -> None:
    r = new_replay().trace("01")
    assert r.names == ["call.started", "call.ringing", "call.answered", "call.ended"]
    assert {e.correlation_id for e in r.staged} == {"1796000437.7"}
    started = CallStarted.model_validate(r.data("call.started"))
    assert (started.call_id, started.caller_number, started.dnis, started.direction) == (
        "1796000437.7",
        "13800138000",
        "4008001234",
        "inbound",
    )
    assert started.channel == "PJSIP/trunk-00000005"
    # The agent leg starts with its own Linkedid (surprise 4) and still belongs to the caller's call.
    ringing = r.data("call.ringing")
    assert (ringing["agent_extension"], ringing["agent_channel"]) == ("1001", "PJSIP/1001-00000006")
    answered = CallAnswered.model_validate(r.data("call.answered"))
    assert answered.agent_extension == "1001" and answered.first_answer
    assert r.at_ms(r.data("call.answered")["answered_at"]) == 2428
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.cause, ended.agent_extension) == ("answered", "caller", 16, "1001")
    assert ended.wait_seconds == pytest.approx(2.113)
    assert ended.talk_seconds == pytest.approx(9.897)
    assert not r.model.channels and not r.model.calls and not r.model.bridges


def test_agent_11_no_answer_then_abandon_02() -> None:
    r = new_replay().trace("02")
    assert r.names == ["call.started", "call.ringing", "call.agent_missed", "call.ended"]
    missed = CallAgentMissed.model_validate(r.data("call.agent_missed"))
    assert (missed.agent_extension, missed.reason, missed.cause) == ("1003", "no_answer", 19)
    assert missed.ring_seconds == pytest.approx(5.004)
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.cause, ended.answered_at) == ("abandoned", "caller", 0, None)
    assert ended.agent_extension is None


def test_core_10_busy_agent_is_not_an_answer_03() -> None:
    # OriginateResponse Failure Reason 0 for a 486: the phone never rang, nobody answered.
    r = new_replay().trace("03")
    assert r.names == ["call.started", "call.ended"]
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.cause, ended.talk_seconds) == ("abandoned", "caller", 0, 0.0)
    assert ended.wait_seconds == pytest.approx(9.005)


def test_core_10_caller_abandons_in_music_on_hold_04() -> None:
    r = new_replay().trace("04")
    assert r.names == ["call.started", "call.ended"]  # MOH while waiting is not a hold
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.cause, ended.cause_text) == ("abandoned", "caller", 0, "Unknown")


def test_agent_8_1_blind_transfer_05() -> None:
    r = new_replay().trace("05")
    assert r.names == [
        "call.started",
        "call.ringing",
        "call.answered",
        "call.transferred",  # the Unhold on the transferer (no Hold before it) is no resume
        "call.ringing",
        "call.answered",
        "call.ended",
    ]
    transferred = r.data("call.transferred")
    assert (transferred["kind"], transferred["target"], transferred["agent_extension"]) == ("blind", "1002", "1001")
    second = CallAnswered.model_validate(r.data("call.answered", 1))
    assert (second.agent_extension, second.first_answer) == ("1002", False)
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.agent_extension, ended.dnis) == (
        "answered",
        "caller",
        "1002",
        "4008001234",
    )
    assert r.at_ms(ended.answered_at.isoformat() if ended.answered_at else "") == 1926


def test_agent_8_1_attended_transfer_06() -> None:
    r = new_replay().trace("06")
    assert r.names == [
        "call.started",
        "call.ringing",
        "call.answered",
        "call.held",  # Atxfer puts the caller on music on hold
        "call.ringing",
        "call.answered",  # 1002 answers the consultation leg
        "call.resumed",  # the caller's MOH stops when the bridges merge (no Unhold ever comes)
        "call.transferred",
        "call.ended",
    ]
    assert r.data("call.held")["agent_extension"] == "1001"
    transferred = r.data("call.transferred")
    # The target is found behind the Local/1002@agents-dial pair (LocalBridge, BridgeMerge).
    assert (transferred["kind"], transferred["target"], transferred["agent_extension"]) == ("attended", "1002", "1001")
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.agent_extension) == ("answered", "caller", "1002")
    assert not r.model.channels and not r.model.calls


def test_agent_18_hangup_by_ami_on_the_agent_08a() -> None:
    r = new_replay().trace("08a")
    assert r.names == ["call.started", "call.ringing", "call.answered", "call.ended"]
    ended = CallEnded.model_validate(r.data("call.ended"))
    # No HangupRequest: the agent left the bridge first, then the caller got a SoftHangupRequest.
    assert (ended.outcome, ended.hangup_by, ended.cause, ended.agent_extension) == ("answered", "agent", 16, "1001")
    assert ended.talk_seconds == pytest.approx(2.003)


def test_agent_9_hold_and_resume_13() -> None:
    r = new_replay().trace("13")
    assert r.names == ["call.started", "call.ringing", "call.answered", "call.held", "call.resumed", "call.ended"]
    assert r.at_ms(r.data("call.held")["held_at"]) == 4929
    assert r.at_ms(r.data("call.resumed")["resumed_at"]) == 7936
    assert r.data("call.held")["agent_extension"] == "1005"
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.agent_extension) == ("answered", "1005")


def test_core_5_originated_outbound_call_09() -> None:
    r = new_replay().trace("09")
    assert r.names == ["call.started", "call.answered", "call.ended"]
    started = r.data("call.started")
    assert (started["direction"], started["caller_number"], started["channel"]) == (
        "outbound",
        "013900139000",
        "PJSIP/1001-0000001d",
    )
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.agent_extension) == ("answered", "caller", "1001")


@pytest.mark.parametrize("scenario", ["07", "08b", "11"])
def test_core_6_other_scenarios_leave_a_clean_model(scenario: str) -> None:
    # ChanSpy legs, a Redirect and app_queue: one answered call each, nothing left over.
    r = new_replay().trace(scenario)
    assert r.names == ["call.started", "call.ringing", "call.answered", "call.ended"]
    assert not r.model.channels and not r.model.calls


def test_each_fact_is_published_once_when_events_repeat() -> None:
    # Every frame of 13 delivered twice (as a reconnect or a resync may repeat what was seen): the same facts.
    r = new_replay()
    frame = b""
    for t, chunk in received_chunks(trace_path("13")):
        frame += chunk
        if chunk == b"\r\n" and frame.startswith(b"Event: "):
            r.feed(frame + frame, t)
        if chunk == b"\r\n":
            frame = b""
    assert r.names == ["call.started", "call.ringing", "call.answered", "call.held", "call.resumed", "call.ended"]
    assert len({e.id for e in r.staged}) == len(r.staged)


def test_dnis_and_ivr_variables_are_kept_on_the_call() -> None:
    r = new_replay()
    for t, chunk in received_chunks(trace_path("01")):
        if t > 1200:
            break
        r.feed(chunk, t)
    call = r.model.calls["1796000437.7"]
    assert call.variables == {"IVR_RESULT": "menu1", "IVR_LANG": "zh", "IVR_CHOICE": "1", "ACD_SKILL": "sales"}
    assert call.dnis == "4008001234"


def test_core_4_recording_state_follows_mixmonitor() -> None:
    r = new_replay()
    for t, chunk in received_chunks(trace_path("01")):
        if t > 5000:
            break
        r.feed(chunk, t)
    assert r.model.channels["1796000437.7"].recording  # MixMonitor on the caller, after OriginateResponse
    assert not r.model.channels["1796000439.8"].recording
