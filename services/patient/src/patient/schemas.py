from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from patient.crypto import normalize_id_number
from patient.phones import normalize_mobile, normalize_phone

T = TypeVar("T")

Gender = Literal["male", "female", "unknown"]
PopulationGroup = Literal["child", "teen", "adult", "elderly"]
SourceChannel = Literal["online_ad", "print_ad", "referral", "wechat_media", "walk_in", "other"]
Relation = Literal["spouse", "parent", "child", "sibling", "grandparent", "grandchild", "relative", "friend", "other"]
ConditionKind = Literal["illness", "allergy"]
CardBenefit = Literal["priority_refund", "priority_booking", "free_yearly_expert_consultation", "therapy_discount"]
VisitKind = Literal["first", "return"]

Mobile = Annotated[str, StringConstraints(max_length=30), AfterValidator(normalize_mobile)]
Phone = Annotated[str, StringConstraints(max_length=30), AfterValidator(normalize_phone)]
IdNumber = Annotated[str, StringConstraints(max_length=30), AfterValidator(normalize_id_number)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
QQ = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[1-9]\d{4,11}$")]
Colour = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^#[0-9A-Fa-f]{6}$")]
StoreCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9]{1,10}$"), AfterValidator(str.upper)
]
CardNumber = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9-]{1,30}$")]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9_-]{1,40}$")]
DbId = Annotated[int, Field(ge=1, le=2**63 - 1)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=8, max_length=100, pattern=r"^[\x21-\x7e]+$")]


Text50 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)]
Text64 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
Text100 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Text300 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Text2000 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Text4000 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL refuses NUL in text; say so as bad input, not as a 500.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains a NUL character")
        return value


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# --- people -------------------------------------------------------------------------------


class PersonCreate(StrictModel):
    name: Name
    nickname: Text100 | None = None
    gender: Gender = "unknown"
    backup_mobile: Mobile | None = None
    id_number: IdNumber | None = None
    birth_date: date | None = None
    population_group: PopulationGroup | None = None
    occupation: Text100 | None = None
    income_level: Text50 | None = None
    qq: QQ | None = None
    wechat_id: Text64 | None = None
    other_phone: Phone | None = None
    email: Email | None = None
    usual_address: Text300 | None = None
    home_address: Text300 | None = None
    office_address: Text300 | None = None
    province: Text50 | None = None
    city: Text50 | None = None
    preferences: Text2000 | None = None
    medical_insurance: Text200 | None = None
    past_illness_ids: list[DbId] = Field(default_factory=list, max_length=50)
    drug_allergy_ids: list[DbId] = Field(default_factory=list, max_length=50)


class PersonUpdate(StrictModel):
    """Only the fields sent change; `null` clears an optional field."""

    name: Name | None = None
    nickname: Text100 | None = None
    gender: Gender | None = None
    backup_mobile: Mobile | None = None
    id_number: IdNumber | None = None
    birth_date: date | None = None
    population_group: PopulationGroup | None = None
    occupation: Text100 | None = None
    income_level: Text50 | None = None
    qq: QQ | None = None
    wechat_id: Text64 | None = None
    other_phone: Phone | None = None
    email: Email | None = None
    usual_address: Text300 | None = None
    home_address: Text300 | None = None
    office_address: Text300 | None = None
    province: Text50 | None = None
    city: Text50 | None = None
    preferences: Text2000 | None = None
    medical_insurance: Text200 | None = None
    past_illness_ids: list[DbId] | None = Field(default=None, max_length=50)
    drug_allergy_ids: list[DbId] | None = Field(default=None, max_length=50)


def _check_referral(channel: str | None, mobile: str | None, name: str | None) -> None:
    if channel == "referral" and not (mobile or name):
        raise ValueError("a friend referral needs the referrer's mobile or name")


def _check_card(store_code: str | None, card_number: str | None) -> None:
    if (store_code is None) != (card_number is None):
        raise ValueError("store_code and clinic_card_number go together")


