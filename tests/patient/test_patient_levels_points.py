"""WO-3.2 member levels and promotion; WO-3.5 points, ledger, redemptions and yearly statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from callcenter_common.contracts.patient import OrderCompleted

from .conftest import PatientHarness

SCHEMES: list[dict[str, Any]] = [
    {
        "code": "standard",
        "name": "消费等级",
        "is_default": True,
        "levels": [
            {"code": "regular", "name": "普通", "rank": 0},
            {
                "code": "silver",
                "name": "银卡",
                "rank": 1,
                "treatment_price_percent": 95,
                "min_order_amount_fen": 50_000,
            },
            {"code": "gold", "name": "金卡", "rank": 2, "treatment_price_percent": 90, "min_order_amount_fen": 200_000},
        ],
    },
    {
        "code": "visits",
        "name": "就诊次数",
        "levels": [
            {"code": "new", "name": "新客", "rank": 0},
            {"code": "loyal", "name": "常客", "rank": 1, "treatment_price_percent": 92, "min_order_count": 3},
        ],
    },
]


async def _schemes(h: PatientHarness) -> None:
    for scheme in SCHEMES:
        r = await h.client.post("/level-schemes", json=scheme, headers=h.admin())
        assert r.status_code == 201, r.text


async def _complete(h: PatientHarness, patient_id: int, order_id: str, amount_fen: int, when: datetime | None = None):
    return await h.tap.publish(
        OrderCompleted(
            patient_id=patient_id, order_id=order_id, amount_fen=amount_fen, completed_at=when or h.clock.now()
        )
    )


async def _level(h: PatientHarness, patient_id: int) -> dict[str, Any]:
    return dict((await h.client.get(f"/patients/{patient_id}", headers=h.supervisor())).json())


async def test_wo_3_2_level_schemes_and_automatic_promotion(patient: PatientHarness) -> None:
    h = patient
    r = await h.client.post("/level-schemes", json=SCHEMES[0], headers=h.agent())
    assert r.status_code == 403
    await _schemes(h)
    r = await h.client.get("/level-schemes", headers=h.agent())
    assert [s["code"] for s in r.json()] == ["standard", "visits"]

    by_amount = await h.register(mobile="13800138001")
    by_count = await h.register(mobile="13800138002", level_scheme_code="visits")
    assert by_amount["level"]["code"] == "regular" and by_amount["level"]["treatment_price_percent"] == 100
    assert by_count["level"]["code"] == "new"

    last = await _complete(h, by_amount["id"], "O-1", 60_000)
    await h.wait_until(lambda: h.processed(last.id))
    promoted = await h.tap.wait_for("patient.level_changed", lambda d: d["patient_id"] == by_amount["id"])
    assert promoted.data["level_code"] == "silver" and promoted.data["previous_level_code"] == "regular"
    assert promoted.data["treatment_price_percent"] == 95 and promoted.data["scheme_code"] == "standard"

    # Redelivery of the same event and a second event for the same order change nothing.
    await h.tap.bus.publish(last)
    again = await _complete(h, by_amount["id"], "O-1", 60_000)
    await h.wait_until(lambda: h.processed(again.id))
    p = await _level(h, by_amount["id"])
    assert p["cumulative_order_amount_fen"] == 60_000 and p["cumulative_order_count"] == 1

    for i in range(3):
        last = await _complete(h, by_count["id"], f"C-{i}", 1_000)
    await h.tap.wait_for("patient.level_changed", lambda d: d["patient_id"] == by_count["id"])
    p = await _level(h, by_count["id"])
    assert p["level"]["code"] == "loyal" and p["cumulative_order_count"] == 3

    # Benefits are admin-editable; moving a member to the other scheme places them by their totals.
    r = await h.client.get("/level-schemes", headers=h.agent())
    gold = next(lv for lv in r.json()[0]["levels"] if lv["code"] == "gold")
    r = await h.client.patch(f"/member-levels/{gold['id']}", json={"treatment_price_percent": 85}, headers=h.admin())
    assert r.status_code == 200 and r.json()["treatment_price_percent"] == 85
    r = await h.client.patch(f"/patients/{by_count['id']}", json={"level_scheme_code": "standard"}, headers=h.agent())
    assert r.json()["level"]["code"] == "regular"


async def test_wo_3_5_points_are_a_share_of_each_completed_order(patient: PatientHarness) -> None:
    h = patient
    p = await h.register()
    await _complete(h, p["id"], "O-1", 12_345)  # 123.45 yuan -> 123 points
    last = await _complete(h, p["id"], "O-2", 99)
    await h.wait_until(lambda: h.processed(last.id))
    await h.wait_until(lambda: _points_is(h, p["id"], 123))
    r = await h.client.get(f"/patients/{p['id']}/points-ledger", headers=h.agent())
    entries = r.json()["items"]
    assert [(e["delta"], e["balance_after"], e["kind"], e["order_id"]) for e in entries] == [(123, 123, "order", "O-1")]


async def _points_is(h: PatientHarness, patient_id: int, points: int) -> bool:
    return (await _level(h, patient_id))["points_balance"] == points


async def test_wo_3_5_redeem_points_for_products(patient: PatientHarness) -> None:
    h = patient
    p = await h.register()
    r = await h.client.post(
        "/reward-products", json={"name": "艾灸贴", "points_cost": 300, "stock": 1}, headers=h.admin()
    )
    moxa = r.json()
    r = await h.client.post(
        "/reward-products", json={"name": "养生茶", "points_cost": 100, "min_yearly_visits": 3}, headers=h.admin()
    )
    tea = r.json()
    await _complete(h, p["id"], "O-1", 50_000)
    await h.wait_until(lambda: _points_is(h, p["id"], 500))

    r = await h.client.post(f"/patients/{p['id']}/redemptions", json={"product_id": tea["id"]}, headers=h.agent())
    assert r.status_code == 409 and r.json()["code"] == "patient.redemption_not_eligible"
    r = await h.client.post(
        f"/patients/{p['id']}/redemptions", json={"product_id": moxa["id"], "quantity": 2}, headers=h.agent()
    )
    assert r.status_code == 409 and r.json()["code"] == "patient.points_insufficient"
    r = await h.client.post(f"/patients/{p['id']}/redemptions", json={"product_id": moxa["id"]}, headers=h.agent())
    assert r.status_code == 201 and r.json()["points_balance"] == 200 and r.json()["points_spent"] == 300
    r = await h.client.post(f"/patients/{p['id']}/redemptions", json={"product_id": moxa["id"]}, headers=h.agent())
    assert r.status_code == 409
    r = await h.client.post(f"/patients/{p['id']}/redemptions", json={"product_id": 424242}, headers=h.agent())
    assert r.status_code == 422 and r.json()["field"] == "product_id"

    r = await h.client.get(f"/patients/{p['id']}/points-ledger", headers=h.agent())
    assert [(e["delta"], e["balance_after"], e["kind"]) for e in r.json()["items"]] == [
        (-300, 200, "redemption"),
        (500, 500, "order"),
    ]
    r = await h.client.get("/reward-products", headers=h.agent())
    assert [(x["name"], x["stock"]) for x in r.json()] == [("养生茶", None), ("艾灸贴", 0)]


async def test_wo_3_5_yearly_statistics_by_visits_amount_and_both(patient: PatientHarness) -> None:
    h = patient
    # visits, total amount (fen) in 2025
    plan = {
        "13800000001": (3, 90_000),
        "13800000002": (6, 600_000),
        "13800000003": (12, 1_200_000),
        "13800000004": (1, 10),
    }
    last = None
    for mobile, (visits, amount) in plan.items():
        p = await h.register(mobile=mobile)
        for i in range(visits):
            share = amount // visits + (amount % visits if i == 0 else 0)
            last = await _complete(h, p["id"], f"{mobile}-{i}", share, datetime(2025, 1 + i % 12, 5, tzinfo=UTC))
    await _complete(h, p["id"], "next-year", 10**7, datetime(2026, 1, 1, tzinfo=UTC))
    assert last is not None
    await h.wait_until(lambda: _orders_counted(h, 23))

    r = await h.client.get("/statistics/yearly?year=2025", headers=h.agent())
    assert r.status_code == 403
    r = await h.client.get("/statistics/yearly?year=2025", headers=h.supervisor())
    assert r.status_code == 200, r.text
    stats = r.json()
    assert stats["patients_with_orders"] == 4
    assert [(b["min_visits"], b["max_visits"], b["patients"], b["amount_fen"]) for b in stats["by_visits"]] == [
        (3, 5, 1, 90_000),
        (6, 9, 1, 600_000),
        (10, None, 1, 1_200_000),
    ]
    assert [(b["min_amount_fen"], b["below_amount_fen"], b["patients"]) for b in stats["by_amount"]] == [
        (100_000, 500_000, 0),
        (500_000, 1_000_000, 1),
        (1_000_000, None, 1),
    ]
    both = {(b["min_visits"], b["min_amount_fen"]): b["patients"] for b in stats["by_visits_and_amount"]}
    assert both[(6, 500_000)] == 1 and both[(10, 1_000_000)] == 1 and sum(both.values()) == 2
    r = await h.client.get(
        "/statistics/yearly",
        params={"year": 2025, "visit_thresholds": [1, 3], "amount_thresholds_fen": [1, 50_000]},
        headers=h.supervisor(),
    )
    assert [b["patients"] for b in r.json()["by_visits"]] == [1, 3]
    assert [b["patients"] for b in r.json()["by_amount"]] == [1, 3]
    r = await h.client.get("/statistics/yearly?year=2025&visit_thresholds=0", headers=h.supervisor())
    assert r.status_code == 422 and r.json()["field"] == "visit_thresholds"


async def _orders_counted(h: PatientHarness, expected: int) -> bool:
    r = await h.client.get("/patients?limit=100", headers=h.supervisor())
    total = 0
    for item in r.json()["items"]:
        total += (await _level(h, item["id"]))["cumulative_order_count"]
    return total == expected
