"""Resync on the model alone: a snapshot (CoreShowChannels + Status, trace 10) makes it equal to the PBX."""

from __future__ import annotations

from datetime import timedelta

from acd_support import EPOCH, Replay, new_replay, received_chunks, received_frames, trace_path
from panoramisk.message import Message

from acd.calls import SnapshotChannel
from acd.repository import recalled, remembered
from acd.service import snapshot_rows
from callcenter_common.contracts.acd import CallEnded


def trace10_snapshot(with_status: bool = True) -> list[SnapshotChannel]:
    messages = [Message.from_line(text) for text in received_frames("10")]
    listing = [m for m in messages if m is not None and m.get("ActionID") == "coreshowchannels-1"]
    status = [m for m in messages if m is not None and m.get("ActionID") == "status-1"]
    return snapshot_rows(listing, status if with_status else None)


def replay_until(name: str, until_ms: int) -> Replay:
    r = new_replay()
    for t, chunk in received_chunks(trace_path(name)):
        if t > until_ms:
            break
        r.feed(chunk, t)
    return r


def test_snapshot_rows_read_coreshowchannels_and_status_of_trace_10() -> None:
    rows = {row.name: row for row in trace10_snapshot()}
    trunk, agent = rows["PJSIP/trunk-0000001f"], rows["PJSIP/1001-00000020"]
    assert (trunk.uniqueid, trunk.linkedid, trunk.dnid, trunk.duration_seconds) == (
        "1796000636.41",
        "1796000636.41",
        "4008001234",
        1.0,
    )
    assert agent.linkedid == "1796000636.41" and agent.bridge_id == trunk.bridge_id != ""
    assert (agent.application, agent.application_data) == ("Bridge", "PJSIP/trunk-0000001f")


def test_core_6_resync_finds_a_call_that_began_while_the_acd_was_away() -> None:
    r = new_replay()
    r.clock.set(EPOCH + timedelta(seconds=10))
    r.model.begin_resync()
    report = r.model.apply_snapshot(trace10_snapshot())
    r.feed(b"")
    assert report is not None and (report.added, report.removed) == (2, 0)
    assert r.names == ["call.started", "call.answered"]
    started = r.data("call.started")
    assert (started["call_id"], started["dnis"], started["caller_number"]) == (
        "1796000636.41",
        "4008001234",
        "13800138000",
    )
    assert r.at_ms(started["started_at"]) == 9000  # now minus the channel's Duration
    assert r.data("call.answered")["agent_extension"] == "1001"
    assert set(r.model.channels) == {"1796000636.41", "1796000638.42"}
    # Later live events go on from there, and nothing is announced twice.
    r.feed(
        b"Event: Hangup\r\nChannel: PJSIP/trunk-0000001f\r\nUniqueid: 1796000636.41\r\nLinkedid: 1796000636.41\r\n"
        b"Cause: 16\r\nCause-txt: Normal Clearing\r\n\r\n"
        b"Event: Hangup\r\nChannel: PJSIP/1001-00000020\r\nUniqueid: 1796000638.42\r\nLinkedid: 1796000636.41\r\n"
        b"Cause: 16\r\nCause-txt: Normal Clearing\r\n\r\n"
    )
    assert r.names == ["call.started", "call.answered", "call.ended"]
    assert r.data("call.ended")["seen_by_resync"] is False


def test_core_6_resync_ends_calls_whose_channels_vanished() -> None:
    r = replay_until("13", 6000)  # answered and on hold when the connection was lost
    assert r.names == ["call.started", "call.ringing", "call.answered", "call.held"]
    r.clock.set(EPOCH + timedelta(seconds=30))
    r.model.begin_resync()
    report = r.model.apply_snapshot([])
    r.feed(b"")
    assert report is not None and (report.removed, report.ended_calls) == (2, 1)
    assert r.names[-1] == "call.ended"
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.seen_by_resync, ended.agent_extension) == (
        "answered",
        "unknown",
        True,
        "1005",
    )
    assert not r.model.channels and not r.model.calls and not r.model.bridges


