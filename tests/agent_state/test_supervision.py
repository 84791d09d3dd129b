"""AGENT-19…21 supervisor controls, and who may watch whom (AGENT-25)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from callcenter_common.auth import CurrentPrincipal
from callcenter_common.bus import RabbitBus
from callcenter_common.service import ServiceRuntime, create_service_app
from patient.config import PatientSettings
from patient.main import MIGRATIONS as PATIENT_MIGRATIONS
from patient.models import bus_tables as patient_bus_tables


def _other_service(database_url: str, platform_settings) -> object:
    """Another service of the platform: its own database, the same bus, a protected route."""
    runtime = ServiceRuntime(
        PatientSettings(database_url=database_url, platform=platform_settings),
        tables=patient_bus_tables,
        migrations=PATIENT_MIGRATIONS,
    )
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user_id": principal.user_id}

    return create_service_app(runtime, routers=[router])


async def test_agent_19_forced_logout_voids_the_agent_token_on_every_service(
    agent_state, events, second_pg_url, platform_settings, run_app, cleanup_bus
):
    client, h = agent_state.client, agent_state.auth
    agent_id = agent_state.users["8001"]
    agent = await agent_state.login("8001", "1001")
    other = _other_service(second_pg_url, platform_settings)
    cleanup_bus(other.state.runtime.bus)
    async with run_app(other) as other_client:
        bus = other.state.runtime.bus
        assert isinstance(bus, RabbitBus)
        await bus.wait_connected(10)
        assert (await other_client.get("/whoami", headers=h(agent))).json() == {"user_id": agent_id}

        lead = await agent_state.login("9101")
        response = await client.post(f"/agents/{agent_id}/force-logout", json={"reason": "shift over"}, headers=h(lead))
        assert response.status_code == 200 and response.json()["state"] == "logged_out"

        refused = await client.get("/users/me", headers=h(agent))  # agent-state itself: at once
        assert refused.status_code == 401 and refused.json()["code"] == "auth.token_revoked"
        for _ in range(500):  # the other service: as soon as the event reaches it
            other_answer = await other_client.get("/whoami", headers=h(agent))
            if other_answer.status_code == 401:
                break
            await asyncio.sleep(0.02)
        assert other_answer.status_code == 401 and other_answer.json()["code"] == "auth.token_revoked"
        # A fresh login is a new token, valid again everywhere.
        again = await agent_state.login("8001", "1001")
        assert (await other_client.get("/whoami", headers=h(again))).status_code == 200

    pushed = await events.wait_for("agent.supervisor_action_taken", lambda d: d["action"] == "force_logout")
    assert pushed.audience is not None and pushed.audience.user_ids == (agent_id,)
    assert pushed.data["supervisor_work_number"] == "9101" and pushed.data["previous_state"] == "idle"
    logged_out = await events.wait_for("agent.state_changed", lambda d: d["state"] == "logged_out")
    assert logged_out.data["changed_by"] == agent_state.users["9101"] and logged_out.data["extension"] == "1001"
    audit = (await client.get("/supervisor-actions", headers=h(lead))).json()["items"]
    assert [(a["actor_id"], a["target_id"], a["action"], a["reason"]) for a in audit] == [
        (agent_state.users["9101"], agent_id, "force_logout", "shift over")
    ]
    revocations = (await client.get("/auth/revocations")).json()["items"]
    assert [(r["user_id"], r["session_id"], r["reason"]) for r in revocations] == [(agent_id, None, "forced_logout")]


async def test_agent_20_a_team_lead_forces_an_idle_agent_busy(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    agent_id = agent_state.users["8002"]
    agent = await agent_state.login("8002", "1002")
    lead = await agent_state.login("9101")

    busy = await client.post(f"/agents/{agent_id}/force-busy", json={"reason": "coaching"}, headers=h(lead))
    assert busy.status_code == 200 and (busy.json()["state"], busy.json()["reason"]) == ("busy", "coaching")
    assert (await agent_state.state(agent))["state"] == "busy"
    twice = await client.post(f"/agents/{agent_id}/force-busy", headers=h(lead))
    assert twice.status_code == 409 and twice.json()["current_state"] == "busy"
    await client.put("/agents/me/state", json={"state": "short_break"}, headers=h(agent))
    on_break = await client.post(f"/agents/{agent_id}/force-busy", headers=h(lead))
    assert on_break.status_code == 409 and on_break.json()["current_state"] == "short_break"

    pushed = await events.wait_for("agent.supervisor_action_taken", lambda d: d["action"] == "force_busy")
    assert pushed.audience is not None and pushed.audience.user_ids == (agent_id,)
    assert (pushed.data["previous_state"], pushed.data["state"], pushed.data["reason"]) == ("idle", "busy", "coaching")
    change = await events.wait_for("agent.state_changed", lambda d: d["changed_by"] == agent_state.users["9101"])
    assert change.audience is not None and change.audience.user_ids == (agent_id,)
    assert (change.data["state"], change.data["reason"]) == ("busy", "coaching")
    audit = (await client.get("/supervisor-actions", headers=h(agent))).json()["items"]
    assert [(a["actor_id"], a["action"], a["previous_state"]) for a in audit] == [
        (agent_state.users["9101"], "force_busy", "idle")
    ]
    assert audit[0]["at"]


async def test_agent_21_a_team_lead_forces_a_busy_agent_idle(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    agent_id = agent_state.users["8002"]
    agent = await agent_state.login("8002", "1002")
    lead = await agent_state.login("9101")

    not_busy = await client.post(f"/agents/{agent_id}/force-idle", headers=h(lead))
    assert not_busy.status_code == 409 and not_busy.json()["current_state"] == "idle"
    for state in ("busy", "short_break"):
        await client.put("/agents/me/state", json={"state": state, "reason": "meal"}, headers=h(agent))
        idle = await client.post(f"/agents/{agent_id}/force-idle", headers=h(lead))
        assert idle.status_code == 200 and idle.json()["state"] == "idle"

    await events.wait_for("agent.supervisor_action_taken", lambda d: d["previous_state"] == "short_break")
    forced = events.named("agent.supervisor_action_taken", lambda d: d["agent_user_id"] == agent_id)
    assert [(e.data["action"], e.data["previous_state"], e.data["state"]) for e in forced] == [
        ("force_idle", "busy", "idle"),
        ("force_idle", "short_break", "idle"),
    ]
    assert all(e.audience is not None and e.audience.user_ids == (agent_id,) for e in forced)
    timeline = (await client.get("/agents/me/timeline", headers=h(agent))).json()["items"]
    assert [(t["state"], t["changed_by"]) for t in timeline] == [
        ("idle", None),
        ("busy", None),
        ("idle", agent_state.users["9101"]),
        ("short_break", None),
        ("idle", agent_state.users["9101"]),
    ]
    audit = (await client.get("/supervisor-actions", params={"agent_id": agent_id}, headers=h(lead))).json()["items"]
    assert [a["previous_state"] for a in audit] == ["short_break", "busy"]  # newest first


async def test_agent_19_a_team_lead_controls_only_their_group_managers_theirs_directors_all(agent_state):
    client, h = agent_state.client, agent_state.auth
    users = agent_state.users
    for work_number, extension in (("8001", "1001"), ("8004", "1004")):
        await agent_state.login(work_number, extension)
    booking_lead, consult_lead = await agent_state.login("9101"), await agent_state.login("9102")
    manager, director, agent = (
        await agent_state.login("9002"),
        await agent_state.login("9001"),
        await agent_state.login("8002"),
    )

    denied = await client.post(f"/agents/{users['8004']}/force-busy", headers=h(booking_lead))
    assert denied.status_code == 403 and denied.json()["code"] == "auth.forbidden"
    assert (await client.post(f"/agents/{users['8001']}/force-busy", headers=h(consult_lead))).status_code == 403
    by_agent = await client.post(f"/agents/{users['8001']}/force-busy", headers=h(agent))
    assert by_agent.status_code == 403 and by_agent.json()["detail"] == "agents.control"
    assert (await client.post("/agents/no-such-agent/force-busy", headers=h(director))).status_code == 404

    assert (await client.post(f"/agents/{users['8001']}/force-busy", headers=h(manager))).status_code == 200
    assert (await client.post(f"/agents/{users['8004']}/force-busy", headers=h(director))).status_code == 200
    assert (await client.post(f"/agents/{users['8004']}/force-idle", headers=h(consult_lead))).status_code == 200

    consult_audit = (await client.get("/supervisor-actions", headers=h(consult_lead))).json()["items"]
    assert {a["target_id"] for a in consult_audit} == {users["8004"]}
    assert len((await client.get("/supervisor-actions", headers=h(director))).json()["items"]) == 3


async def test_agent_25_agents_see_only_themselves_team_leads_their_group(agent_state):
    client, h = agent_state.client, agent_state.auth
    users = agent_state.users
    for work_number, extension in (("8001", "1001"), ("8002", "1002"), ("8004", "1004")):
        await agent_state.login(work_number, extension)
    agent = await agent_state.login("8002")

    for path in (f"/agents/{users['8001']}/timeline", f"/agents/{users['8001']}/state", f"/users/{users['8001']}"):
        response = await client.get(path, headers=h(agent))
        assert response.status_code == 403, path
    assert [a["work_number"] for a in (await client.get("/agents", headers=h(agent))).json()["items"]] == ["8002"]
    assert [u["work_number"] for u in (await client.get("/users", headers=h(agent))).json()["items"]] == ["8002"]

    lead = await agent_state.login("9101")
    listed = (await client.get("/agents", headers=h(lead))).json()["items"]
    assert [(a["work_number"], a["state"]) for a in listed] == [
        ("8001", "idle"),
        ("8002", "idle"),
        ("8003", "logged_out"),  # never logged in, still one of the lead's agents
        ("9101", "logged_out"),
    ]
    assert (await client.get(f"/agents/{users['8001']}/timeline", headers=h(lead))).status_code == 200
    assert (await client.get(f"/agents/{users['8004']}/timeline", headers=h(lead))).status_code == 403
    members = (await client.get("/users", headers=h(lead))).json()["items"]
    assert [u["work_number"] for u in members] == ["8001", "8002", "8003", "9101"]

    manager = await agent_state.login("9002")
    managed = (await client.get("/agents", params={"logged_in": True}, headers=h(manager))).json()["items"]
    assert [a["work_number"] for a in managed] == ["8001", "8002", "8004"]
    everyone_managed = (await client.get("/agents", headers=h(manager))).json()["items"]
    assert [a["work_number"] for a in everyone_managed] == ["8001", "8002", "8003", "8004", "8005", "8006", "9002"]
    director = await agent_state.login("9001")
    page = (await client.get("/agents", params={"limit": 2, "logged_in": True}, headers=h(director))).json()
    rest = await client.get("/agents", params={"cursor": page["next_cursor"], "logged_in": True}, headers=h(director))
    assert [a["work_number"] for a in page["items"] + rest.json()["items"]] == ["8001", "8002", "8004"]
