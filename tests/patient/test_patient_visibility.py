"""WO-3.3: agents see only their own patients, team leads their group's, supervisors everyone."""

from __future__ import annotations

from datetime import timedelta

from callcenter_common.contracts.agent_state import AgentStateChanged

from .conftest import PatientHarness


async def test_wo_3_3_agent_gets_nothing_of_another_agents_patient(patient: PatientHarness) -> None:
    h = patient
    mine = await h.register(h.agent("A1001"), mobile="13800138001", name="甲")
    theirs = await h.register(h.agent("A1002"), mobile="13800138002", name="乙")
    me = h.agent("A1001")

    r = await h.client.get("/patients", headers=me)
    assert [p["id"] for p in r.json()["items"]] == [mine["id"]]
    r = await h.client.get("/patients?q=138", headers=me)
    assert [p["id"] for p in r.json()["items"]] == [mine["id"]]
    r = await h.client.get("/patients?owner_work_number=A1002", headers=me)
    assert r.json()["items"] == []
    for path in (
        f"/patients/{theirs['id']}",
        f"/patients/{theirs['id']}/family",
        f"/patients/{theirs['id']}/medical-records",
        f"/patients/{theirs['id']}/cards",
        f"/patients/{theirs['id']}/fund",
        f"/patients/{theirs['id']}/points-ledger",
        f"/patients/{theirs['id']}/owner-log",
        "/patients/by-mobile/13800138002",
    ):
        r = await h.client.get(path, headers=me)
        assert r.status_code == 404, path
        assert r.json()["code"] == "patient.not_found", path
    r = await h.client.patch(f"/patients/{theirs['id']}", json={"name": "改"}, headers=me)
    assert r.status_code == 404
    r = await h.client.post(
        f"/patients/{theirs['id']}/fund/payments", json={"amount_fen": 1}, headers={**me, "Idempotency-Key": "k-123456"}
    )
    assert r.status_code == 404
    r = await h.client.get(f"/patients/{mine['id']}", headers=me)
    assert r.status_code == 200


async def test_wo_3_3_team_lead_sees_their_groups_patients(patient: PatientHarness) -> None:
    h = patient
    a = await h.register(h.agent("A1001", groups=["north"]), mobile="13800138001")
    b = await h.register(h.agent("A1002", groups=["south"]), mobile="13800138002")
    lead = h.headers("L2001", roles=["team_lead"], groups=["north"])

    r = await h.client.get("/patients", headers=lead)
    assert [p["id"] for p in r.json()["items"]] == [a["id"]]
    assert (await h.client.get(f"/patients/{b['id']}", headers=lead)).status_code == 404
    assert (await h.client.get("/patients/by-mobile/13800138001", headers=lead)).status_code == 200
    assert (await h.client.get("/patients/by-mobile/13800138002", headers=lead)).status_code == 404

    # agent-state moves A1002 into "north": their patients follow them into the lead's view.
    await h.tap.publish(
        AgentStateChanged(
            user_id="u-a1002",
            work_number="A1002",
            state="idle",
            previous_state="busy",
            groups=["north"],
            changed_at=h.clock.now() + timedelta(seconds=1),
        )
    )

    async def lead_sees_both() -> bool:
        r = await h.client.get("/patients", headers=lead)
        return [p["id"] for p in r.json()["items"]] == [a["id"], b["id"]]

    await h.wait_until(lead_sees_both)
    # An older event does not undo a newer one.
    old = await h.tap.publish(
        AgentStateChanged(
            user_id="u-a1002",
            work_number="A1002",
            state="busy",
            previous_state="idle",
            groups=["south"],
            changed_at=h.clock.now() - timedelta(hours=1),
        )
    )
    await h.wait_until(lambda: h.processed(old.id))
    assert await lead_sees_both()


async def test_wo_3_3_supervisor_sees_everyone(patient: PatientHarness) -> None:
    h = patient
    ids = [(await h.register(h.agent(f"A100{i}"), mobile=f"1380013800{i}"))["id"] for i in range(1, 6)]
    r = await h.client.get("/patients?limit=2", headers=h.supervisor())
    page1 = r.json()
    r = await h.client.get(f"/patients?limit=2&cursor={page1['next_cursor']}", headers=h.supervisor())
    page2 = r.json()
    r = await h.client.get(f"/patients?limit=2&cursor={page2['next_cursor']}", headers=h.supervisor())
    page3 = r.json()
    assert [p["id"] for p in page1["items"] + page2["items"] + page3["items"]] == ids
    assert page3["next_cursor"] is None
    r = await h.client.get(f"/patients/{ids[3]}", headers=h.supervisor())
    assert r.status_code == 200