class PatientCreate(PersonCreate):
    mobile: Mobile
    source_channel: SourceChannel
    source_detail: Text200 | None = None
    referrer_mobile: Mobile | None = None
    referrer_name: Text100 | None = None
    importance_text: Text50 | None = None
    importance_colour: Colour | None = None
    store_code: StoreCode | None = None
    clinic_card_number: CardNumber | None = None
    level_scheme_code: Code | None = None

    @model_validator(mode="after")
    def _rules(self) -> PatientCreate:
        _check_referral(self.source_channel, self.referrer_mobile, self.referrer_name)
        _check_card(self.store_code, self.clinic_card_number)
        return self


class PatientUpdate(PersonUpdate):
    source_channel: SourceChannel | None = None
    source_detail: Text200 | None = None
    referrer_mobile: Mobile | None = None
    referrer_name: Text100 | None = None
    importance_text: Text50 | None = None
    importance_colour: Colour | None = None
    store_code: StoreCode | None = None
    clinic_card_number: CardNumber | None = None
    level_scheme_code: Code | None = None

    @model_validator(mode="after")
    def _rules(self) -> PatientUpdate:
        if "source_channel" in self.model_fields_set:
            _check_referral(self.source_channel, self.referrer_mobile, self.referrer_name)
        if {"store_code", "clinic_card_number"} & self.model_fields_set:
            _check_card(self.store_code, self.clinic_card_number)
        return self


class ConditionRef(BaseModel):
    id: int
    name: str


class PersonRead(BaseModel):
    name: str
    nickname: str | None
    gender: str
    backup_mobile: str | None
    id_number: str | None = Field(description="masked unless the caller may read it (patient.id_number.read)")
    id_number_masked: bool
    birth_date: date | None
    population_group: str | None
    occupation: str | None
    income_level: str | None
    qq: str | None
    wechat_id: str | None
    other_phone: str | None
    email: str | None
    usual_address: str | None
    home_address: str | None
    office_address: str | None
    province: str | None
    city: str | None
    preferences: str | None
    medical_insurance: str | None
    past_illnesses: list[ConditionRef]
    drug_allergies: list[ConditionRef]


class FamilyMemberCreate(PersonCreate):
    relation: Relation
    mobile: Mobile | None = None


class FamilyMemberUpdate(PersonUpdate):
    relation: Relation | None = None
    mobile: Mobile | None = None


class FamilyMemberRead(PersonRead):
    id: int
    patient_id: int
    relation: str
    mobile: str | None


class OwnerRead(BaseModel):
    user_id: str
    work_number: str
    assigned_at: datetime | None


class LevelRef(BaseModel):
    id: int
    scheme_code: str
    code: str
    name: str
    rank: int
    treatment_price_percent: int


class PatientRead(PersonRead):
    id: int
    patient_number: str | None
    mobile: str
    store_code: str | None
    clinic_card_number: str | None
    source_channel: str
    source_detail: str | None
    referrer_mobile: str | None
    referrer_name: str | None
    referrer_patient_id: int | None
    importance_text: str | None
    importance_colour: str | None
    level: LevelRef | None
    cumulative_order_amount_fen: int
    cumulative_order_count: int
    points_balance: int
    fund_balance_fen: int
    owner: OwnerRead | None
    registered_at: datetime
    registered_by: str
    updated_at: datetime
    family: list[FamilyMemberRead]


class PatientSummary(BaseModel):
    id: int
    patient_number: str | None
    mobile: str
    name: str
    gender: str
    city: str | None
    importance_text: str | None
    importance_colour: str | None
    level_code: str | None
    owner_work_number: str | None
    registered_at: datetime


# --- screen pop ---------------------------------------------------------------------------


class FamilyBrief(BaseModel):
    id: int
    name: str
    relation: str
    mobile: str | None
    gender: str
    birth_date: date | None


class VisitBrief(BaseModel):
    id: int
    visit_date: date
    person_name: str
    diagnosis: str
    doctor_name: str | None
    clinic_name: str | None
    next_visit_on: date | None


class OrderBrief(BaseModel):
    order_id: str
    amount_fen: int
    completed_at: datetime


