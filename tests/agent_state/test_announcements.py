"""AGENT-26 announcements to one agent, a group or everyone, pushed live, with read state per user."""

from __future__ import annotations


async def test_agent_26_announcements_to_an_agent_a_group_and_everyone(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    users = agent_state.users
    lead, director = await agent_state.login("9101"), await agent_state.login("9001")
    booking = await agent_state.group_id("预约组", lead)

    async def publish(token: str, **body: object):
        agent_state.clock.advance(1)
        return await client.post("/announcements", json={"title": "t", "body": "b", **body}, headers=h(token))

    to_agent = await publish(lead, title="请回电", audience="user", target_user_id=users["8001"])
    to_group = await publish(lead, title="新话术", audience="group", target_group_id=booking)
    to_all = await publish(director, title="系统维护", audience="everyone")
    assert [r.status_code for r in (to_agent, to_group, to_all)] == [201, 201, 201]

    await events.wait_for("announcement.published", lambda d: d["title"] == "系统维护")
    pushed = {e.data["title"]: e.audience for e in events.named("announcement.published")}
    assert pushed["请回电"] is not None and pushed["请回电"].user_ids == (users["8001"],)
    assert pushed["新话术"] is not None and pushed["新话术"].group_ids == (booking,)
    assert pushed["系统维护"] is not None and pushed["系统维护"].everyone

    agent = await agent_state.login("8001")
    inbox = (await client.get("/announcements", headers=h(agent))).json()["items"]
    assert [(a["title"], a["read"]) for a in inbox] == [("系统维护", False), ("新话术", False), ("请回电", False)]
    read = await client.post(f"/announcements/{to_agent.json()['id']}/read", headers=h(agent))
    assert read.status_code == 200 and read.json()["read"] is True and read.json()["read_at"]
    assert (await client.post(f"/announcements/{to_agent.json()['id']}/read", headers=h(agent))).status_code == 200
    unread = (await client.get("/announcements", params={"unread_only": True}, headers=h(agent))).json()["items"]
    assert [a["title"] for a in unread] == ["系统维护", "新话术"]
    page = (await client.get("/announcements", params={"limit": 2}, headers=h(agent))).json()
    rest = (await client.get("/announcements", params={"cursor": page["next_cursor"]}, headers=h(agent))).json()
    assert [a["title"] for a in page["items"] + rest["items"]] == ["系统维护", "新话术", "请回电"]

    other = await agent_state.login("8004")  # another group
    assert [a["title"] for a in (await client.get("/announcements", headers=h(other))).json()["items"]] == ["系统维护"]
    for path in (f"/announcements/{to_agent.json()['id']}", f"/announcements/{to_group.json()['id']}"):
        assert (await client.get(path, headers=h(other))).status_code == 404
    assert (await client.post(f"/announcements/{to_agent.json()['id']}/read", headers=h(other))).status_code == 404
    colleague = await agent_state.login("8002")  # same group, not the addressee
    assert (await client.get(f"/announcements/{to_agent.json()['id']}", headers=h(colleague))).status_code == 404
    assert (await client.get(f"/announcements/{to_group.json()['id']}", headers=h(colleague))).status_code == 200
    assert [a["title"] for a in (await client.get("/announcements/sent", headers=h(lead))).json()["items"]] == [
        "新话术",
        "请回电",
    ]


async def test_agent_26_who_may_address_whom(agent_state):
    client, h = agent_state.client, agent_state.auth
    users = agent_state.users
    lead, agent = await agent_state.login("9101"), await agent_state.login("8001")
    consult = await agent_state.group_id("咨询组", lead)

    async def publish(token: str, **body: object):
        return await client.post("/announcements", json={"title": "t", "body": "b", **body}, headers=h(token))

    assert (await publish(agent, audience="everyone")).status_code == 403
    assert (await publish(lead, audience="everyone")).status_code == 403
    assert (await publish(lead, audience="user", target_user_id=users["8004"])).status_code == 403
    assert (await publish(lead, audience="group", target_group_id=consult)).status_code == 403
    for body, field in (
        ({"audience": "user"}, "target_user_id"),
        ({"audience": "group"}, "target_group_id"),
        ({"audience": "group", "target_group_id": "nope"}, "target_group_id"),
        ({"audience": "team"}, "audience"),
        ({"audience": "everyone", "title": ""}, "title"),
    ):
        response = await publish(lead, **body)
        assert (response.status_code, response.json()["field"]) == (422, field), body
    manager = await agent_state.login("9002")
    assert (await publish(manager, audience="group", target_group_id=consult)).status_code == 201
