"""WO-3.7: member funds — payments with idempotency keys, success or failure, refunds, never below zero."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from patient.models import FundEntry

from .conftest import PatientHarness

FINANCE = ["patients.funds.deposit", "patients.funds.refund"]


async def _funded(h: PatientHarness, amount_fen: int) -> int:
    p = await h.register()
    r = await h.client.post(
        f"/patients/{p['id']}/fund/deposits",
        json={"amount_fen": amount_fen, "note": "cash at GZHZ"},
        headers=h.supervisor(FINANCE, **{"Idempotency-Key": f"deposit-{p['id']}-1"}),
    )
    assert r.status_code == 200, r.text
    return int(p["id"])


def _key(h: PatientHarness, key: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or h.agent()), "Idempotency-Key": key}


async def test_wo_3_7_payment_succeeds_or_fails_and_is_published(patient: PatientHarness) -> None:
    h = patient
    pid = await _funded(h, 10_000)
    r = await h.client.post(
        f"/patients/{pid}/fund/payments",
        json={"amount_fen": 8_000, "reference": "APPT-1", "description": "专家号"},
        headers=_key(h, "pay-0001"),
    )
    assert r.status_code == 200, r.text
    ok = r.json()
    assert ok["status"] == "succeeded" and ok["balance_after_fen"] == 2_000 and ok["failure_reason"] is None
    r = await h.client.post(f"/patients/{pid}/fund/payments", json={"amount_fen": 8_000}, headers=_key(h, "pay-0002"))
    assert r.status_code == 200
    failed = r.json()
    assert failed["status"] == "failed" and failed["failure_reason"] == "insufficient_funds"
    assert failed["balance_after_fen"] is None

    event = await h.tap.wait_for("payment.succeeded")
    assert event.data["payment_id"] == ok["id"] and event.data["amount_fen"] == 8_000
    assert event.data["balance_after_fen"] == 2_000 and event.data["reference"] == "APPT-1"
    event = await h.tap.wait_for("payment.failed")
    assert event.data["payment_id"] == failed["id"] and event.data["reason"] == "insufficient_funds"

    r = await h.client.get(f"/fund/payments/{ok['id']}", headers=h.agent())
    assert r.json() == ok
    r = await h.client.get(f"/fund/payments/{ok['id']}", headers=h.agent("A1002"))
    assert r.status_code == 404
    r = await h.client.get(f"/patients/{pid}/fund", headers=h.agent())
    assert r.json()["balance_fen"] == 2_000

    for body, field in (({"amount_fen": 0}, "amount_fen"), ({"amount_fen": 1.5}, "amount_fen"), ({}, "amount_fen")):
        r = await h.client.post(f"/patients/{pid}/fund/payments", json=body, headers=_key(h, "pay-bad-1"))
        assert r.status_code == 422 and r.json()["field"] == field
    r = await h.client.post(f"/patients/{pid}/fund/payments", json={"amount_fen": 1}, headers=h.agent())
    assert r.status_code == 422 and r.json()["field"] == "header.Idempotency-Key"

    # The IVR charges any member with a service permission; without it, 403 for deposits.
    ivr = h.headers("svc-ivr", roles=[], permissions=["patients.funds.charge"])
    r = await h.client.post(
        f"/patients/{pid}/fund/payments", json={"amount_fen": 500}, headers=_key(h, "ivr-0001", ivr)
    )
    assert r.json()["status"] == "succeeded" and r.json()["balance_after_fen"] == 1_500
    r = await h.client.post(f"/patients/{pid}/fund/deposits", json={"amount_fen": 1}, headers=_key(h, "deposit-x-1"))
    assert r.status_code == 403


async def test_wo_3_7_same_idempotency_key_charges_once(patient: PatientHarness) -> None:
    h = patient
    pid = await _funded(h, 10_000)
    body = {"amount_fen": 3_000, "reference": "ORDER-7"}
    first, second = await asyncio.gather(
        h.client.post(f"/patients/{pid}/fund/payments", json=body, headers=_key(h, "same-key-1")),
        h.client.post(f"/patients/{pid}/fund/payments", json=body, headers=_key(h, "same-key-1")),
    )
    third = await h.client.post(f"/patients/{pid}/fund/payments", json=body, headers=_key(h, "same-key-1"))
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.json() == second.json() == third.json()
    assert sorted(r.headers.get("Idempotent-Replayed", "false") for r in (first, second, third)) == [
        "false",
        "true",
        "true",
    ]
    r = await h.client.get(f"/patients/{pid}/fund", headers=h.agent())
    assert r.json()["balance_fen"] == 7_000
    r = await h.client.post(f"/patients/{pid}/fund/payments", json={"amount_fen": 1}, headers=_key(h, "same-key-1"))
    assert r.status_code == 409 and r.json()["code"] == "patient.idempotency_key_reused"

    # A deposit retried with its key also counts once.
    r = await h.client.post(
        f"/patients/{pid}/fund/deposits",
        json={"amount_fen": 10_000, "note": "cash at GZHZ"},
        headers=h.supervisor(FINANCE, **{"Idempotency-Key": f"deposit-{pid}-1"}),
    )
    assert r.headers["Idempotent-Replayed"] == "true"
    r = await h.client.get(f"/patients/{pid}/fund", headers=h.agent())
    assert r.json()["balance_fen"] == 7_000


async def test_wo_3_7_concurrent_payments_never_overdraw(patient: PatientHarness) -> None:
    h = patient
    pid = await _funded(h, 10_000)
    responses = await asyncio.gather(
        *(
            h.client.post(f"/patients/{pid}/fund/payments", json={"amount_fen": 300}, headers=_key(h, f"burst-{i:04d}"))
            for i in range(50)
        )
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    statuses = [r.json()["status"] for r in responses]
    assert statuses.count("succeeded") == 33 and statuses.count("failed") == 17
    balances = sorted(r.json()["balance_after_fen"] for r in responses if r.json()["status"] == "succeeded")
    assert balances == list(range(100, 10_000, 300))  # every charge saw the one before it

    r = await h.client.get(f"/patients/{pid}/fund", headers=h.agent())
    assert r.json()["balance_fen"] == 100
    async with h.app.state.runtime.db.session() as session:
        ledger_sum = await session.scalar(select(func.sum(FundEntry.delta_fen)).where(FundEntry.patient_id == pid))
    assert ledger_sum == 100


async def test_wo_3_7_refunds_within_the_amount_paid(patient: PatientHarness) -> None:
    h = patient
    pid = await _funded(h, 10_000)
    r = await h.client.post(f"/patients/{pid}/fund/payments", json={"amount_fen": 6_000}, headers=_key(h, "pay-r-01"))
    payment = r.json()
    finance = h.supervisor(FINANCE)
    r = await h.client.post(
        f"/fund/payments/{payment['id']}/refunds", json={"amount_fen": 1}, headers=_key(h, "ref-0000")
    )
    assert r.status_code == 403
    r = await h.client.post(
        f"/fund/payments/{payment['id']}/refunds",
        json={"amount_fen": 4_000, "reason": "预约取消"},
        headers=_key(h, "ref-0001", finance),
    )
    assert r.status_code == 200 and r.json()["balance_after_fen"] == 8_000
    r = await h.client.post(
        f"/fund/payments/{payment['id']}/refunds",
        json={"amount_fen": 4_000, "reason": "预约取消"},
        headers=_key(h, "ref-0001", finance),
    )
    assert r.headers["Idempotent-Replayed"] == "true" and r.json()["balance_after_fen"] == 8_000
    r = await h.client.post(
        f"/fund/payments/{payment['id']}/refunds", json={"amount_fen": 2_001}, headers=_key(h, "ref-0002", finance)
    )
    assert r.status_code == 409 and r.json()["code"] == "patient.refund_not_allowed"
    event = await h.tap.wait_for("payment.refunded")
    assert event.data["amount_fen"] == 4_000 and event.data["payment_id"] == payment["id"]

    r = await h.client.get(f"/patients/{pid}/fund/ledger", headers=h.agent())
    assert [(e["kind"], e["delta_fen"], e["balance_after_fen"]) for e in r.json()["items"]] == [
        ("refund", 4_000, 8_000),
        ("payment", -6_000, 4_000),
        ("deposit", 10_000, 10_000),
    ]
    r = await h.client.get(f"/fund/payments/{payment['id']}", headers=h.agent())
    assert r.json()["refunded_fen"] == 4_000
