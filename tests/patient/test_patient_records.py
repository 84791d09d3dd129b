"""WO-3.1: patient records, family, medical records, managed lists, personal data; the screen pop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from callcenter_common.bus import InMemoryBus
from callcenter_common.contracts.patient import OrderCompleted
from callcenter_common.settings import PlatformSettings
from patient.config import PatientSettings
from patient.crypto import load_id_number_key
from patient.demo import seed_demo
from patient.main import create_app

from .conftest import PatientHarness

ID_NUMBER = "11010519491231002X"


async def _lists(h: PatientHarness) -> dict[str, int]:
    ids = {}
    for kind, name in (("illness", "高血压"), ("illness", "糖尿病"), ("allergy", "青霉素")):
        r = await h.client.post("/conditions", json={"kind": kind, "name": name}, headers=h.admin())
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    return ids


async def test_wo_3_1_agent_registers_patient_with_all_fields(patient: PatientHarness) -> None:
    h = patient
    ids = await _lists(h)
    body = {
        "mobile": "+86 138-0013-8000",
        "backup_mobile": "13900139000",
        "name": "陈伟",
        "nickname": "阿伟",
        "gender": "male",
        "id_number": ID_NUMBER.lower(),
        "birth_date": "1949-12-31",
        "population_group": "elderly",
        "occupation": "教师",
        "income_level": "中等",
        "qq": "123456789",
        "wechat_id": "chenwei_gz",
        "other_phone": "020-83886666",
        "email": "chen@example.com",
        "usual_address": "海珠区江南大道",
        "home_address": "海珠区",
        "office_address": "天河区",
        "province": "广东省",
        "city": "广州市",
        "source_channel": "referral",
        "source_detail": "老客户介绍",
        "referrer_name": "李芳",
        "referrer_mobile": "13700137000",
        "past_illness_ids": [ids["高血压"], ids["糖尿病"]],
        "drug_allergy_ids": [ids["青霉素"]],
        "preferences": "下午来电",
        "medical_insurance": "广州医保",
        "importance_text": "重要",
        "importance_colour": "#FF0000",
        "store_code": "gzhz",
        "clinic_card_number": "00012345",
    }
    r = await h.client.post("/patients", json=body, headers=h.agent("A1001"))
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["mobile"] == "13800138000"
    assert p["backup_mobile"] == "13900139000"
    assert p["other_phone"] == "+862083886666"
    assert p["patient_number"] == "GZHZ00012345"
    assert p["id_number"] == "1101**********002X" and p["id_number_masked"] is True
    assert [c["name"] for c in p["past_illnesses"]] == ["高血压", "糖尿病"]
    assert [c["name"] for c in p["drug_allergies"]] == ["青霉素"]
    assert p["owner"]["work_number"] == "A1001" and p["owner"]["user_id"] == "u-a1001"
    assert p["registered_at"] == "2026-03-27T02:00:00Z"
    assert p["points_balance"] == 0 and p["fund_balance_fen"] == 0
    for name in (
        "nickname",
        "occupation",
        "income_level",
        "qq",
        "wechat_id",
        "email",
        "province",
        "city",
        "usual_address",
        "home_address",
        "office_address",
        "preferences",
        "medical_insurance",
        "importance_text",
        "importance_colour",
        "source_detail",
        "referrer_name",
        "population_group",
    ):
        assert p[name] == body[name], name
    event = await h.tap.wait_for("patient.registered")
    assert event.data["mobile"] == "13800138000" and event.data["owner_work_number"] == "A1001"
    owner = await h.tap.wait_for("patient.owner_changed")
    assert owner.data["kind"] == "registration" and owner.data["mobile"] == "13800138000"

    r = await h.client.patch(
        f"/patients/{p['id']}",
        json={"importance_colour": None, "importance_text": "普通", "past_illness_ids": [ids["糖尿病"]]},
        headers=h.agent("A1001"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["importance_colour"] is None and r.json()["importance_text"] == "普通"
    assert [c["name"] for c in r.json()["past_illnesses"]] == ["糖尿病"]
    assert [c["name"] for c in r.json()["drug_allergies"]] == ["青霉素"]


async def test_wo_3_1_one_patient_per_mobile(patient: PatientHarness) -> None:
    h = patient
    await h.register(mobile="008613800138000")
    r = await h.client.post(
        "/patients", json={"name": "x", "mobile": "13800138000", "source_channel": "walk_in"}, headers=h.agent("A1002")
    )
    assert r.status_code == 409 and r.json()["code"] == "patient.mobile_registered" and r.json()["field"] == "mobile"
    r = await h.client.post(
        "/patients", json={"name": "x", "mobile": "020-83886666", "source_channel": "walk_in"}, headers=h.agent()
    )
    assert r.status_code == 422 and r.json()["field"] == "mobile"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id_number": "110105194912310021"}, "id_number"),
        ({"mobile": "12345"}, "mobile"),
        ({"email": "not-an-email"}, "email"),
        ({"importance_colour": "red"}, "importance_colour"),
        ({"source_channel": "referral"}, "body"),
        ({"past_illness_ids": [999]}, "past_illness_ids"),
        ({"past_illness_ids": [2**70]}, "past_illness_ids.0"),
        ({"birth_date": "2030-01-01"}, "birth_date"),
        ({"gender": "x"}, "gender"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"name": "a\x00b"}, "name"),
    ],
)
async def test_wo_3_1_bad_input_names_the_field(patient: PatientHarness, change: dict[str, object], field: str) -> None:
    h = patient
    body = {"name": "陈伟", "mobile": "13800138000", "source_channel": "walk_in", **change}
    r = await h.client.post("/patients", json=body, headers=h.agent())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field


async def test_wo_3_1_bad_paths_and_cursors_are_4xx(patient: PatientHarness) -> None:
    h = patient
    for path, field in (
        ("/patients?cursor=%%%", "query.cursor"),
        ("/patients?cursor=WzFd", None),
        ("/patients?cursor=WyJ4Il0", "query.cursor"),
        ("/patients/99999999999999999999999", "path.patient_id"),
        ("/patients/by-mobile/abc", "mobile"),
        ("/patients?limit=0", "query.limit"),
        ("/patients?q=a%00", "query.q"),
    ):
        r = await h.client.get(path, headers=h.supervisor())
        if field is None:
            assert r.status_code == 200, (path, r.text)
        else:
            assert r.status_code == 422, (path, r.text)
            assert r.json()["field"] == field, path
    r = await h.client.get("/patients")
    assert r.status_code == 401


async def test_wo_3_1_id_number_encrypted_masked_and_reads_audited(patient: PatientHarness) -> None:
    h = patient
    p = await h.register(id_number=ID_NUMBER)
    async with h.app.state.runtime.db.session() as session:
        stored = (await session.execute(text("SELECT id_number_encrypted, id_number_masked FROM patients"))).one()
    assert ID_NUMBER.encode() not in bytes(stored[0]) and stored[1] == "1101**********002X"

    r = await h.client.get(f"/patients/{p['id']}", headers=h.agent())
    assert r.json()["id_number"] == "1101**********002X" and r.json()["id_number_masked"] is True
    r = await h.client.get(f"/patients/{p['id']}", headers=h.supervisor(permissions=["patient.id_number.read"]))
    assert r.json()["id_number"] == ID_NUMBER and r.json()["id_number_masked"] is False

    r = await h.client.get(f"/patients/{p['id']}/access-log", headers=h.agent())
    assert r.status_code == 403
    r = await h.client.get(f"/patients/{p['id']}/access-log", headers=h.admin())
    log = [(e["user_id"], e["action"], e["at"]) for e in r.json()]
    assert log == [
        ("u-a1001", "read", "2026-03-27T02:00:00Z"),
        ("u-s9001", "read", "2026-03-27T02:00:00Z"),
        ("u-s9001", "read_id_number", "2026-03-27T02:00:00Z"),
    ]


def test_wo_3_1_id_number_key_refused_outside_dev(tmp_path: Path) -> None:
    for env in ("test", "prod"):
        for key in ("", "changeme"):
            platform = PlatformSettings(env=env, var_dir=tmp_path, amqp_url="amqp://cc:s3cret@mq/", jwt_public_key="k")
            settings = PatientSettings(id_number_key=key, platform=platform)
            with pytest.raises(ValueError, match="PATIENT_ID_NUMBER_KEY"):
                load_id_number_key(settings)
    dev = PatientSettings(platform=PlatformSettings(env="dev", var_dir=tmp_path))
    key = load_id_number_key(dev)
    assert len(key) == 32 and load_id_number_key(dev) == key
    assert (tmp_path / "patient" / "id_number.key").stat().st_mode & 0o077 == 0


async def test_wo_3_1_family_members_and_medical_records(patient: PatientHarness) -> None:
    h = patient
    ids = await _lists(h)
    p = await h.register()
    r = await h.client.post(
        f"/patients/{p['id']}/family",
        json={
            "relation": "child",
            "name": "陈小宝",
            "gender": "male",
            "birth_date": "2018-06-01",
            "population_group": "child",
            "drug_allergy_ids": [ids["青霉素"]],
            "id_number": ID_NUMBER,
        },
        headers=h.agent(),
    )
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["id_number"] == "1101**********002X" and child["drug_allergies"][0]["name"] == "青霉素"
    assert "points_balance" not in child and "fund_balance_fen" not in child

    for day, member in (("2026-01-05", None), ("2026-02-10", child["id"]), ("2026-03-01", None)):
        r = await h.client.post(
            f"/patients/{p['id']}/medical-records",
            json={
                "family_member_id": member,
                "visit_date": day,
                "symptoms": "咳嗽",
                "diagnosis": "风寒",
                "treatment_plan": "三拗汤",
                "order_id": f"O-{day}",
                "treatment_schedule": "每周一次",
                "next_visit_on": "2026-04-01",
                "visit_kind": "return",
                "doctor_name": "黄医生",
            },
            headers=h.agent(),
        )
        assert r.status_code == 201, r.text
    r = await h.client.get(f"/patients/{p['id']}/medical-records?limit=2", headers=h.agent())
    page = r.json()
    assert [x["visit_date"] for x in page["items"]] == ["2026-03-01", "2026-02-10"]
    assert page["items"][1]["person_name"] == "陈小宝"
    r = await h.client.get(
        f"/patients/{p['id']}/medical-records?limit=2&cursor={page['next_cursor']}", headers=h.agent()
    )
    assert [x["visit_date"] for x in r.json()["items"]] == ["2026-01-05"] and r.json()["next_cursor"] is None

    r = await h.client.post(
        f"/patients/{p['id']}/medical-records",
        json={"family_member_id": 12345, "visit_date": "2026-01-01"},
        headers=h.agent(),
    )
    assert r.status_code == 422 and r.json()["field"] == "family_member_id"

    r = await h.client.patch(
        f"/patients/{p['id']}/family/{child['id']}", json={"relation": "grandchild"}, headers=h.agent()
    )
    assert r.status_code == 200 and r.json()["relation"] == "grandchild"
    r = await h.client.get(f"/patients/{p['id']}", headers=h.agent())
    assert [m["name"] for m in r.json()["family"]] == ["陈小宝"]
    r = await h.client.delete(f"/patients/{p['id']}/family/{child['id']}", headers=h.agent())
    assert r.status_code == 204
    r = await h.client.get(f"/patients/{p['id']}/family", headers=h.agent())
    assert r.json() == []


async def test_wo_3_1_managed_lists_are_admin_editable(patient: PatientHarness) -> None:
    h = patient
    r = await h.client.post("/conditions", json={"kind": "illness", "name": "失眠"}, headers=h.agent())
    assert r.status_code == 403
    ids = await _lists(h)
    r = await h.client.post("/conditions", json={"kind": "illness", "name": "高血压"}, headers=h.admin())
    assert r.status_code == 409 and r.json()["field"] == "name"
    r = await h.client.patch(f"/conditions/{ids['糖尿病']}", json={"active": False}, headers=h.admin())
    assert r.status_code == 200 and r.json()["active"] is False
    r = await h.client.get("/conditions?kind=illness", headers=h.agent())
    assert [c["name"] for c in r.json()] == ["高血压"]
    r = await h.client.post(
        "/patients",
        json={"name": "x", "mobile": "13800138000", "source_channel": "walk_in", "past_illness_ids": [ids["糖尿病"]]},
        headers=h.agent(),
    )
    assert r.status_code == 422 and r.json()["field"] == "past_illness_ids"
    r = await h.client.post(
        "/patients",
        json={"name": "x", "mobile": "13800138000", "source_channel": "walk_in", "past_illness_ids": [ids["青霉素"]]},
        headers=h.agent(),
    )
    assert r.status_code == 422 and r.json()["field"] == "past_illness_ids"


async def test_wo_3_1_screen_pop_lookup_by_mobile(patient: PatientHarness) -> None:
    h = patient
    p = await h.register(importance_colour="#00FF00")
    await h.client.post(
        f"/patients/{p['id']}/family",
        json={"relation": "spouse", "name": "李芳", "mobile": "13900139000"},
        headers=h.agent(),
    )
    for i in range(7):
        await h.client.post(
            f"/patients/{p['id']}/medical-records",
            json={"visit_date": f"2026-01-{i + 10}", "diagnosis": f"d{i}"},
            headers=h.agent(),
        )
    await h.tap.publish(
        OrderCompleted(patient_id=p["id"], order_id="O-1", amount_fen=12_300, completed_at=h.clock.now())
    )
    await h.wait_until(lambda: _points(h, p["id"]))
    r = await h.client.get("/patients/by-mobile/+8613800138000", headers=h.agent())
    assert r.status_code == 200, r.text
    pop = r.json()
    assert pop["id"] == p["id"] and pop["owner"]["work_number"] == "A1001"
    assert pop["importance_colour"] == "#00FF00"
    assert [f["name"] for f in pop["family"]] == ["李芳"]
    assert [v["diagnosis"] for v in pop["recent_visits"]] == ["d6", "d5", "d4", "d3", "d2"]
    assert pop["recent_orders"] == [{"order_id": "O-1", "amount_fen": 12300, "completed_at": "2026-03-27T02:00:00Z"}]
    assert pop["points_balance"] == 123
    r = await h.client.get("/patients/by-mobile/13900139000", headers=h.agent())
    assert r.status_code == 404 and r.json()["code"] == "patient.not_found"


async def _points(h: PatientHarness, patient_id: int) -> int:
    r = await h.client.get(f"/patients/{patient_id}", headers=h.supervisor())
    return int(r.json()["points_balance"])


async def test_wo_3_1_embedded_mode_on_sqlite_with_demo_data(
    tmp_path: Path, id_number_key: str, run_app, tokens
) -> None:
    settings = PatientSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/patient.db",
        id_number_key=id_number_key,
        platform=PlatformSettings(env="test", bus="memory", jwt_public_key=_public_key(tokens)),
    )
    bus = InMemoryBus()
    app = create_app(settings, bus=bus)
    await bus.start()
    try:
        async with run_app(app) as client:
            async with app.state.runtime.db.session() as session:
                assert await seed_demo(session) == 20
            async with app.state.runtime.db.session() as session:
                assert await seed_demo(session) == 0
            token = tokens.issue(user_id="demo-8002", work_number="8002", roles=["agent"])
            headers = {"Authorization": f"Bearer {token}"}
            r = await client.get("/patients?limit=100", headers=headers)
            assert r.status_code == 200 and len(r.json()["items"]) in (3, 4)
            assert {p["owner_work_number"] for p in r.json()["items"]} == {"8002"}
            mobile = r.json()["items"][0]["mobile"]
            r = await client.get(f"/patients/by-mobile/{mobile}", headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["recent_visits"][0]["diagnosis"] == "心脾两虚"
            assert r.json()["level"]["scheme_code"] == "standard"
            r = await client.post(
                f"/patients/{r.json()['id']}/fund/payments",
                json={"amount_fen": 1},
                headers={**headers, "Idempotency-Key": "sqlite-pay-1"},
            )
            assert r.status_code == 200, r.text
    finally:
        await bus.close()


def _public_key(tokens) -> str:
    from cryptography.hazmat.primitives import serialization

    return (
        tokens._key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
