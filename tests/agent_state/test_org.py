"""WO-1 organisation, AGENT-25 roles and groups, AGENT-31 permissions per role."""

from __future__ import annotations

import jwt
from sqlalchemy import func, select

from agent_state.demo import seed_demo
from agent_state.models import AgentGroup, GroupMember, Role, RolePermission, User
from agent_state.security import Passwords


async def test_wo_1_departments_roles_and_users(agent_state):
    client, h = agent_state.client, agent_state.auth
    admin = await agent_state.login("admin")
    departments = {d["name"]: d["roles"] for d in (await client.get("/departments", headers=h(admin))).json()}
    assert departments == {
        "call_center": ["director", "manager", "supervisor", "team_lead", "agent"],
        "warehouse": ["pharmacist"],
        "finance": ["finance_clerk"],
        "clinic": ["doctor", "doctor_assistant"],
        "system": ["admin", "service"],
    }

    doctor = {"work_number": "D0101", "name": "林医生", "role": "doctor", "password": "clinic-pass-1"}
    created = await client.post("/users", json=doctor, headers=h(admin))
    assert created.status_code == 201 and created.json()["department"] == "clinic"
    for body, status, field in (
        (doctor, 409, "work_number"),
        ({**doctor, "work_number": "F1", "role": "agent", "department": "finance"}, 422, "department"),
        ({**doctor, "work_number": "F2", "role": "cashier"}, 422, "role"),
        ({**doctor, "work_number": "F3", "password": "short"}, 422, "password"),
        ({**doctor, "work_number": "F4", "extension": "1201"}, 422, "extension"),
        ({**doctor, "work_number": "has space"}, 422, "work_number"),
        ({**doctor, "work_number": "F5", "department": "marketing"}, 422, "department"),
    ):
        response = await client.post("/users", json=body, headers=h(admin))
        assert (response.status_code, response.json().get("field")) == (status, field), body
    for role, department in (("pharmacist", "warehouse"), ("finance_clerk", "finance"), ("doctor_assistant", "clinic")):
        body = {
            "work_number": f"X-{role}",
            "name": role,
            "role": role,
            "department": department,
            "password": "p4ssword",
        }
        assert (await client.post("/users", json=body, headers=h(admin))).status_code == 201

    agent = await agent_state.login("8001")
    assert (await client.post("/users", json={**doctor, "work_number": "F6"}, headers=h(agent))).status_code == 403
    doctor_token = await agent_state.login("D0101", password="clinic-pass-1")
    me = (await client.get("/users/me", headers=h(doctor_token))).json()
    assert (me["user"]["department"], me["user"]["role"], me["groups"]) == ("clinic", "doctor", [])

    clinic = (await client.get("/users", params={"department": "clinic"}, headers=h(admin))).json()["items"]
    assert [u["work_number"] for u in clinic] == ["D0101", "X-doctor_assistant"]
    searched = (await client.get("/users", params={"q": "8_0"}, headers=h(admin))).json()["items"]
    assert searched == []  # `_` is a character, not a wildcard
    first = (await client.get("/users", params={"limit": 3}, headers=h(admin))).json()
    rest = (await client.get("/users", params={"limit": 500, "cursor": first["next_cursor"]}, headers=h(admin))).json()
    numbers = [u["work_number"] for u in first["items"] + rest["items"]]
    assert numbers == sorted(numbers) and len(numbers) == len(set(numbers)) == 16
    assert (await client.get("/users", params={"limit": 0}, headers=h(admin))).json()["field"] == "query.limit"


