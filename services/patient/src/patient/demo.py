"""Demo data for the embedded mode: reference lists and ~20 patients owned by the demo agents 8001…8006."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from patient.models import (
    Agent,
    AgentGroup,
    CardType,
    Condition,
    FamilyMember,
    FundAccount,
    LevelScheme,
    MedicalRecord,
    MemberLevel,
    OwnershipChange,
    Patient,
    RewardProduct,
)

# The work numbers of agent-state's demo agents, so a demo agent who logs in sees their patients.
DEMO_WORK_NUMBERS = ("8001", "8002", "8003", "8004", "8005", "8006")
DEMO_GROUP = "demo-inbound"

_ILLNESSES = ("高血压", "糖尿病", "慢性胃炎", "失眠", "颈椎病", "哮喘")
_ALLERGIES = ("青霉素", "磺胺类", "阿司匹林", "头孢类")
_SURNAMES = "陈李张王刘黄林吴周郑"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "杰")
_CITIES = (("广东省", "广州市"), ("广东省", "深圳市"), ("广东省", "佛山市"), ("北京市", "北京市"), ("江苏省", "无锡市"))
_STORES = ("GZHZ", "SZLH", "FSNH", "BJCW", "WXCA")


def demo_user_id(work_number: str) -> str:
    return f"demo-{work_number.lower()}"


async def seed_demo(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Create the demo reference data and patients that are missing; returns how many patients were added."""
    now = now or datetime.now(UTC)
    await _reference_data(session)
    await _agents(session, now)
    scheme = await session.scalar(select(LevelScheme).where(LevelScheme.code == "standard"))
    assert scheme is not None
    entry_level = await session.scalar(
        select(MemberLevel).where(MemberLevel.scheme_id == scheme.id).order_by(MemberLevel.rank).limit(1)
    )
    illnesses = list(await session.scalars(select(Condition).where(Condition.kind == "illness").order_by(Condition.id)))
    existing = set(await session.scalars(select(Patient.mobile).where(Patient.mobile.like("1380013%"))))
    added = 0
    for i in range(20):
        mobile = f"1380013{i:04d}"
        if mobile in existing:
            continue
        work_number = DEMO_WORK_NUMBERS[i % len(DEMO_WORK_NUMBERS)]
        province, city = _CITIES[i % len(_CITIES)]
        store = _STORES[i % len(_STORES)]
        registered = now - timedelta(days=30 * (20 - i))
        patient = Patient(
            mobile=mobile,
            patient_number=f"{store}{100000 + i}",
            store_code=store,
            clinic_card_number=str(100000 + i),
            name=_SURNAMES[i % 10] + _GIVEN[(i * 3) % 10],
            gender="female" if i % 2 else "male",
            birth_date=date(1950 + (i * 3) % 60, 1 + i % 12, 1 + i % 28),
            population_group="elderly" if i % 4 == 0 else "adult",
            province=province,
            city=city,
            source_channel=("online_ad", "print_ad", "wechat_media", "walk_in")[i % 4],
            importance_text="VIP" if i % 7 == 0 else None,
            importance_colour="#D32F2F" if i % 7 == 0 else None,
            level_scheme_id=scheme.id,
            level_id=entry_level.id if entry_level else None,
            cumulative_order_amount_fen=0,
            cumulative_order_count=0,
            points_balance=0,
            owner_user_id=demo_user_id(work_number),
            owner_work_number=work_number,
            owner_assigned_at=registered,
            registered_at=registered,
            registered_by=demo_user_id(work_number),
            updated_at=registered,
        )
        patient.conditions = [illnesses[i % len(illnesses)]] if illnesses and i % 3 == 0 else []
        patient.family = []
        session.add(patient)
        await session.flush()
        session.add_all(
            [
                FundAccount(patient_id=patient.id, balance_fen=(i % 5) * 10_000, updated_at=registered),
                OwnershipChange(
                    patient_id=patient.id,
                    kind="registration",
                    to_user_id=demo_user_id(work_number),
                    to_work_number=work_number,
                    changed_by=demo_user_id(work_number),
                    reason="demo data",
                    changed_at=registered,
                ),
                MedicalRecord(
                    patient_id=patient.id,
                    visit_date=registered.date(),
                    person_name=patient.name,
                    symptoms="失眠多梦",
                    diagnosis="心脾两虚",
                    treatment_plan="归脾汤加减 7 剂",
                    treatment_schedule="每周复诊一次",
                    next_visit_on=registered.date() + timedelta(days=7),
                    visit_kind="first",
                    doctor_name="黄医生",
                    clinic_name="固生堂海珠分院",
                    created_by=demo_user_id(work_number),
                    created_at=registered,
                    updated_at=registered,
                ),
            ]
        )
        if i % 4 == 1:
            session.add(
                FamilyMember(
                    patient_id=patient.id,
                    relation="child",
                    name=patient.name[0] + "小宝",
                    gender="male",
                    population_group="child",
                    birth_date=date(2018, 6, 1),
                    created_at=registered,
                    updated_at=registered,
                )
            )
        added += 1
    await session.flush()
    return added


