"""Every query of the patient service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from patient.models import (
    AccessLog,
    Agent,
    AgentGroup,
    CardType,
    Condition,
    FamilyMember,
    FirstContact,
    FundAccount,
    FundEntry,
    FundPayment,
    FundRefund,
    LevelScheme,
    MedicalRecord,
    MemberCard,
    MemberLevel,
    OrderCompletion,
    OwnershipChange,
    Patient,
    PointsEntry,
    Redemption,
    RewardProduct,
)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which patients a caller may see (WO-3.3): everyone, their groups' owners' or their own."""

    everyone: bool
    work_number: str
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PatientFilter:
    q: str | None = None
    owner_work_number: str | None = None
    unowned: bool | None = None
    source_channel: str | None = None
    level_id: int | None = None


@dataclass(frozen=True, slots=True)
class LookupRow:
    patient: Patient
    level: MemberLevel | None
    scheme_code: str | None
    fund_balance_fen: int | None
    family: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    orders: list[dict[str, Any]]


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _is_sqlite(self) -> bool:
        return self.session.get_bind().dialect.name == "sqlite"

    def _insert(self, table: Any) -> Any:
        return (sqlite if self._is_sqlite else postgresql).insert(table)

    async def flush(self) -> None:
        await self.session.flush()

    def add(self, *objects: object) -> None:
        self.session.add_all(objects)

    # --- visibility -----------------------------------------------------------------------

    @staticmethod
    def visible(scope: Scope) -> ColumnElement[bool]:
        if scope.everyone:
            return literal(True)
        own = Patient.owner_work_number == scope.work_number
        if not scope.groups:
            return own if scope.work_number else false()
        group_members = select(AgentGroup.work_number).where(AgentGroup.group_id.in_(sorted(scope.groups)))
        return or_(own, Patient.owner_work_number.in_(group_members))

    # --- patients -------------------------------------------------------------------------

    async def get_patient(self, patient_id: int, scope: Scope, *, details: bool = False) -> Patient | None:
        query = select(Patient).where(Patient.id == patient_id, self.visible(scope))
        if details:
            query = query.options(
                selectinload(Patient.level),
                selectinload(Patient.conditions),
                selectinload(Patient.family).selectinload(FamilyMember.conditions),
            )
        result = await self.session.execute(query.execution_options(populate_existing=True))
        return result.scalar_one_or_none()

    async def patient_exists(self, patient_id: int) -> bool:
        return (await self.session.scalar(select(Patient.id).where(Patient.id == patient_id))) is not None

    async def patient_id_by_mobile(self, mobile: str) -> int | None:
        return await self.session.scalar(select(Patient.id).where(Patient.mobile == mobile))

    async def patient_id_by_number(self, patient_number: str) -> int | None:
        return await self.session.scalar(select(Patient.id).where(Patient.patient_number == patient_number))

    async def list_patients(
        self, scope: Scope, filters: PatientFilter, after_id: int | None, limit: int
    ) -> Sequence[tuple[Patient, str | None]]:
        query = (
            select(Patient, MemberLevel.code)
            .outerjoin(MemberLevel, MemberLevel.id == Patient.level_id)
            .where(self.visible(scope))
            .order_by(Patient.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(Patient.id > after_id)
        if filters.q:
            text = filters.q.strip()
            conditions: list[ColumnElement[bool]] = [Patient.name.startswith(text, autoescape=True)]
            conditions.append(Patient.patient_number == text)
            if text.lstrip("+").isdigit():
                conditions.append(Patient.mobile.startswith(text, autoescape=True))
            query = query.where(or_(*conditions))
        if filters.owner_work_number is not None:
            query = query.where(Patient.owner_work_number == filters.owner_work_number)
        if filters.unowned is True:
            query = query.where(Patient.owner_work_number.is_(None))
        elif filters.unowned is False:
            query = query.where(Patient.owner_work_number.is_not(None))
        if filters.source_channel is not None:
            query = query.where(Patient.source_channel == filters.source_channel)
        if filters.level_id is not None:
            query = query.where(Patient.level_id == filters.level_id)
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def lookup_by_mobile(self, mobile: str, scope: Scope, recent: int) -> LookupRow | None:
        """Patient, level, fund balance, family, recent visits and orders: one indexed statement."""
        kind = "everyone" if scope.everyone else ("groups" if scope.groups else "own")
        dialect = "sqlite" if self._is_sqlite else "postgresql"
        statement = _LOOKUPS.get((dialect, kind))
        if statement is None:
            # Built once: on the screen pop's hot path, building a statement costs more than running it.
            statement = _LOOKUPS[(dialect, kind)] = _lookup_statement(dialect, kind)
        params: dict[str, Any] = {"mobile": mobile, "recent": recent, "work_number": scope.work_number}
        if kind == "groups":
            params["groups"] = sorted(scope.groups)
        row = (await self.session.execute(statement, params)).one_or_none()
        if row is None:
            return None
        return LookupRow(row[0], row[1], row[2], row[3], row[4] or [], row[5] or [], row[6] or [])

    async def conditions_by_ids(self, ids: Iterable[int]) -> list[Condition]:
        wanted = sorted(set(ids))
        if not wanted:
            return []
        result = await self.session.scalars(select(Condition).where(Condition.id.in_(wanted)))
        return list(result)

    async def list_conditions(self, kind: str | None, include_inactive: bool) -> Sequence[Condition]:
        query = select(Condition).order_by(Condition.kind, Condition.sort_order, Condition.id)
        if kind is not None:
            query = query.where(Condition.kind == kind)
        if not include_inactive:
            query = query.where(Condition.active.is_(True))
        return (await self.session.scalars(query)).all()

    async def get_condition(self, condition_id: int) -> Condition | None:
        return await self.session.get(Condition, condition_id)

    async def condition_name_taken(self, kind: str, name: str, except_id: int | None = None) -> bool:
        query = select(Condition.id).where(Condition.kind == kind, Condition.name == name)
        if except_id is not None:
            query = query.where(Condition.id != except_id)
        return (await self.session.scalar(query)) is not None

    async def get_family_member(self, patient_id: int, member_id: int) -> FamilyMember | None:
        query = (
            select(FamilyMember)
            .where(FamilyMember.id == member_id, FamilyMember.patient_id == patient_id)
            .options(selectinload(FamilyMember.conditions))
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def list_family(self, patient_id: int) -> Sequence[FamilyMember]:
        query = (
            select(FamilyMember)
            .where(FamilyMember.patient_id == patient_id)
            .options(selectinload(FamilyMember.conditions))
            .order_by(FamilyMember.id)
        )
        return (await self.session.scalars(query)).all()

    async def delete_family_member(self, member: FamilyMember) -> None:
        await self.session.delete(member)

    async def fund_balance(self, patient_id: int) -> int:
        balance = await self.session.scalar(select(FundAccount.balance_fen).where(FundAccount.patient_id == patient_id))
        return int(balance or 0)

    async def log_access(self, patient_id: int, user_id: str, work_number: str, action: str, at: datetime) -> None:
        self.session.add(
            AccessLog(patient_id=patient_id, user_id=user_id, work_number=work_number, action=action, at=at)
        )

    async def access_log(self, patient_id: int) -> Sequence[AccessLog]:
        query = select(AccessLog).where(AccessLog.patient_id == patient_id).order_by(AccessLog.id)
        return (await self.session.scalars(query)).all()

    # --- medical records ------------------------------------------------------------------

    async def list_medical_records(
        self, patient_id: int, after: tuple[str, int] | None, limit: int
    ) -> Sequence[MedicalRecord]:
        query = (
            select(MedicalRecord)
            .where(MedicalRecord.patient_id == patient_id)
            .order_by(MedicalRecord.visit_date.desc(), MedicalRecord.id.desc())
            .limit(limit)
        )
        if after is not None:
            visit, record_id = date.fromisoformat(after[0]), after[1]
            query = query.where(
                or_(
                    MedicalRecord.visit_date < visit,
                    and_(MedicalRecord.visit_date == visit, MedicalRecord.id < record_id),
                )
            )
        return (await self.session.scalars(query)).all()

    async def get_medical_record(self, patient_id: int, record_id: int) -> MedicalRecord | None:
        query = select(MedicalRecord).where(MedicalRecord.id == record_id, MedicalRecord.patient_id == patient_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    # --- agents and ownership -------------------------------------------------------------

    async def remember_agent(self, work_number: str, user_id: str, groups: Iterable[str], at: datetime) -> None:
        """Keep who holds a work number and their groups, unless we already know something newer."""
        current = await self.session.get(Agent, work_number, with_for_update=not self._is_sqlite)
        if current is not None and current.updated_at > at:
            return
        if current is None:
            self.session.add(Agent(work_number=work_number, user_id=user_id, updated_at=at))
        else:
            current.user_id, current.updated_at = user_id, at
        await self.session.flush()
        await self.session.execute(delete(AgentGroup).where(AgentGroup.work_number == work_number))
        rows = [{"work_number": work_number, "group_id": g} for g in sorted(set(groups))]
        if rows:
            await self.session.execute(self._insert(AgentGroup).values(rows))

    async def agent_user_id(self, work_number: str) -> str | None:
        return await self.session.scalar(select(Agent.user_id).where(Agent.work_number == work_number))

    async def record_first_contact(
        self, mobile: str, user_id: str, work_number: str, call_id: str, answered_at: datetime
    ) -> None:
        """Remember the earliest answering agent of a mobile that is not a patient yet."""
        stmt = self._insert(FirstContact).values(
            mobile=mobile, user_id=user_id, work_number=work_number, call_id=call_id, answered_at=answered_at
        )
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[FirstContact.mobile],
            set_={
                "user_id": excluded.user_id,
                "work_number": excluded.work_number,
                "call_id": excluded.call_id,
                "answered_at": excluded.answered_at,
            },
            where=excluded.answered_at < FirstContact.answered_at,
        )
        await self.session.execute(stmt)

    async def take_first_contact(self, mobile: str) -> FirstContact | None:
        contact = await self.session.get(FirstContact, mobile)
        if contact is not None:
            await self.session.delete(contact)
        return contact

    async def claim_unowned(self, patient_id: int, user_id: str, work_number: str, at: datetime) -> bool:
        """Set the owner only if the patient has none; True if this call set it."""
        stmt = (
            update(Patient)
            .where(Patient.id == patient_id, Patient.owner_work_number.is_(None))
            .values(owner_user_id=user_id, owner_work_number=work_number, owner_assigned_at=at, updated_at=at)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def lock_patient(self, patient_id: int, scope: Scope) -> Patient | None:
        query = select(Patient).where(Patient.id == patient_id, self.visible(scope))
        if not self._is_sqlite:
            query = query.with_for_update()
        return (await self.session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()

    async def ownership_log(self, patient_id: int, after_id: int | None, limit: int) -> Sequence[OwnershipChange]:
        query = (
            select(OwnershipChange)
            .where(OwnershipChange.patient_id == patient_id)
            .order_by(OwnershipChange.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(OwnershipChange.id > after_id)
        return (await self.session.scalars(query)).all()

    async def owners(self, after_id: int | None, limit: int) -> Sequence[tuple[int, str, str, str]]:
        query = (
            select(Patient.id, Patient.mobile, Patient.owner_user_id, Patient.owner_work_number)
            .where(Patient.owner_work_number.is_not(None))
            .order_by(Patient.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(Patient.id > after_id)
        return [(r[0], r[1], r[2] or "", r[3] or "") for r in (await self.session.execute(query)).all()]

    # --- levels ---------------------------------------------------------------------------

    async def list_schemes(self) -> Sequence[LevelScheme]:
        query = select(LevelScheme).options(selectinload(LevelScheme.levels)).order_by(LevelScheme.id)
        return (await self.session.scalars(query)).all()

    async def scheme_by_code(self, code: str) -> LevelScheme | None:
        query = select(LevelScheme).where(LevelScheme.code == code).options(selectinload(LevelScheme.levels))
        return (await self.session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()

    async def default_scheme(self) -> LevelScheme | None:
        query = (
            select(LevelScheme)
            .where(LevelScheme.is_default.is_(True))
            .options(selectinload(LevelScheme.levels))
            .order_by(LevelScheme.id)
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def clear_default_scheme(self) -> None:
        await self.session.execute(
            update(LevelScheme).values(is_default=False).execution_options(synchronize_session=False)
        )

    async def levels_of_scheme(self, scheme_id: int) -> Sequence[MemberLevel]:
        query = select(MemberLevel).where(MemberLevel.scheme_id == scheme_id).order_by(MemberLevel.rank)
        return (await self.session.scalars(query)).all()

    async def get_level(self, level_id: int) -> MemberLevel | None:
        query = select(MemberLevel).where(MemberLevel.id == level_id).options(selectinload(MemberLevel.scheme))
        return (await self.session.execute(query)).scalar_one_or_none()

    async def scheme_code(self, scheme_id: int) -> str:
        return (await self.session.scalar(select(LevelScheme.code).where(LevelScheme.id == scheme_id))) or ""

    # --- orders and points ----------------------------------------------------------------

    async def add_order_completion(
        self, patient_id: int, order_id: str, amount_fen: int, points: int, completed_at: datetime
    ) -> bool:
        """False if this order was already counted."""
        stmt = (
            self._insert(OrderCompletion)
            .values(
                patient_id=patient_id,
                order_id=order_id,
                amount_fen=amount_fen,
                points_earned=points,
                completed_at=completed_at,
            )
            .on_conflict_do_nothing(index_elements=[OrderCompletion.order_id])
        )
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def add_order_totals(
        self, patient_id: int, amount_fen: int, points: int, at: datetime
    ) -> tuple[int, int, int]:
        """Add an order to the patient's totals and points; returns (amount, count, points balance)."""
        stmt = (
            update(Patient)
            .where(Patient.id == patient_id)
            .values(
                cumulative_order_amount_fen=Patient.cumulative_order_amount_fen + amount_fen,
                cumulative_order_count=Patient.cumulative_order_count + 1,
                points_balance=Patient.points_balance + points,
                updated_at=at,
            )
            .returning(Patient.cumulative_order_amount_fen, Patient.cumulative_order_count, Patient.points_balance)
            .execution_options(synchronize_session=False)
        )
        row = (await self.session.execute(stmt)).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def spend_points(self, patient_id: int, points: int, at: datetime) -> int | None:
        """Take points if the balance covers them; the new balance, or None."""
        stmt = (
            update(Patient)
            .where(Patient.id == patient_id, Patient.points_balance >= points)
            .values(points_balance=Patient.points_balance - points, updated_at=at)
            .returning(Patient.points_balance)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def set_level(self, patient_id: int, level_id: int | None, at: datetime) -> None:
        await self.session.execute(
            update(Patient)
            .where(Patient.id == patient_id)
            .values(level_id=level_id, updated_at=at)
            .execution_options(synchronize_session=False)
        )

    async def points_ledger(self, patient_id: int, before_id: int | None, limit: int) -> Sequence[PointsEntry]:
        query = select(PointsEntry).where(PointsEntry.patient_id == patient_id).order_by(PointsEntry.id.desc())
        if before_id is not None:
            query = query.where(PointsEntry.id < before_id)
        return (await self.session.scalars(query.limit(limit))).all()

    async def yearly_visits(self, patient_id: int, start: datetime, end: datetime) -> int:
        query = select(func.count()).where(
            OrderCompletion.patient_id == patient_id,
            OrderCompletion.completed_at >= start,
            OrderCompletion.completed_at < end,
        )
        return int(await self.session.scalar(query) or 0)

    async def yearly_buckets(
        self, start: datetime, end: datetime, visit_thresholds: Sequence[int], amount_thresholds: Sequence[int]
    ) -> tuple[int, list[tuple[int, int, int, int]]]:
        """Patients with orders in [start, end), and (visit bucket, amount bucket, patients, amount) rows.

        Bucket i holds values in [threshold[i], threshold[i+1]); -1 is below the lowest threshold.
        """
        per_patient = (
            select(
                OrderCompletion.patient_id,
                func.count().label("visits"),
                func.sum(OrderCompletion.amount_fen).label("amount"),
            )
            .where(OrderCompletion.completed_at >= start, OrderCompletion.completed_at < end)
            .group_by(OrderCompletion.patient_id)
            .subquery()
        )
        visit_bucket = _bucket(per_patient.c.visits, visit_thresholds).label("vb")
        amount_bucket = _bucket(per_patient.c.amount, amount_thresholds).label("ab")
        query = (
            select(visit_bucket, amount_bucket, func.count(), func.sum(per_patient.c.amount))
            .group_by(visit_bucket, amount_bucket)
            .order_by(visit_bucket, amount_bucket)
        )
        rows = [(int(r[0]), int(r[1]), int(r[2]), int(r[3] or 0)) for r in (await self.session.execute(query)).all()]
        total = sum(r[2] for r in rows)
        return total, rows

    async def list_products(self, include_inactive: bool) -> Sequence[RewardProduct]:
        query = select(RewardProduct).order_by(RewardProduct.points_cost, RewardProduct.id)
        if not include_inactive:
            query = query.where(RewardProduct.active.is_(True))
        return (await self.session.scalars(query)).all()

    async def get_product(self, product_id: int) -> RewardProduct | None:
        return await self.session.get(RewardProduct, product_id)

    async def take_stock(self, product_id: int, quantity: int) -> bool:
        stmt = (
            update(RewardProduct)
            .where(
                RewardProduct.id == product_id,
                or_(RewardProduct.stock.is_(None), RewardProduct.stock >= quantity),
            )
            .values(stock=case((RewardProduct.stock.is_(None), None), else_=RewardProduct.stock - quantity))
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(await self.session.execute(stmt), "rowcount", 0))

    async def list_redemptions(self, patient_id: int) -> Sequence[Redemption]:
        query = select(Redemption).where(Redemption.patient_id == patient_id).order_by(Redemption.id)
        return (await self.session.scalars(query)).all()

    # --- cards ----------------------------------------------------------------------------

    async def list_card_types(self) -> Sequence[CardType]:
        return (await self.session.scalars(select(CardType).order_by(CardType.id))).all()

    async def card_type_by_code(self, code: str) -> CardType | None:
        return await self.session.scalar(select(CardType).where(CardType.code == code))

    async def get_card_type(self, card_type_id: int) -> CardType | None:
        return await self.session.get(CardType, card_type_id)

    async def card_number_taken(self, card_number: str) -> bool:
        return (
            await self.session.scalar(select(MemberCard.id).where(MemberCard.card_number == card_number))
        ) is not None

    async def list_cards(self, patient_id: int) -> Sequence[MemberCard]:
        query = (
            select(MemberCard)
            .where(MemberCard.patient_id == patient_id)
            .options(selectinload(MemberCard.card_type))
            .order_by(MemberCard.id)
        )
        return (await self.session.scalars(query)).all()

    async def get_card(self, patient_id: int, card_id: int) -> MemberCard | None:
        query = (
            select(MemberCard)
            .where(MemberCard.id == card_id, MemberCard.patient_id == patient_id)
            .options(selectinload(MemberCard.card_type))
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    # --- funds ----------------------------------------------------------------------------

    async def fund_account(self, patient_id: int) -> FundAccount | None:
        return await self.session.get(FundAccount, patient_id)

    async def credit(self, patient_id: int, amount_fen: int, at: datetime) -> int:
        stmt = (
            update(FundAccount)
            .where(FundAccount.patient_id == patient_id)
            .values(balance_fen=FundAccount.balance_fen + amount_fen, updated_at=at)
            .returning(FundAccount.balance_fen)
            .execution_options(synchronize_session=False)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def debit(self, patient_id: int, amount_fen: int, at: datetime) -> int | None:
        """Charge the account if the balance covers it: one conditional UPDATE, safe under concurrency."""
        stmt = (
            update(FundAccount)
            .where(FundAccount.patient_id == patient_id, FundAccount.balance_fen >= amount_fen)
            .values(balance_fen=FundAccount.balance_fen - amount_fen, updated_at=at)
            .returning(FundAccount.balance_fen)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def payment_by_key(self, key: str) -> FundPayment | None:
        query = select(FundPayment).where(FundPayment.idempotency_key == key)
        return (await self.session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()

    async def get_payment(self, payment_id: int) -> FundPayment | None:
        query = select(FundPayment).where(FundPayment.id == payment_id)
        return (await self.session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()

    async def add_refunded(self, payment_id: int, amount_fen: int) -> bool:
        """Count a refund against a succeeded payment if it stays within the amount paid."""
        stmt = (
            update(FundPayment)
            .where(
                FundPayment.id == payment_id,
                FundPayment.status == "succeeded",
                FundPayment.refunded_fen + amount_fen <= FundPayment.amount_fen,
            )
            .values(refunded_fen=FundPayment.refunded_fen + amount_fen)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(await self.session.execute(stmt), "rowcount", 0))

    async def refund_by_key(self, key: str) -> FundRefund | None:
        return await self.session.scalar(select(FundRefund).where(FundRefund.idempotency_key == key))

    async def deposit_by_key(self, key: str) -> FundEntry | None:
        return await self.session.scalar(select(FundEntry).where(FundEntry.idempotency_key == key))

    async def fund_ledger(self, patient_id: int, before_id: int | None, limit: int) -> Sequence[FundEntry]:
        query = select(FundEntry).where(FundEntry.patient_id == patient_id).order_by(FundEntry.id.desc())
        if before_id is not None:
            query = query.where(FundEntry.id < before_id)
        return (await self.session.scalars(query.limit(limit))).all()

    async def fund_ledger_sum(self, patient_id: int) -> int:
        query = select(func.coalesce(func.sum(FundEntry.delta_fen), 0)).where(FundEntry.patient_id == patient_id)
        return int(await self.session.scalar(query) or 0)


_LOOKUPS: dict[tuple[str, str], Select[Any]] = {}


def _lookup_statement(dialect: str, kind: str) -> Select[Any]:
    family = _json_rows(
        dialect,
        FamilyMember,
        {
            "id": FamilyMember.id,
            "name": FamilyMember.name,
            "relation": FamilyMember.relation,
            "mobile": FamilyMember.mobile,
            "gender": FamilyMember.gender,
            "birth_date": FamilyMember.birth_date,
        },
        FamilyMember.patient_id == Patient.id,
    )
    recent_visit_ids = (
        select(MedicalRecord.id)
        .where(MedicalRecord.patient_id == Patient.id)
        .order_by(MedicalRecord.visit_date.desc(), MedicalRecord.id.desc())
        .limit(bindparam("recent", type_=Integer))
        .correlate(Patient)
    )
    visits = _json_rows(
        dialect,
        MedicalRecord,
        {
            "id": MedicalRecord.id,
            "visit_date": MedicalRecord.visit_date,
            "person_name": MedicalRecord.person_name,
            "diagnosis": MedicalRecord.diagnosis,
            "doctor_name": MedicalRecord.doctor_name,
            "clinic_name": MedicalRecord.clinic_name,
            "next_visit_on": MedicalRecord.next_visit_on,
        },
        MedicalRecord.id.in_(recent_visit_ids),
    )
    recent_order_ids = (
        select(OrderCompletion.id)
        .where(OrderCompletion.patient_id == Patient.id)
        .order_by(OrderCompletion.completed_at.desc(), OrderCompletion.id.desc())
        .limit(bindparam("recent", type_=Integer))
        .correlate(Patient)
    )
    orders = _json_rows(
        dialect,
        OrderCompletion,
        {
            "order_id": OrderCompletion.order_id,
            "amount_fen": OrderCompletion.amount_fen,
            "completed_at": OrderCompletion.completed_at,
        },
        OrderCompletion.id.in_(recent_order_ids),
    )
    query = (
        select(Patient, MemberLevel, LevelScheme.code, FundAccount.balance_fen, family, visits, orders)
        .outerjoin(MemberLevel, MemberLevel.id == Patient.level_id)
        .outerjoin(LevelScheme, LevelScheme.id == MemberLevel.scheme_id)
        .outerjoin(FundAccount, FundAccount.patient_id == Patient.id)
        .where(Patient.mobile == bindparam("mobile", type_=String))
    )
    own = Patient.owner_work_number == bindparam("work_number", type_=String)
    if kind == "own":
        query = query.where(own)
    elif kind == "groups":
        members = select(AgentGroup.work_number).where(
            AgentGroup.group_id.in_(bindparam("groups", type_=String, expanding=True))
        )
        query = query.where(or_(own, Patient.owner_work_number.in_(members)))
    return query


def _json_rows(dialect: str, entity: Any, fields: dict[str, Any], where: ColumnElement[bool]) -> Any:
    pairs: list[Any] = []
    for key, column in fields.items():
        pairs += [literal_column(f"'{key}'"), column]
    if dialect == "sqlite":
        agg = func.json_group_array(func.json_object(*pairs))
    else:
        agg = func.json_agg(func.json_build_object(*pairs))
    subquery = select(agg).select_from(entity).where(where).correlate(Patient).scalar_subquery()
    return type_coerce(subquery, JSON)


def _bucket(value: Any, thresholds: Sequence[int]) -> Any:
    ordered = sorted(thresholds)
    whens = [(value >= t, i) for i, t in reversed(list(enumerate(ordered)))]
    return case(*whens, else_=-1)
