"""WO-3.4: ownership by the first agent who talks with the patient; supervisors assign and move it."""

from __future__ import annotations

from datetime import timedelta

from callcenter_common.contracts.acd import CallAnswered

from .conftest import PatientHarness


def answered(h: PatientHarness, caller: str, work_number: str, call_id: str, seconds: int = 0) -> CallAnswered:
    return CallAnswered(
        call_id=call_id,
        caller_number=caller,
        dnis="4008001234",
        agent_extension="8001",
        agent_user_id=f"u-{work_number.lower()}",
        agent_work_number=work_number,
        answered_at=h.clock.now() + timedelta(seconds=seconds),
    )


async def test_wo_3_4_first_agent_becomes_owner(patient: PatientHarness) -> None:
    h = patient
    first = await h.tap.publish(answered(h, "+86 138 0013 8000", "A1003", "call-1"), correlation_id="call-1")
    second = await h.tap.publish(answered(h, "13800138000", "A1004", "call-2", seconds=60))
    await h.wait_until(lambda: h.processed(first.id))
    await h.wait_until(lambda: h.processed(second.id))

    # A supervisor registers the caller later: the first agent who answered them owns them.
    p = await h.register(h.supervisor())
    assert p["owner"]["work_number"] == "A1003" and p["owner"]["user_id"] == "u-a1003"
    event = await h.tap.wait_for("patient.owner_changed")
    assert event.data["kind"] == "first_contact" and event.data["owner_work_number"] == "A1003"
    assert event.data["mobile"] == "13800138000"

    third = await h.tap.publish(answered(h, "13800138000", "A1005", "call-3"))
    await h.wait_until(lambda: h.processed(third.id))
    r = await h.client.get(f"/patients/{p['id']}", headers=h.supervisor())
    assert r.json()["owner"]["work_number"] == "A1003"
    r = await h.client.get(f"/patients/{p['id']}/owner-log", headers=h.supervisor())
    assert [(c["kind"], c["to_work_number"]) for c in r.json()["items"]] == [("first_contact", "A1003")]


async def test_wo_3_4_unowned_patient_gets_the_next_agent_who_answers(patient: PatientHarness) -> None:
    h = patient
    p = await h.register(h.supervisor())
    assert p["owner"] is None
    transferred = answered(h, "13800138000", "A1005", "call-8")
    transferred.first_answer = False  # type: ignore[attr-defined]
    skipped = await h.tap.publish(transferred)
    await h.wait_until(lambda: h.processed(skipped.id))
    r = await h.client.get(f"/patients/{p['id']}", headers=h.supervisor())
    assert r.json()["owner"] is None
    await h.tap.publish(answered(h, "13800138000", "A1006", "call-9"))
    event = await h.tap.wait_for("patient.owner_changed")
    assert event.data == {
        "patient_id": p["id"],
        "mobile": "13800138000",
        "owner_user_id": "u-a1006",
        "owner_work_number": "A1006",
        "previous_owner_user_id": None,
        "previous_owner_work_number": None,
        "kind": "first_contact",
        "changed_by": None,
        "changed_at": "2026-03-27T02:00:00Z",
    }
    r = await h.client.get(f"/patients/{p['id']}", headers=h.agent("A1006"))
    assert r.status_code == 200


async def test_wo_3_4_supervisor_assigns_and_moves_ownership_with_log(patient: PatientHarness) -> None:
    h = patient
    p = await h.register(h.supervisor())
    r = await h.client.put(f"/patients/{p['id']}/owner", json={"work_number": "A1001"}, headers=h.agent())
    assert r.status_code == 403
    r = await h.client.put(f"/patients/{p['id']}/owner", json={"work_number": "A1009"}, headers=h.supervisor())
    assert r.status_code == 422 and r.json()["field"] == "user_id"
    r = await h.client.put(
        f"/patients/{p['id']}/owner", json={"work_number": "A1001", "user_id": "u-a1001"}, headers=h.supervisor()
    )
    assert r.status_code == 200 and r.json()["owner"]["work_number"] == "A1001"

    # A1002 is known from their own token, so the supervisor names only the work number.
    await h.register(h.agent("A1002"), mobile="13900139000")
    h.clock.advance(minutes=5)
    r = await h.client.put(
        f"/patients/{p['id']}/owner", json={"work_number": "A1002", "reason": "A1001 left"}, headers=h.supervisor()
    )
    assert r.status_code == 200 and r.json()["owner"] == {
        "user_id": "u-a1002",
        "work_number": "A1002",
        "assigned_at": "2026-03-27T02:05:00Z",
    }
    r = await h.client.get(f"/patients/{p['id']}/owner-log", headers=h.supervisor())
    log = [
        (c["kind"], c["from_work_number"], c["to_work_number"], c["changed_by"], c["reason"]) for c in r.json()["items"]
    ]
    assert log == [
        ("assigned", None, "A1001", "u-s9001", ""),
        ("moved", "A1001", "A1002", "u-s9001", "A1001 left"),
    ]
    moved = await h.tap.wait_for("patient.owner_changed", lambda d: d["kind"] == "moved")
    assert moved.data["owner_work_number"] == "A1002" and moved.data["previous_owner_work_number"] == "A1001"
    assert (await h.client.get(f"/patients/{p['id']}", headers=h.agent("A1001"))).status_code == 404
    assert (await h.client.get(f"/patients/{p['id']}", headers=h.agent("A1002"))).status_code == 200


async def test_wo_3_4_owner_map_for_the_acd(patient: PatientHarness) -> None:
    h = patient
    for i in range(5):
        await h.register(h.agent(f"A100{i}"), mobile=f"1380013800{i}")
    await h.register(h.supervisor(), mobile="13800138009")
    r = await h.client.get("/owners", headers=h.supervisor())
    assert r.status_code == 403
    acd = h.headers("svc-acd", roles=[], permissions=["patients.read_owners"])
    entries, cursor = [], None
    while True:
        r = await h.client.get("/owners", params={"limit": 2, **({"after": cursor} if cursor else {})}, headers=acd)
        assert r.status_code == 200, r.text
        entries += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert entries == [
        {"mobile": f"1380013800{i}", "owner_user_id": f"u-a100{i}", "owner_work_number": f"A100{i}"} for i in range(5)
    ]


async def test_wo_3_4_patient_number_is_store_code_and_clinic_card(patient: PatientHarness) -> None:
    h = patient
    p = await h.register()
    assert p["patient_number"] is None
    r = await h.client.patch(
        f"/patients/{p['id']}", json={"store_code": "szlh", "clinic_card_number": "778899"}, headers=h.agent()
    )
    assert r.status_code == 200 and r.json()["patient_number"] == "SZLH778899"
    r = await h.client.post(
        "/patients",
        json={
            "name": "y",
            "mobile": "13900139000",
            "source_channel": "walk_in",
            "store_code": "SZLH",
            "clinic_card_number": "778899",
        },
        headers=h.agent(),
    )
    assert r.status_code == 409 and r.json()["field"] == "clinic_card_number"
    r = await h.client.post(
        "/patients",
        json={"name": "y", "mobile": "13900139000", "source_channel": "walk_in", "store_code": "SZLH"},
        headers=h.agent(),
    )
    assert r.status_code == 422
    r = await h.client.get("/patients?q=SZLH778899", headers=h.agent())
    assert [x["id"] for x in r.json()["items"]] == [p["id"]]
