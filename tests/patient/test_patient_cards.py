"""WO-3.6: several member cards per member, with benefits and validity; points never expire."""

from __future__ import annotations

from callcenter_common.contracts.patient import OrderCompleted

from .conftest import PatientHarness


async def test_wo_3_6_member_holds_several_cards_with_benefits_and_validity(patient: PatientHarness) -> None:
    h = patient
    r = await h.client.post(
        "/card-types",
        json={
            "code": "care",
            "name": "尊享卡",
            "benefits": ["priority_refund", "priority_booking", "free_yearly_expert_consultation"],
            "validity_days": 365,
        },
        headers=h.admin(),
    )
    assert r.status_code == 201, r.text
    r = await h.client.post(
        "/card-types",
        json={"code": "therapy", "name": "理疗卡", "benefits": ["therapy_discount"], "therapy_price_percent": 80},
        headers=h.admin(),
    )
    assert r.status_code == 201
    r = await h.client.post(
        "/card-types", json={"code": "x", "name": "x", "benefits": ["free_lunch"]}, headers=h.admin()
    )
    assert r.status_code == 422 and r.json()["field"] == "benefits.0"

    p = await h.register()
    for code, number in (("care", "C-0001"), ("therapy", "T-0001")):
        r = await h.client.post(
            f"/patients/{p['id']}/cards", json={"card_type_code": code, "card_number": number}, headers=h.agent()
        )
        assert r.status_code == 201, r.text
    r = await h.client.post(
        f"/patients/{p['id']}/cards", json={"card_type_code": "care", "card_number": "C-0001"}, headers=h.agent()
    )
    assert r.status_code == 409 and r.json()["field"] == "card_number"
    r = await h.client.post(
        f"/patients/{p['id']}/cards", json={"card_type_code": "gold", "card_number": "G-1"}, headers=h.agent()
    )
    assert r.status_code == 422 and r.json()["field"] == "card_type_code"

    await h.tap.publish(
        OrderCompleted(patient_id=p["id"], order_id="O-1", amount_fen=10_000, completed_at=h.clock.now())
    )
    await h.wait_until(lambda: _points(h, p["id"]))

    cards = (await h.client.get(f"/patients/{p['id']}/cards", headers=h.agent())).json()
    assert [(c["card_number"], c["valid_until"], c["valid_now"]) for c in cards] == [
        ("C-0001", "2027-03-27", True),
        ("T-0001", None, True),
    ]
    assert cards[0]["card_type"]["benefits"] == [
        "free_yearly_expert_consultation",
        "priority_booking",
        "priority_refund",
    ]
    assert cards[1]["card_type"]["therapy_price_percent"] == 80

    h.clock.advance(days=400)
    cards = (await h.client.get(f"/patients/{p['id']}/cards", headers=h.agent())).json()
    assert [c["valid_now"] for c in cards] == [False, True]
    assert await _points(h, p["id"]) == 100  # the card expired, the points did not

    r = await h.client.patch(
        f"/patients/{p['id']}/cards/{cards[1]['id']}", json={"status": "cancelled"}, headers=h.agent()
    )
    assert r.status_code == 200 and r.json()["valid_now"] is False


async def _points(h: PatientHarness, patient_id: int) -> int:
    return int((await h.client.get(f"/patients/{patient_id}", headers=h.agent())).json()["points_balance"])
