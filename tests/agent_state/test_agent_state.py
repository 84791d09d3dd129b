"""AGENT-5 (states, after-call work, mute, timeline) and AGENT-6 (groups), driven by the API and by call.* events."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY

from agent_state.config import AgentStateSettings
from agent_state.main import create_app
from agent_state.models import AgentStatus
from callcenter_common.contracts.acd import CallAgentMissed, CallAnswered, CallEnded, CallHeld, CallResumed, CallRinging
from callcenter_common.events import Envelope
from callcenter_common.settings import PlatformSettings


def _call(kind: str, call_id: str, extension: str, at: datetime | None = None, **extra: object) -> Envelope:
    at = at or datetime.now(UTC)
    common = {"call_id": call_id, "caller_number": "13800138000", "agent_extension": extension}
    if kind == "ringing":
        event = CallRinging(**common, ringing_at=at, **extra)
    elif kind == "answered":
        event = CallAnswered(**common, answered_at=at, **extra)
    elif kind == "held":
        event = CallHeld(**common, held_at=at, **extra)
    elif kind == "resumed":
        event = CallResumed(**common, resumed_at=at, **extra)
    else:
        event = CallEnded(
            **common,
            outcome="answered",
            started_at=at - timedelta(seconds=60),
            answered_at=at - timedelta(seconds=50),
            ended_at=at,
            **extra,
        )
    return event.envelope("acd", correlation_id=call_id)


async def _talk_and_hang_up(agent_state, events, token: str, extension: str, call_id: str) -> dict:
    for kind in ("ringing", "answered"):
        await events.publish(_call(kind, call_id, extension))
    await agent_state.wait_state(token, "talking")
    await events.publish(_call("ended", call_id, extension))
    return await agent_state.wait_state(token, "after_call_work")


async def test_agent_5_agent_chosen_states_are_recorded_in_the_timeline(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    token = await agent_state.login("8001", "1001")
    agent_id = agent_state.users["8001"]

    for state, reason in (("busy", "meal"), ("busy", "training"), ("short_break", ""), ("idle", "")):
        response = await client.put("/agents/me/state", json={"state": state, "reason": reason}, headers=h(token))
        assert response.status_code == 200, response.text
        assert (response.json()["state"], response.json()["reason"]) == (state, reason)
    same = await client.put("/agents/me/state", json={"state": "idle"}, headers=h(token))
    assert same.status_code == 200  # nothing to change, nothing recorded

    timeline = (await client.get("/agents/me/timeline", headers=h(token))).json()["items"]
    assert [(t["state"], t["reason"]) for t in timeline] == [
        ("idle", ""),
        ("busy", "meal"),
        ("busy", "training"),
        ("short_break", ""),
        ("idle", ""),
    ]
    assert all(t["ended_at"] == n["started_at"] for t, n in itertools.pairwise(timeline))
    assert timeline[-1]["ended_at"] is None

    changes = [
        e.data
        for e in [
            await events.wait_for(
                "agent.state_changed", lambda d: d["state"] == "idle" and d["previous_state"] == "short_break"
            )
        ]
    ]
    assert changes[0]["user_id"] == agent_id and changes[0]["extension"] == "1001"
    published = events.named("agent.state_changed", lambda d: d["user_id"] == agent_id)
    assert [(d.data["previous_state"], d.data["state"]) for d in published] == [
        ("logged_out", "idle"),
        ("idle", "busy"),
        ("busy", "busy"),
        ("busy", "short_break"),
        ("short_break", "idle"),
    ]
    assert all(e.audience is not None and e.audience.user_ids == (agent_id,) for e in published)

    page = (await client.get("/agents/me/timeline", params={"limit": 2}, headers=h(token))).json()
    rest = (await client.get("/agents/me/timeline", params={"cursor": page["next_cursor"]}, headers=h(token))).json()
    assert [t["id"] for t in page["items"] + rest["items"]] == [t["id"] for t in timeline]


async def test_agent_5_illegal_changes_are_409_with_the_current_state_and_bad_input_422(agent_state):
    client, h = agent_state.client, agent_state.auth
    token = await agent_state.login("8001")  # no extension: not logged in to the telephony
    response = await client.put("/agents/me/state", json={"state": "idle"}, headers=h(token))
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "agent.illegal_transition"
    assert response.json()["current_state"] == "logged_out"

    token = await agent_state.login("8001", "1001")
    for body, field in (
        ({"state": "talking"}, "state"),
        ({"state": "logged_out"}, "state"),
        ({"state": "busy", "reason": "x" * 101}, "reason"),
        ({}, "state"),
    ):
        response = await client.put("/agents/me/state", json=body, headers=h(token))
        assert response.status_code == 422, body
        assert response.json()["field"] == field
    bad_cursor = await client.get("/agents/me/timeline", params={"cursor": "not-ours"}, headers=h(token))
    assert bad_cursor.status_code == 422 and bad_cursor.json()["field"] == "query.cursor"
    bad_time = await client.get("/agents/me/timeline", params={"from": "yesterday"}, headers=h(token))
    assert bad_time.status_code == 422 and bad_time.json()["field"] == "query.from"


async def test_agent_5_call_events_drive_ringing_talking_hold_and_mute(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    token = await agent_state.login("8001", "1001")
    agent_id = agent_state.users["8001"]

    muted_when_idle = await client.put("/agents/me/mute", json={"muted": True}, headers=h(token))
    assert muted_when_idle.status_code == 409 and muted_when_idle.json()["code"] == "agent.no_call"

    ringing = _call("ringing", "call-1", "1001")
    await events.publish(ringing)
    state = await agent_state.wait_state(token, "ringing")
    assert state["call_id"] == "call-1"
    await events.publish(_call("answered", "call-1", "1001"))
    await agent_state.wait_state(token, "talking")

    muted = await client.put("/agents/me/mute", json={"muted": True}, headers=h(token))
    assert muted.status_code == 200 and muted.json()["muted"] is True
    mute_event = await events.wait_for("agent.mute_changed", lambda d: d["user_id"] == agent_id)
    assert mute_event.data["muted"] is True and mute_event.data["call_id"] == "call-1"

    await events.publish(_call("held", "call-1", "1001"))
    await agent_state.wait_state(token, "on_hold")
    await events.publish(_call("held", "call-other", "1001"))  # not this agent's call: nothing happens
    await events.publish(_call("resumed", "call-1", "1001"))
    talking = await agent_state.wait_state(token, "talking")
    assert talking["muted"] is True  # still the same call

    logout = await client.post("/auth/logout", headers=h(token))
    assert logout.status_code == 409 and logout.json()["current_state"] == "talking"
    acw_now = await client.put("/agents/me/state", json={"state": "after_call_work"}, headers=h(token))
    assert acw_now.status_code == 409

    # A redelivered event (same id) is skipped by the inbox and changes nothing.
    duplicates = {"consumer": "agent-state.calls"}
    skipped = REGISTRY.get_sample_value("callcenter_inbox_duplicates_total", duplicates) or 0.0
    await events.publish(ringing)
    for _ in range(500):
        if (REGISTRY.get_sample_value("callcenter_inbox_duplicates_total", duplicates) or 0.0) > skipped:
            break
        await asyncio.sleep(0.02)
    assert REGISTRY.get_sample_value("callcenter_inbox_duplicates_total", duplicates) == skipped + 1
    assert (await agent_state.state(token))["state"] == "talking"
    timeline = (await client.get("/agents/me/timeline", headers=h(token))).json()["items"]
    assert [t["state"] for t in timeline] == ["idle", "ringing", "talking", "on_hold", "talking"]
    assert all(t["call_id"] == "call-1" for t in timeline[1:])


async def test_agent_5_after_call_work_returns_to_idle(agent_state, events):
    token = await agent_state.login("8001", "1001")
    acw = await _talk_and_hang_up(agent_state, events, token, "1001", "call-2")
    deadline = datetime.fromisoformat(acw["after_call_work_until"])
    assert deadline == agent_state.clock.now() + timedelta(seconds=30)
    event = await events.wait_for("agent.state_changed", lambda d: d["state"] == "after_call_work")
    assert datetime.fromisoformat(event.data["after_call_work_until"]) == deadline

    timer = agent_state.app.state.after_call_work_timer
    agent_state.clock.advance(29)
    assert await timer.run_once() == 0
    assert (await agent_state.state(token))["state"] == "after_call_work"
    agent_state.clock.advance(2)
    idle = await agent_state.wait_state(token, "idle")  # the background task ended it
    assert datetime.fromisoformat(idle["since"]) == deadline
    assert idle["muted"] is False and idle["call_id"] is None


async def test_agent_5_busy_chosen_during_the_call_wins_after_after_call_work(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    token = await agent_state.login("8001", "1001")
    await events.publish(_call("ringing", "call-3", "1001"))
    await events.publish(_call("answered", "call-3", "1001"))
    await agent_state.wait_state(token, "talking")
    chosen = await client.put("/agents/me/state", json={"state": "busy", "reason": "meeting"}, headers=h(token))
    assert chosen.status_code == 200
    assert (chosen.json()["state"], chosen.json()["next_state"]) == ("talking", "busy")
    await events.publish(_call("ended", "call-3", "1001"))
    await agent_state.wait_state(token, "after_call_work")
    agent_state.clock.advance(31)
    busy = await agent_state.wait_state(token, "busy")
    assert busy["reason"] == "meeting" and busy["next_state"] is None

    # Choosing idle during after-call work ends it early.
    await client.put("/agents/me/state", json={"state": "idle"}, headers=h(token))
    await _talk_and_hang_up(agent_state, events, token, "1001", "call-4")
    early = await client.put("/agents/me/state", json={"state": "idle"}, headers=h(token))
    assert early.json()["state"] == "idle" and early.json()["after_call_work_until"] is None


async def test_agent_5_after_call_work_seconds_are_configured_per_group(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    admin = await agent_state.login("admin")
    booking = await agent_state.group_id("预约组", admin)
    response = await client.patch(f"/groups/{booking}", json={"after_call_work_seconds": 5}, headers=h(admin))
    assert response.status_code == 200 and response.json()["after_call_work_seconds"] == 5
    bad = await client.patch(f"/groups/{booking}", json={"after_call_work_seconds": -1}, headers=h(admin))
    assert bad.status_code == 422 and bad.json()["field"] == "after_call_work_seconds"

    booking_agent = await agent_state.login("8001", "1001")
    consult_agent = await agent_state.login("8004", "1004")
    short = await _talk_and_hang_up(agent_state, events, booking_agent, "1001", "call-5")
    default = await _talk_and_hang_up(agent_state, events, consult_agent, "1004", "call-6")
    now = agent_state.clock.now()
    assert datetime.fromisoformat(short["after_call_work_until"]) == now + timedelta(seconds=5)
    assert datetime.fromisoformat(default["after_call_work_until"]) == now + timedelta(seconds=30)

    await client.patch(f"/groups/{booking}", json={"after_call_work_seconds": 0}, headers=h(admin))
    await client.put("/agents/me/state", json={"state": "idle"}, headers=h(booking_agent))
    for kind, state in (("ringing", "ringing"), ("answered", "talking"), ("ended", "idle")):
        await events.publish(_call(kind, "call-7", "1001"))
        await agent_state.wait_state(booking_agent, state)  # zero seconds: no after-call work at all
    published = events.named("agent.state_changed", lambda d: d["work_number"] == "8001")
    assert [e.data["state"] for e in published][-3:] == ["ringing", "talking", "idle"]


async def test_agent_5_after_call_work_ends_by_itself_across_a_restart(start_agent_state, events):
    async with start_agent_state() as first:
        token = await first.login("8001", "1001")
        await first.login("8004", "1004")
        await _talk_and_hang_up(first, events, token, "1001", "call-8")
    # The service is down while the deadline passes.
    first.clock.advance(31)
    async with start_agent_state() as second:
        token = await second.login("8002")  # any valid token: the restart kept no timer in memory
        agent_id = second.users["8001"]
        lead = await second.login("9101")
        idle = await second.wait_state(lead, "idle", agent_id)
        assert idle["extension"] == "1001"

        svc = await second.login("svc-acd")
        snapshot = (await second.client.get("/agents/routable", headers=second.auth(svc))).json()["items"]
        assert [(a["work_number"], a["extension"], a["state"]) for a in snapshot] == [
            ("8001", "1001", "idle"),
            ("8004", "1004", "idle"),
        ]
        assert token


async def test_agent_5_call_facts_delivered_out_of_order_never_leave_an_agent_in_a_call(agent_state, events):
    token = await agent_state.login("8001", "1001")
    start = datetime.now(UTC) - timedelta(seconds=60)

    # The end of a call overtakes its answer: the late answer must not put the agent back in the call.
    ended = _call("ended", "call-11", "1001", at=start + timedelta(seconds=20))
    await events.publish(ended)
    await agent_state.wait_processed(ended)
    late = _call("answered", "call-11", "1001", at=start + timedelta(seconds=5))
    await events.publish(late)
    await agent_state.wait_processed(late)
    assert (await agent_state.state(token))["state"] == "idle"

    # Ringing, then the end (answered here) overtakes the answer: after-call work, then idle.
    await events.publish(_call("ringing", "call-12", "1001", at=start + timedelta(seconds=30)))
    await agent_state.wait_state(token, "ringing")
    ended = _call("ended", "call-12", "1001", at=start + timedelta(seconds=50))
    await events.publish(ended)
    await agent_state.wait_state(token, "after_call_work")
    late = _call("answered", "call-12", "1001", at=start + timedelta(seconds=35))
    await events.publish(late)
    await agent_state.wait_processed(late)
    assert (await agent_state.state(token))["state"] == "after_call_work"


async def test_agent_5_ringing_elsewhere_ends_when_another_agent_picks_up_and_late_events_are_ignored(
    agent_state, events
):
    first = await agent_state.login("8001", "1001")
    second = await agent_state.login("8002", "1002")
    start = datetime.now(UTC) - timedelta(seconds=30)
    await events.publish(_call("ringing", "call-9", "1001", at=start))
    await agent_state.wait_state(first, "ringing")
    # AGENT-13: 8002 picks the call up; it stops ringing at 8001.
    await events.publish(_call("answered", "call-9", "1002", at=start + timedelta(seconds=3)))
    await agent_state.wait_state(second, "talking")
    await agent_state.wait_state(first, "idle")

    # A ringing older than what 8002 already did, delivered late, is ignored.
    await events.publish(_call("ringing", "call-9", "1002", at=start + timedelta(seconds=1)))
    await events.publish(_call("held", "call-9", "1002", at=start + timedelta(seconds=5)))
    await agent_state.wait_state(second, "on_hold")
    timeline = (await agent_state.client.get("/agents/me/timeline", headers=agent_state.auth(second))).json()
    assert [t["state"] for t in timeline["items"]] == ["idle", "talking", "on_hold"]

    # The ACD closes a ring that was not answered: back to idle, no after-call work.
    await events.publish(_call("ringing", "call-13", "1001"))
    await agent_state.wait_state(first, "ringing")
    missed = CallAgentMissed(
        call_id="call-13",
        agent_extension="1001",
        agent_channel="PJSIP/1001-00000001",
        reason="no_answer",
        ringing_at=datetime.now(UTC),
        missed_at=datetime.now(UTC),
    )
    await events.publish(missed.envelope("acd"))
    await agent_state.wait_state(first, "idle")

    # A call that rang and was never answered here, then ended, goes back to idle too.
    await events.publish(_call("ringing", "call-10", "1001"))
    await agent_state.wait_state(first, "ringing")
    unanswered = CallEnded(
        call_id="call-10",
        agent_extension="1001",
        outcome="abandoned",
        started_at=datetime.now(UTC),
        ended_at=datetime.now(UTC),
    ).envelope("acd")
    await events.publish(unanswered)
    await agent_state.wait_state(first, "idle")
    timeline = (await agent_state.client.get("/agents/me/timeline", headers=agent_state.auth(first))).json()
    assert [t["state"] for t in timeline["items"]] == ["idle", "ringing", "idle", "ringing", "idle", "ringing", "idle"]


async def test_agent_6_sign_in_and_out_of_groups(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    token = await agent_state.login("8001", "1001")
    groups = (await client.get("/agents/me/groups", headers=h(token))).json()
    assert [(g["name"], g["signed_in"]) for g in groups] == [("预约组 Booking", True)]
    booking = groups[0]["id"]

    out = await client.post(f"/agents/me/groups/{booking}/sign-out", headers=h(token))
    assert out.status_code == 200 and out.json()[0]["signed_in"] is False
    event = await events.wait_for("agent.groups_changed", lambda d: d["work_number"] == "8001")
    assert event.data["groups"] == [] and event.data["extension"] == "1001"
    svc = await agent_state.login("svc-acd")
    routable = (await client.get("/agents/routable", headers=h(svc))).json()["items"]
    assert routable[0]["groups"] == []

    back = await client.post(f"/agents/me/groups/{booking}/sign-in", headers=h(token))
    assert back.json()[0]["signed_in"] is True
    await events.wait_for("agent.groups_changed", lambda d: d["groups"] == [booking])
    assert (await agent_state.state(token))["groups"] == [booking]

    consult = await agent_state.group_id("咨询组", token)
    not_member = await client.post(f"/agents/me/groups/{consult}/sign-in", headers=h(token))
    assert not_member.status_code == 404


async def test_agent_5_routable_snapshot_is_for_services_only(agent_state):
    client, h = agent_state.client, agent_state.auth
    agent = await agent_state.login("8001", "1001")
    await agent_state.login("8002", "1002")
    await agent_state.login("8003")  # logged in to the system, not to the telephony: not routable
    denied = await client.get("/agents/routable", headers=h(agent))
    assert denied.status_code == 403 and denied.json()["detail"] == "agents.read_all"

    svc = await agent_state.login("svc-acd")
    first = (await client.get("/agents/routable", params={"limit": 1}, headers=h(svc))).json()
    second = (await client.get("/agents/routable", params={"cursor": first["next_cursor"]}, headers=h(svc))).json()
    rows = first["items"] + second["items"]
    assert [(r["work_number"], r["extension"], r["state"]) for r in rows] == [
        ("8001", "1001", "idle"),
        ("8002", "1002", "idle"),
    ]
    assert second["next_cursor"] is None
    assert all(r["groups"] and r["user_id"] for r in rows)


async def test_agent_5_migrations_and_state_changes_on_sqlite(tmp_path: Path, jwt_keys, run_app):
    settings = AgentStateSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/agent_state.db",
        platform=PlatformSettings(env="test", bus="memory", jwt_public_key=jwt_keys[1], var_dir=tmp_path),
        jwt_private_key=jwt_keys[0],
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        password_hash_parallelism=1,
    )
    app = create_app(settings)
    async with run_app(app) as client:
        from agent_state.demo import seed_demo
        from agent_state.security import Passwords

        async with app.state.runtime.db.session() as session:
            await seed_demo(session, passwords=Passwords(time_cost=1, memory_kib=1024, parallelism=1))
        login = await client.post(
            "/auth/login", json={"work_number": "8001", "password": "demo1234", "extension": "1001"}
        )
        token = login.json()["access_token"]
        busy = await client.put(
            "/agents/me/state", json={"state": "busy", "reason": "meal"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert busy.status_code == 200 and busy.json()["state"] == "busy"
        async with app.state.runtime.db.session() as session:
            status = await session.get(AgentStatus, login.json()["user"]["id"])
            assert status is not None and status.since.tzinfo is not None
        timeline = await client.get("/agents/me/timeline", headers={"Authorization": f"Bearer {token}"})
        assert [t["state"] for t in timeline.json()["items"]] == ["idle", "busy"]
