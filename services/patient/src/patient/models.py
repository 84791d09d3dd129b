from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from callcenter_common.outbox import BusTables

BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in and out, also on SQLite, which forgets the zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


bus_tables = BusTables(Base.metadata)


class Condition(Base):
    """An entry of the managed lists of past illnesses and drug allergies (WO-3.1)."""

    __tablename__ = "conditions"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_conditions_kind_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # illness | allergy
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


patient_conditions = Table(
    "patient_conditions",
    Base.metadata,
    Column("patient_id", BigId, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True),
    Column("condition_id", BigId, ForeignKey("conditions.id"), primary_key=True),
)

family_member_conditions = Table(
    "family_member_conditions",
    Base.metadata,
    Column("family_member_id", BigId, ForeignKey("family_members.id", ondelete="CASCADE"), primary_key=True),
    Column("condition_id", BigId, ForeignKey("conditions.id"), primary_key=True),
)


class LevelScheme(Base):
    """One of the member-level schemes (WO-3.2); a patient belongs to one."""

    __tablename__ = "level_schemes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)

    levels: Mapped[list[MemberLevel]] = relationship(back_populates="scheme", lazy="raise", order_by="MemberLevel.rank")


class MemberLevel(Base):
    __tablename__ = "member_levels"
    __table_args__ = (
        UniqueConstraint("scheme_id", "code", name="uq_member_levels_scheme_code"),
        UniqueConstraint("scheme_id", "rank", name="uq_member_levels_scheme_rank"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scheme_id: Mapped[int] = mapped_column(ForeignKey("level_schemes.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int] = mapped_column(Integer)
    # Share of the list price a member of this level pays for treatment: 100 = full, 88 = 12 % off.
    treatment_price_percent: Mapped[int] = mapped_column(Integer, default=100)
    min_order_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    min_order_count: Mapped[int | None] = mapped_column(Integer)
    benefits: Mapped[str] = mapped_column(Text, default="")

    scheme: Mapped[LevelScheme] = relationship(back_populates="levels", lazy="raise")


class Agent(Base):
    """Who holds a work number, and their groups: for team-lead visibility (WO-3.3)."""

    __tablename__ = "agents"

    work_number: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class AgentGroup(Base):
    __tablename__ = "agent_groups"
    __table_args__ = (Index("ix_agent_groups_group_id", "group_id"),)

    work_number: Mapped[str] = mapped_column(ForeignKey("agents.work_number", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class PersonFields:
    """What a patient and a family member both carry (WO-3.1)."""

    name: Mapped[str] = mapped_column(String(100))
    nickname: Mapped[str | None] = mapped_column(String(100))
    gender: Mapped[str] = mapped_column(String(10), default="unknown")
    backup_mobile: Mapped[str | None] = mapped_column(String(20))
    id_number_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_masked: Mapped[str | None] = mapped_column(String(24))
    birth_date: Mapped[date | None] = mapped_column(Date)
    population_group: Mapped[str | None] = mapped_column(String(10))
    occupation: Mapped[str | None] = mapped_column(String(100))
    income_level: Mapped[str | None] = mapped_column(String(50))
    qq: Mapped[str | None] = mapped_column(String(20))
    wechat_id: Mapped[str | None] = mapped_column(String(64))
    other_phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    usual_address: Mapped[str | None] = mapped_column(String(300))
    home_address: Mapped[str | None] = mapped_column(String(300))
    office_address: Mapped[str | None] = mapped_column(String(300))
    province: Mapped[str | None] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(50))
    preferences: Mapped[str | None] = mapped_column(Text)
    medical_insurance: Mapped[str | None] = mapped_column(String(200))


class Patient(PersonFields, Base):
    __tablename__ = "patients"
    __table_args__ = (
        Index("ix_patients_owner_work_number", "owner_work_number", "id"),
        Index("ix_patients_name", "name"),
        CheckConstraint("points_balance >= 0", name="ck_patients_points_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mobile: Mapped[str] = mapped_column(String(20), unique=True)
    patient_number: Mapped[str | None] = mapped_column(String(40), unique=True)
    store_code: Mapped[str | None] = mapped_column(String(10))
    clinic_card_number: Mapped[str | None] = mapped_column(String(30))
    source_channel: Mapped[str] = mapped_column(String(20))
    source_detail: Mapped[str | None] = mapped_column(String(200))
    referrer_mobile: Mapped[str | None] = mapped_column(String(20))
    referrer_name: Mapped[str | None] = mapped_column(String(100))
    referrer_patient_id: Mapped[int | None] = mapped_column(BigInteger)
    importance_text: Mapped[str | None] = mapped_column(String(50))
    importance_colour: Mapped[str | None] = mapped_column(String(7))
    level_scheme_id: Mapped[int | None] = mapped_column(ForeignKey("level_schemes.id"))
    level_id: Mapped[int | None] = mapped_column(ForeignKey("member_levels.id"))
    cumulative_order_amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    cumulative_order_count: Mapped[int] = mapped_column(Integer, default=0)
    points_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    owner_user_id: Mapped[str | None] = mapped_column(String(64))
    owner_work_number: Mapped[str | None] = mapped_column(String(40))
    owner_assigned_at: Mapped[datetime | None]
    registered_at: Mapped[datetime]
    registered_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]

    level: Mapped[MemberLevel | None] = relationship(lazy="raise")
    conditions: Mapped[list[Condition]] = relationship(
        secondary=patient_conditions, lazy="raise", order_by=Condition.id
    )
    family: Mapped[list[FamilyMember]] = relationship(
        back_populates="patient", lazy="raise", order_by="FamilyMember.id"
    )


class FamilyMember(PersonFields, Base):
    """A family member the patient calls for: same personal fields, no membership (WO-3.1)."""

    __tablename__ = "family_members"
    __table_args__ = (Index("ix_family_members_patient_id", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    relation: Mapped[str] = mapped_column(String(20))
    mobile: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    patient: Mapped[Patient] = relationship(back_populates="family", lazy="raise")
    conditions: Mapped[list[Condition]] = relationship(
        secondary=family_member_conditions, lazy="raise", order_by=Condition.id
    )


class MedicalRecord(Base):
    __tablename__ = "medical_records"
    __table_args__ = (Index("ix_medical_records_patient_visit", "patient_id", "visit_date", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    family_member_id: Mapped[int | None] = mapped_column(ForeignKey("family_members.id", ondelete="CASCADE"))
    visit_date: Mapped[date] = mapped_column(Date)
    person_name: Mapped[str] = mapped_column(String(100))
    symptoms: Mapped[str] = mapped_column(Text, default="")
    diagnosis: Mapped[str] = mapped_column(Text, default="")
    treatment_plan: Mapped[str] = mapped_column(Text, default="")
    order_id: Mapped[str | None] = mapped_column(String(64))
    treatment_schedule: Mapped[str] = mapped_column(Text, default="")
    next_visit_on: Mapped[date | None] = mapped_column(Date)
    visit_kind: Mapped[str] = mapped_column(String(10), default="first")  # first | return
    doctor_name: Mapped[str | None] = mapped_column(String(100))
    clinic_name: Mapped[str | None] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FirstContact(Base):
    """The first agent who answered a mobile that is not a patient yet (WO-3.4)."""

    __tablename__ = "first_contacts"

    mobile: Mapped[str] = mapped_column(String(20), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    work_number: Mapped[str] = mapped_column(String(40))
    call_id: Mapped[str] = mapped_column(String(64))
    answered_at: Mapped[datetime]


class OwnershipChange(Base):
    __tablename__ = "ownership_changes"
    __table_args__ = (Index("ix_ownership_changes_patient", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    from_user_id: Mapped[str | None] = mapped_column(String(64))
    from_work_number: Mapped[str | None] = mapped_column(String(40))
    to_user_id: Mapped[str] = mapped_column(String(64))
    to_work_number: Mapped[str] = mapped_column(String(40))
    changed_by: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(300), default="")
    changed_at: Mapped[datetime]


class AccessLog(Base):
    """Who read a full patient record, and when (personal data)."""

    __tablename__ = "patient_access_log"
    __table_args__ = (Index("ix_patient_access_log_patient", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    work_number: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(30))  # read | read_id_number
    at: Mapped[datetime]


class OrderCompletion(Base):
    """A completed order of a patient, from `order.completed` (WO-3.2, WO-3.5)."""

    __tablename__ = "order_completions"
    __table_args__ = (
        Index("ix_order_completions_patient", "patient_id", "completed_at"),
        Index("ix_order_completions_completed_at", "completed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    points_earned: Mapped[int] = mapped_column(BigInteger)
    completed_at: Mapped[datetime]


class PointsEntry(Base):
    """Append-only points ledger (WO-3.5); points never expire."""

    __tablename__ = "points_ledger"
    __table_args__ = (Index("ix_points_ledger_patient", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))  # order | redemption
    order_id: Mapped[str | None] = mapped_column(String(64))
    redemption_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class RewardProduct(Base):
    __tablename__ = "reward_products"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    points_cost: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    min_yearly_visits: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    __table_args__ = (CheckConstraint("stock IS NULL OR stock >= 0", name="ck_reward_products_stock"),)


class Redemption(Base):
    __tablename__ = "redemptions"
    __table_args__ = (Index("ix_redemptions_patient", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("reward_products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    points_spent: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class CardType(Base):
    __tablename__ = "card_types"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    benefits: Mapped[list[str]] = mapped_column(JSON, default=list)
    therapy_price_percent: Mapped[int] = mapped_column(Integer, default=100)
    validity_days: Mapped[int | None] = mapped_column(Integer)  # None: never expires
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class MemberCard(Base):
    __tablename__ = "member_cards"
    __table_args__ = (Index("ix_member_cards_patient", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    card_type_id: Mapped[int] = mapped_column(ForeignKey("card_types.id"))
    card_number: Mapped[str] = mapped_column(String(40), unique=True)
    issued_on: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | cancelled
    created_at: Mapped[datetime]

    card_type: Mapped[CardType] = relationship(lazy="raise")


class FundAccount(Base):
    __tablename__ = "fund_accounts"
    __table_args__ = (CheckConstraint("balance_fen >= 0", name="ck_fund_accounts_balance_not_negative"),)

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]


class FundPayment(Base):
    __tablename__ = "fund_payments"
    __table_args__ = (
        Index("ix_fund_payments_patient", "patient_id", "id"),
        CheckConstraint("refunded_fen <= amount_fen", name="ck_fund_payments_refund_within_amount"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(100), default="")
    description: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20))  # succeeded | failed
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    balance_after_fen: Mapped[int | None] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class FundRefund(Base):
    __tablename__ = "fund_refunds"
    __table_args__ = (Index("ix_fund_refunds_payment", "payment_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("fund_payments.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(300), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class FundEntry(Base):
    """Append-only fund ledger: deposits, payments, refunds; sums to the balance (WO-3.7)."""

    __tablename__ = "fund_ledger"
    __table_args__ = (Index("ix_fund_ledger_patient", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # deposit | payment | refund
    delta_fen: Mapped[int] = mapped_column(BigInteger)
    balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    payment_id: Mapped[int | None] = mapped_column(BigInteger)
    refund_id: Mapped[int | None] = mapped_column(BigInteger)
    # Deposits are idempotent by this key; payments and refunds by their own tables' keys.
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    note: Mapped[str] = mapped_column(String(300), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