class PatientLookup(BaseModel):
    """What the screen pop shows for a caller (CORE-8, WO-2): one indexed query."""

    id: int
    patient_number: str | None
    mobile: str
    name: str
    nickname: str | None
    gender: str
    birth_date: date | None
    city: str | None
    importance_text: str | None
    importance_colour: str | None
    preferences: str | None
    level: LevelRef | None
    points_balance: int
    fund_balance_fen: int
    owner: OwnerRead | None
    family: list[FamilyBrief]
    recent_visits: list[VisitBrief]
    recent_orders: list[OrderBrief]


# --- medical records ----------------------------------------------------------------------


class MedicalRecordCreate(StrictModel):
    family_member_id: DbId | None = None
    visit_date: date
    symptoms: Text4000 = ""
    diagnosis: Text4000 = ""
    treatment_plan: Text4000 = ""
    order_id: Text64 | None = None
    treatment_schedule: Text4000 = ""
    next_visit_on: date | None = None
    visit_kind: VisitKind = "first"
    doctor_name: Text100 | None = None
    clinic_name: Text100 | None = None


class MedicalRecordUpdate(StrictModel):
    symptoms: Text4000 | None = None
    diagnosis: Text4000 | None = None
    treatment_plan: Text4000 | None = None
    order_id: Text64 | None = None
    treatment_schedule: Text4000 | None = None
    next_visit_on: date | None = None
    visit_kind: VisitKind | None = None
    doctor_name: Text100 | None = None
    clinic_name: Text100 | None = None


class MedicalRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    patient_id: int
    family_member_id: int | None
    visit_date: date
    person_name: str
    symptoms: str
    diagnosis: str
    treatment_plan: str
    order_id: str | None
    treatment_schedule: str
    next_visit_on: date | None
    visit_kind: str
    doctor_name: str | None
    clinic_name: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


# --- managed lists ------------------------------------------------------------------------


class ConditionCreate(StrictModel):
    kind: ConditionKind
    name: Name
    sort_order: int = Field(default=0, ge=-1_000_000, le=1_000_000)


class ConditionUpdate(StrictModel):
    name: Name | None = None
    active: bool | None = None
    sort_order: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)


class ConditionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    active: bool
    sort_order: int


# --- ownership ----------------------------------------------------------------------------


class OwnerAssign(StrictModel):
    work_number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    user_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None = None
    reason: Text300 = ""


class OwnershipChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    patient_id: int
    kind: str
    from_user_id: str | None
    from_work_number: str | None
    to_user_id: str
    to_work_number: str
    changed_by: str | None
    reason: str
    changed_at: datetime


class OwnerEntry(BaseModel):
    mobile: str
    owner_user_id: str
    owner_work_number: str


# --- levels -------------------------------------------------------------------------------


class MemberLevelCreate(StrictModel):
    code: Code
    name: Name
    rank: int = Field(ge=0, le=1000)
    treatment_price_percent: int = Field(default=100, ge=1, le=100)
    min_order_amount_fen: int | None = Field(default=None, ge=0, le=10**15)
    min_order_count: int | None = Field(default=None, ge=0, le=1_000_000)
    benefits: Text2000 = ""


class MemberLevelUpdate(StrictModel):
    name: Name | None = None
    treatment_price_percent: int | None = Field(default=None, ge=1, le=100)
    min_order_amount_fen: int | None = Field(default=None, ge=0, le=10**15)
    min_order_count: int | None = Field(default=None, ge=0, le=1_000_000)
    benefits: Text2000 | None = None


class MemberLevelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    scheme_id: int
    code: str
    name: str
    rank: int
    treatment_price_percent: int
    min_order_amount_fen: int | None
    min_order_count: int | None
    benefits: str


class LevelSchemeCreate(StrictModel):
    code: Code
    name: Name
    description: Text2000 = ""
    is_default: bool = False
    levels: list[MemberLevelCreate] = Field(min_length=1, max_length=50)


class LevelSchemeRead(BaseModel):
    id: int
    code: str
    name: str
    description: str
    is_default: bool
    levels: list[MemberLevelRead]


# --- points -------------------------------------------------------------------------------


class PointsEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    delta: int
    balance_after: int
    kind: str
    order_id: str | None
    redemption_id: int | None
    created_at: datetime