def test_resync_ends_a_ringing_leg_as_missed_and_the_waiting_call_as_unanswered() -> None:
    r = replay_until("02", 3000)  # the agent rings, the caller waits
    r.model.begin_resync()
    r.model.apply_snapshot([])
    r.feed(b"")
    assert r.names == ["call.started", "call.ringing", "call.agent_missed", "call.ended"]
    assert r.data("call.agent_missed")["reason"] == "cancelled"
    ended = r.data("call.ended")
    assert (ended["outcome"], ended["hangup_by"]) == ("unanswered", "unknown")


def test_live_events_during_a_resync_win_over_the_snapshot() -> None:
    r = new_replay()
    r.model.begin_resync()
    snapshot = trace10_snapshot()
    # While the list was on its way: the agent hung up, and a new call came in.
    r.feed(
        b"Event: Hangup\r\nChannel: PJSIP/1001-00000020\r\nUniqueid: 1796000638.42\r\nLinkedid: 1796000636.41\r\n"
        b"Cause: 16\r\n\r\n"
        b"Event: Newchannel\r\nChannel: PJSIP/trunk-00000030\r\nChannelState: 4\r\nCallerIDNum: 13900000000\r\n"
        b"Context: from-trunk\r\nExten: 4008005555\r\nUniqueid: 1796000700.50\r\nLinkedid: 1796000700.50\r\n\r\n"
    )
    r.model.apply_snapshot(snapshot)  # lists the agent, does not list the new call
    r.feed(b"")
    assert set(r.model.channels) == {"1796000636.41", "1796000700.50"}
    assert sorted(r.model.calls) == ["1796000636.41", "1796000700.50"]
    assert r.names == ["call.started", "call.started"]  # the hung-up agent is not counted as an answer


def test_a_superseded_snapshot_is_not_applied() -> None:
    r = new_replay()
    old = r.model.begin_resync()
    r.model.begin_resync()
    assert r.model.apply_snapshot(trace10_snapshot(), old) is None
    assert not r.model.channels


def test_core_6_restart_continues_announced_calls_without_repeating_them() -> None:
    before = replay_until("13", 6000)
    call = before.model.calls["1796000668.46"]
    state = remembered(call)
    # A new process: the database gives back the call and its published facts, the PBX its channels.
    r = new_replay()
    r.clock.set(EPOCH + timedelta(seconds=7))
    r.model.restore([recalled(state)])
    r.model.begin_resync()
    rows = [
        SnapshotChannel(
            uniqueid=ch.uniqueid,
            name=ch.name,
            linkedid=ch.linkedid,
            state=ch.state,
            caller_number=ch.caller_number,
            context=ch.context,
            exten=ch.exten,
            bridge_id=ch.bridge_id or "",
            duration_seconds=6.0,
        )
        for ch in before.model.channels.values()
    ]
    r.model.apply_snapshot(rows)
    r.feed(b"")
    assert r.names == []  # started, ringing, answered and held were announced by the previous process
    for t, chunk in received_chunks(trace_path("13")):
        if t > 6000:
            r.feed(chunk, t)
    assert r.names == ["call.resumed", "call.ended"]
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.agent_extension) == ("answered", "caller", "1005")
    assert r.at_ms(ended.started_at.isoformat()) == 312


def test_a_restored_call_that_is_gone_ends_at_the_first_resync() -> None:
    before = replay_until("01", 5000)
    r = new_replay()
    r.model.restore([recalled(remembered(c)) for c in before.model.calls.values()])
    assert list(r.model.calls) == ["1796000437.7"]
    r.model.begin_resync()
    report = r.model.apply_snapshot([])
    r.feed(b"")
    assert report is not None and report.ended_calls == 1
    assert r.names == ["call.ended"]
    ended = CallEnded.model_validate(r.data("call.ended"))
    assert (ended.outcome, ended.hangup_by, ended.seen_by_resync, ended.agent_extension) == (
        "answered",
        "unknown",
        True,
        "1001",
    )