async def _agents(session: AsyncSession, now: datetime) -> None:
    known = set(await session.scalars(select(Agent.work_number).where(Agent.work_number.in_(DEMO_WORK_NUMBERS))))
    for work_number in DEMO_WORK_NUMBERS:
        if work_number not in known:
            session.add(Agent(work_number=work_number, user_id=demo_user_id(work_number), updated_at=now))
            session.add(AgentGroup(work_number=work_number, group_id=DEMO_GROUP))
    await session.flush()


async def _reference_data(session: AsyncSession) -> None:
    names = {(c.kind, c.name) for c in await session.scalars(select(Condition))}
    for kind, values in (("illness", _ILLNESSES), ("allergy", _ALLERGIES)):
        for order, name in enumerate(values):
            if (kind, name) not in names:
                session.add(Condition(kind=kind, name=name, sort_order=order, active=True))
    schemes = set(await session.scalars(select(LevelScheme.code)))
    if "standard" not in schemes:
        standard = LevelScheme(code="standard", name="消费等级", description="by cumulative amount", is_default=True)
        standard.levels = [
            MemberLevel(code="regular", name="普通会员", rank=0, treatment_price_percent=100),
            MemberLevel(
                code="silver", name="银卡会员", rank=1, treatment_price_percent=95, min_order_amount_fen=500_000
            ),
            MemberLevel(
                code="gold", name="金卡会员", rank=2, treatment_price_percent=90, min_order_amount_fen=2_000_000
            ),
            MemberLevel(
                code="diamond", name="钻石会员", rank=3, treatment_price_percent=85, min_order_amount_fen=5_000_000
            ),
        ]
        session.add(standard)
    if "visits" not in schemes:
        visits = LevelScheme(code="visits", name="就诊次数等级", description="by number of completed orders")
        visits.levels = [
            MemberLevel(code="new", name="新客", rank=0, treatment_price_percent=100),
            MemberLevel(code="regular", name="常客", rank=1, treatment_price_percent=95, min_order_count=3),
            MemberLevel(code="loyal", name="忠实会员", rank=2, treatment_price_percent=92, min_order_count=6),
            MemberLevel(
                code="family_doctor", name="家庭医生会员", rank=3, treatment_price_percent=88, min_order_count=10
            ),
        ]
        session.add(visits)
    card_types = set(await session.scalars(select(CardType.code)))
    if "care" not in card_types:
        session.add(
            CardType(
                code="care",
                name="尊享卡",
                benefits=["free_yearly_expert_consultation", "priority_booking", "priority_refund"],
                therapy_price_percent=100,
                validity_days=365,
                active=True,
            )
        )
    if "therapy" not in card_types:
        session.add(
            CardType(
                code="therapy", name="理疗卡", benefits=["therapy_discount"], therapy_price_percent=80, active=True
            )
        )
    if await session.scalar(select(RewardProduct.id).limit(1)) is None:
        session.add_all(
            [
                RewardProduct(name="艾灸贴 (一盒)", points_cost=500, stock=None, active=True),
                RewardProduct(name="养生茶礼盒", points_cost=2000, stock=100, min_yearly_visits=3, active=True),
                RewardProduct(name="专家义诊一次", points_cost=8000, stock=20, min_yearly_visits=10, active=True),
            ]
        )
    await session.flush()
