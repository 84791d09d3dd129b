"""AGENT-28 address book: personal contacts and a shared book edited with a permission."""

from __future__ import annotations


async def test_agent_28_personal_and_shared_contacts(agent_state):
    client, h = agent_state.client, agent_state.auth
    agent, colleague, director = (
        await agent_state.login("8001"),
        await agent_state.login("8002"),
        await agent_state.login("9001"),
    )
    clinic = {"name": "天河门诊部", "phone": "020-3888 6666", "organization": "固生堂", "shared": True}
    assert (await client.post("/contacts", json=clinic, headers=h(agent))).status_code == 403
    shared = await client.post("/contacts", json=clinic, headers=h(director))
    assert shared.status_code == 201 and shared.json()["shared"] is True and shared.json()["owner_id"] is None
    mine = await client.post(
        "/contacts", json={"name": "陈药剂师", "phone": "13912345678", "email": "chen@example.cn"}, headers=h(agent)
    )
    assert mine.status_code == 201 and mine.json()["owner_id"] == agent_state.users["8001"]
    await client.post("/contacts", json={"name": "Anna", "phone": "13800000000"}, headers=h(agent))

    listed = (await client.get("/contacts", headers=h(agent))).json()["items"]
    assert [c["name"] for c in listed] == ["Anna", "天河门诊部", "陈药剂师"]
    assert [c["name"] for c in (await client.get("/contacts", headers=h(colleague))).json()["items"]] == ["天河门诊部"]
    personal = (await client.get("/contacts", params={"scope": "personal"}, headers=h(agent))).json()["items"]
    assert [c["name"] for c in personal] == ["Anna", "陈药剂师"]
    found = (await client.get("/contacts", params={"q": "3888"}, headers=h(agent))).json()["items"]
    assert [c["name"] for c in found] == ["天河门诊部"]
    page = (await client.get("/contacts", params={"limit": 1}, headers=h(agent))).json()
    assert len(page["items"]) == 1 and page["next_cursor"]

    mine_id, shared_id = mine.json()["id"], shared.json()["id"]
    for response in (
        await client.get(f"/contacts/{mine_id}", headers=h(colleague)),
        await client.patch(f"/contacts/{mine_id}", json={"note": "x"}, headers=h(colleague)),
        await client.delete(f"/contacts/{mine_id}", headers=h(colleague)),
    ):
        assert response.status_code == 404
    assert (await client.patch(f"/contacts/{shared_id}", json={"note": "x"}, headers=h(agent))).status_code == 403
    edited = await client.patch(f"/contacts/{shared_id}", json={"note": "周一休诊"}, headers=h(director))
    assert edited.json()["note"] == "周一休诊"
    updated = await client.patch(f"/contacts/{mine_id}", json={"mobile": "13700000000"}, headers=h(agent))
    assert updated.json()["mobile"] == "13700000000" and updated.json()["name"] == "陈药剂师"
    for body, field in (
        ({"name": "x", "phone": "call me"}, "phone"),
        ({"name": "", "phone": "110"}, "name"),
        ({"name": "x", "phone": "110", "email": "no-at-sign"}, "email"),
    ):
        response = await client.post("/contacts", json=body, headers=h(agent))
        assert (response.status_code, response.json()["field"]) == (422, field)
    assert (await client.delete(f"/contacts/{mine_id}", headers=h(agent))).status_code == 204
    assert (await client.get(f"/contacts/{mine_id}", headers=h(agent))).status_code == 404