class RewardProductCreate(StrictModel):
    name: Name
    points_cost: int = Field(gt=0, le=10**12)
    stock: int | None = Field(default=None, ge=0, le=1_000_000_000)
    min_yearly_visits: int | None = Field(default=None, ge=1, le=10_000)


class RewardProductUpdate(StrictModel):
    name: Name | None = None
    points_cost: int | None = Field(default=None, gt=0, le=10**12)
    stock: int | None = Field(default=None, ge=0, le=1_000_000_000)
    min_yearly_visits: int | None = Field(default=None, ge=1, le=10_000)
    active: bool | None = None


class RewardProductRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    points_cost: int
    stock: int | None
    min_yearly_visits: int | None
    active: bool


class RedemptionCreate(StrictModel):
    product_id: DbId
    quantity: int = Field(default=1, ge=1, le=100)


class RedemptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    patient_id: int
    product_id: int
    quantity: int
    points_spent: int
    created_by: str
    created_at: datetime
    points_balance: int


class VisitBucket(BaseModel):
    min_visits: int
    max_visits: int | None
    patients: int
    amount_fen: int


class AmountBucket(BaseModel):
    min_amount_fen: int
    below_amount_fen: int | None
    patients: int


class CombinedBucket(BaseModel):
    min_visits: int
    max_visits: int | None
    min_amount_fen: int
    below_amount_fen: int | None
    patients: int


class YearlyStatistics(BaseModel):
    year: int
    patients_with_orders: int
    by_visits: list[VisitBucket]
    by_amount: list[AmountBucket]
    by_visits_and_amount: list[CombinedBucket]
    redeemable_products: list[RewardProductRead]


# --- cards --------------------------------------------------------------------------------


class CardTypeCreate(StrictModel):
    code: Code
    name: Name
    benefits: list[CardBenefit] = Field(default_factory=list, max_length=10)
    therapy_price_percent: int = Field(default=100, ge=1, le=100)
    validity_days: int | None = Field(default=None, ge=1, le=36500)


class CardTypeUpdate(StrictModel):
    name: Name | None = None
    benefits: list[CardBenefit] | None = Field(default=None, max_length=10)
    therapy_price_percent: int | None = Field(default=None, ge=1, le=100)
    validity_days: int | None = Field(default=None, ge=1, le=36500)
    active: bool | None = None


class CardTypeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    benefits: list[str]
    therapy_price_percent: int
    validity_days: int | None
    active: bool


class MemberCardCreate(StrictModel):
    card_type_code: Code
    card_number: CardNumber
    issued_on: date | None = None


class MemberCardUpdate(StrictModel):
    status: Literal["active", "cancelled"]


class MemberCardRead(BaseModel):
    id: int
    patient_id: int
    card_number: str
    card_type: CardTypeRead
    issued_on: date
    valid_until: date | None
    status: str
    valid_now: bool


# --- funds --------------------------------------------------------------------------------


class DepositCreate(StrictModel):
    amount_fen: int = Field(gt=0, le=100_000_000_00)
    note: Text300 = ""


class PaymentCreate(StrictModel):
    amount_fen: int = Field(gt=0, le=100_000_000_00)
    reference: Text100 = ""
    description: Text300 = ""


class PaymentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    patient_id: int
    status: Literal["succeeded", "failed"]
    failure_reason: str | None
    amount_fen: int
    refunded_fen: int
    balance_after_fen: int | None
    reference: str
    description: str
    idempotency_key: str
    created_by: str
    created_at: datetime


class RefundCreate(StrictModel):
    amount_fen: int = Field(gt=0, le=100_000_000_00)
    reason: Text300 = ""


class RefundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    payment_id: int
    amount_fen: int
    balance_after_fen: int
    reason: str
    idempotency_key: str
    created_by: str
    created_at: datetime


class FundEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    delta_fen: int
    balance_after_fen: int
    payment_id: int | None
    refund_id: int | None
    note: str
    created_by: str
    created_at: datetime


class FundAccountRead(BaseModel):
    patient_id: int
    balance_fen: int
    updated_at: datetime | None
