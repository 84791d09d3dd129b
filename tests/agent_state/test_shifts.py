"""AGENT-30 shift definitions, rosters per agent and day, planned vs logged-in agents per time slot."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 12, 1)


async def test_agent_30_shifts_rosters_and_coverage_per_time_slot(agent_state):
    client, h = agent_state.client, agent_state.auth
    users = agent_state.users
    lead, agent, director = (
        await agent_state.login("9101"),
        await agent_state.login("8001"),
        await agent_state.login("9001"),
    )

    morning = await client.post(
        "/shifts", json={"name": "早班", "starts_at": "08:00", "ends_at": "16:00"}, headers=h(lead)
    )
    night = await client.post(
        "/shifts", json={"name": "夜班", "starts_at": "22:00", "ends_at": "06:00"}, headers=h(lead)
    )
    assert morning.status_code == night.status_code == 201
    assert (
        await client.post("/shifts", json={"name": "x", "starts_at": "08:00", "ends_at": "09:00"}, headers=h(agent))
    ).status_code == 403
    duplicate = await client.post(
        "/shifts", json={"name": "早班", "starts_at": "07:00", "ends_at": "15:00"}, headers=h(lead)
    )
    assert duplicate.status_code == 409
    empty = await client.post("/shifts", json={"name": "空", "starts_at": "08:00", "ends_at": "08:00"}, headers=h(lead))
    assert empty.status_code == 422 and empty.json()["field"] == "ends_at"
    assert (
        await client.post("/shifts", json={"name": "y", "starts_at": "25:00", "ends_at": "08:00"}, headers=h(lead))
    ).json()["field"] == "starts_at"

    morning_id, night_id = morning.json()["id"], night.json()["id"]
    plan = [
        (users["8001"], DAY, morning_id),
        (users["8002"], DAY, morning_id),
        (users["8003"], DAY - timedelta(days=1), night_id),  # the night before runs into DAY until 06:00
    ]
    entries = []
    for user_id, day, shift_id in plan:
        response = await client.post(
            "/rosters", json={"user_id": user_id, "day": day.isoformat(), "shift_id": shift_id}, headers=h(lead)
        )
        assert response.status_code == 201
        entries.append(response.json()["id"])
    again = await client.post(
        "/rosters", json={"user_id": users["8001"], "day": DAY.isoformat(), "shift_id": morning_id}, headers=h(lead)
    )
    assert again.json()["id"] == entries[0]
    other_group = await client.post(
        "/rosters", json={"user_id": users["8004"], "day": DAY.isoformat(), "shift_id": morning_id}, headers=h(lead)
    )
    assert other_group.status_code == 403
    await client.post(
        "/rosters", json={"user_id": users["8005"], "day": DAY.isoformat(), "shift_id": morning_id}, headers=h(director)
    )

    window = {"from": (DAY - timedelta(days=1)).isoformat(), "to": DAY.isoformat()}
    seen_by_lead = (await client.get("/rosters", params=window, headers=h(lead))).json()["items"]
    assert (seen_by_lead[0]["user_id"], seen_by_lead[0]["day"]) == (users["8003"], "2026-11-30")
    assert {r["user_id"] for r in seen_by_lead} == {users["8001"], users["8002"], users["8003"]}
    own = (await client.get("/rosters", params=window, headers=h(agent))).json()["items"]
    assert [r["user_id"] for r in own] == [users["8001"]]
    too_long = await client.get("/rosters", params={"from": "2026-01-01", "to": "2026-12-31"}, headers=h(lead))
    assert too_long.status_code == 422 and too_long.json()["field"] == "query.to"

    # 8001 is logged in 09:30-10:30 local time; 8004 (another group, not planned) from 10:30 on.
    agent_state.clock.set(datetime(2026, 12, 1, 9, 30, tzinfo=SHANGHAI).astimezone(UTC))
    first = await agent_state.login("8001", "1001")
    agent_state.clock.advance(3600)
    await client.post("/auth/logout", headers=h(first))
    await agent_state.login("8004", "1004")
    agent_state.clock.advance(5400)  # now 12:00 local

    def by_hour(coverage: dict) -> dict[int, tuple[int, int, int]]:
        return {
            datetime.fromisoformat(s["starts_at"]).astimezone(SHANGHAI).hour: (
                s["planned"],
                s["logged_in"],
                s["planned_and_logged_in"],
            )
            for s in coverage["slots"]
        }

    lead_view = (await client.get("/shifts/coverage", params={"day": DAY.isoformat()}, headers=h(lead))).json()
    assert lead_view["timezone"] == "Asia/Shanghai" and len(lead_view["slots"]) == 24
    assert datetime.fromisoformat(lead_view["slots"][0]["starts_at"]) == datetime(2026, 12, 1, tzinfo=SHANGHAI)
    hours = by_hour(lead_view)
    assert hours[0] == hours[5] == (1, 0, 0)  # the night shift of 8003
    assert hours[6] == (0, 0, 0)
    assert hours[8] == (2, 0, 0)
    assert hours[9] == hours[10] == (2, 1, 1)
    assert hours[11] == (2, 0, 0) and hours[16] == (0, 0, 0)

    everyone = by_hour(
        (await client.get("/shifts/coverage", params={"day": DAY.isoformat()}, headers=h(director))).json()
    )
    assert everyone[10] == (3, 2, 1) and everyone[11] == (3, 1, 0) and everyone[12] == (3, 0, 0)
    half_hours = (
        await client.get("/shifts/coverage", params={"day": DAY.isoformat(), "slot_minutes": 30}, headers=h(director))
    ).json()
    assert len(half_hours["slots"]) == 48

    consult = await agent_state.group_id("咨询组", lead)
    assert (
        await client.get("/shifts/coverage", params={"day": "2026-12-01", "group_id": consult}, headers=h(lead))
    ).status_code == 403
    group_view = (
        await client.get("/shifts/coverage", params={"day": "2026-12-01", "group_id": consult}, headers=h(director))
    ).json()
    assert by_hour(group_view)[11] == (1, 1, 0)
    for params, field in (
        ({"day": "2026-12-01", "slot_minutes": 25}, "query.slot_minutes"),
        ({"day": "2026-12-01", "slot_minutes": 5}, "query.slot_minutes"),
        ({"day": "tomorrow"}, "query.day"),
    ):
        response = await client.get("/shifts/coverage", params=params, headers=h(director))
        assert (response.status_code, response.json()["field"]) == (422, field)
    assert (await client.get("/shifts/coverage", params={"day": "2026-12-01"}, headers=h(agent))).status_code == 403

    assert (await client.delete(f"/rosters/{entries[1]}", headers=h(agent))).status_code == 403
    assert (await client.delete(f"/rosters/{entries[1]}", headers=h(lead))).status_code == 204
    renamed = await client.patch(f"/shifts/{morning_id}", json={"ends_at": "17:00"}, headers=h(lead))
    assert renamed.json()["ends_at"] == "17:00:00"
    shifts = (await client.get("/shifts", headers=h(agent))).json()["items"]
    assert [s["name"] for s in shifts] == ["夜班", "早班"]