async def test_agent_25_groups_have_a_team_lead_and_a_manager(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    users = agent_state.users
    admin, director = await agent_state.login("admin"), await agent_state.login("9001")
    bad_lead = await client.post("/groups", json={"name": "投诉组", "team_lead_id": users["8001"]}, headers=h(admin))
    assert bad_lead.status_code == 422 and bad_lead.json()["field"] == "team_lead_id"
    body = {"name": "投诉组 Complaints", "team_lead_id": users["9102"], "manager_id": users["9002"]}
    created = await client.post("/groups", json=body, headers=h(director))
    assert created.status_code == 201
    group_id = created.json()["id"]
    assert (await client.post("/groups", json=body, headers=h(admin))).status_code == 409
    lead = await agent_state.login("9101")
    assert (await client.post("/groups", json={"name": "x"}, headers=h(lead))).status_code == 403

    assert (await client.put(f"/groups/{group_id}/members/{users['8001']}", headers=h(admin))).status_code == 204
    joined = await events.wait_for("agent.groups_changed", lambda d: group_id in d["groups"])
    assert joined.data["work_number"] == "8001"
    doctor_group = await client.put(f"/groups/{group_id}/members/{users['admin']}", headers=h(admin))
    assert doctor_group.status_code == 422 and doctor_group.json()["field"] == "user_id"
    members = (await client.get(f"/groups/{group_id}/members", headers=h(await agent_state.login("9102")))).json()
    assert [m["work_number"] for m in members["items"]] == ["8001"]
    assert (await client.get(f"/groups/{group_id}/members", headers=h(lead))).status_code == 403

    agent = await agent_state.login("8001")
    claims = jwt.decode(agent, options={"verify_signature": False})
    assert group_id in claims["groups"]
    me = (await client.get("/users/me", headers=h(agent))).json()
    assert sorted(g["name"] for g in me["groups"]) == ["投诉组 Complaints", "预约组 Booking"]
    lead_me = (await client.get("/users/me", headers=h(await agent_state.login("9102")))).json()
    assert {(g["name"], g["relation"]) for g in lead_me["groups"]} == {
        ("咨询组 Consultation", "team_lead"),
        ("投诉组 Complaints", "team_lead"),
    }
    assert (await client.delete(f"/groups/{group_id}/members/{users['8001']}", headers=h(admin))).status_code == 204
    assert (await client.delete(f"/groups/{group_id}/members/{users['8001']}", headers=h(admin))).status_code == 404

    # A new role changes what the tokens say: the old ones stop at once.
    promoted = await client.patch(f"/users/{users['8001']}", json={"role": "team_lead"}, headers=h(admin))
    assert promoted.status_code == 200 and promoted.json()["role"] == "team_lead"
    assert (await client.get("/users/me", headers=h(agent))).json()["code"] == "auth.token_revoked"
    disabled = await client.patch(f"/users/{users['8002']}", json={"active": False}, headers=h(admin))
    assert disabled.json()["active"] is False
    refused = await client.post("/auth/login", json={"work_number": "8002", "password": "demo1234"})
    assert refused.status_code == 403 and refused.json()["code"] == "auth.account_disabled"
    reset = await client.put(
        f"/users/{users['8003']}/password", json={"new_password": "reset-pass-1"}, headers=h(admin)
    )
    assert reset.status_code == 204
    await agent_state.login("8003", password="reset-pass-1")


async def test_agent_31_admin_edits_the_permissions_of_a_role(agent_state):
    client, h = agent_state.client, agent_state.auth
    admin = await agent_state.login("admin")
    agent_role = (await client.get("/roles/agent", headers=h(admin))).json()
    assert agent_role["department"] == "call_center" and "call.transfer.external" not in agent_role["permissions"]
    catalogue = {p["name"] for p in (await client.get("/permissions", headers=h(admin))).json()}
    assert {"call.transfer.external", "wechat.force_logout", "recording.play.any", "agents.read_all"} <= catalogue

    lead = await agent_state.login("9101")
    body = {"permissions": ["call.transfer.external", "workorder.export"]}
    assert (await client.put("/roles/agent/permissions", json=body, headers=h(lead))).status_code == 403
    granted = await client.put("/roles/agent/permissions", json=body, headers=h(admin))
    assert granted.status_code == 200 and granted.json()["permissions"] == [
        "call.transfer.external",
        "workorder.export",
    ]
    claims = jwt.decode(await agent_state.login("8001"), options={"verify_signature": False})
    assert claims["perms"] == ["call.transfer.external", "workorder.export"]
    assert "workorder.export" in {p["name"] for p in (await client.get("/permissions", headers=h(admin))).json()}

    bad = await client.put(
        "/roles/agent/permissions", json={"permissions": ["ok.name", "Not A Name"]}, headers=h(admin)
    )
    assert bad.status_code == 422 and bad.json()["field"] == "permissions.1"
    lockout = await client.put("/roles/admin/permissions", json={"permissions": ["users.manage"]}, headers=h(admin))
    assert lockout.status_code == 409 and lockout.json()["code"] == "role.lockout"
    assert (await client.put("/roles/nope/permissions", json=body, headers=h(admin))).status_code == 404
    roles = {r["name"]: r["permissions"] for r in (await client.get("/roles", headers=h(lead))).json()}
    assert "agents.control" in roles["team_lead"] and roles["service"] == ["agents.read_all"]


async def test_wo_1_seed_demo_is_idempotent_and_keeps_edits(agent_state):
    client, h = agent_state.client, agent_state.auth
    admin = await agent_state.login("admin")
    await client.put("/roles/agent/permissions", json={"permissions": ["call.transfer.external"]}, headers=h(admin))
    db = agent_state.app.state.runtime.db

    async def counts() -> tuple[int, ...]:
        async with db.session() as session:
            return tuple(
                [
                    (await session.execute(select(func.count()).select_from(model))).scalar_one()
                    for model in (User, AgentGroup, GroupMember, Role, RolePermission)
                ]
            )

    before = await counts()
    assert before[:3] == (12, 2, 6)
    async with db.session() as session:
        await seed_demo(session, passwords=Passwords(time_cost=1, memory_kib=1024, parallelism=1))
    async with db.session() as session:
        await agent_state.app.state.services.org.ensure_roles(session)
    assert await counts() == before
    assert (await client.get("/roles/agent", headers=h(admin))).json()["permissions"] == ["call.transfer.external"]
