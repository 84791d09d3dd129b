"""Business rules of the patient service (WO-3.1 … WO-3.7); no HTTP, no SQL strings."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter_common.auth import (
    ROLE_ADMIN,
    ROLE_AGENT,
    ROLE_DIRECTOR,
    ROLE_MANAGER,
    ROLE_SUPERVISOR,
    ROLE_TEAM_LEAD,
    SUPERVISING_ROLES,
    Principal,
)
from callcenter_common.clock import Clock, SystemClock
from callcenter_common.contracts.acd import CallAnswered
from callcenter_common.contracts.agent_state import AgentStateChanged
from callcenter_common.contracts.patient import OrderCompleted
from callcenter_common.pagination import encode_cursor
from callcenter_common.problems import ProblemError
from patient import schemas
from patient.config import PatientSettings
from patient.crypto import IdNumberCipher, mask_id_number
from patient.models import (
    CardType,
    Condition,
    FamilyMember,
    FundAccount,
    FundEntry,
    FundPayment,
    FundRefund,
    LevelScheme,
    MedicalRecord,
    MemberCard,
    MemberLevel,
    OwnershipChange,
    Patient,
    PersonFields,
    PointsEntry,
    Redemption,
    RewardProduct,
)
from patient.notifier import Notifier
from patient.phones import try_normalize_mobile
from patient.repository import LookupRow, PatientFilter, Repository, Scope

log = logging.getLogger("patient.service")

PERM_ID_NUMBER_READ = "patient.id_number.read"
PERM_READ_ALL = "patients.read_all"
PERM_READ_OWNERS = "patients.read_owners"
PERM_ADMIN = "patients.admin"
PERM_FUNDS_CHARGE = "patients.funds.charge"
PERM_FUNDS_DEPOSIT = "patients.funds.deposit"
PERM_FUNDS_REFUND = "patients.funds.refund"

OWNERSHIP_ROLES = (ROLE_SUPERVISOR, ROLE_MANAGER, ROLE_DIRECTOR, ROLE_ADMIN)
GROUP_ROLES = (ROLE_TEAM_LEAD, ROLE_MANAGER)

_PERSON_SCALARS = (
    "name",
    "nickname",
    "gender",
    "backup_mobile",
    "birth_date",
    "population_group",
    "occupation",
    "income_level",
    "qq",
    "wechat_id",
    "other_phone",
    "email",
    "usual_address",
    "home_address",
    "office_address",
    "province",
    "city",
    "preferences",
    "medical_insurance",
)
_PATIENT_SCALARS = (
    "source_channel",
    "source_detail",
    "referrer_mobile",
    "referrer_name",
    "importance_text",
    "importance_colour",
)


def scope_of(principal: Principal) -> Scope:
    """WO-3.3: supervisors and above see everyone, team leads and managers their groups, agents their own."""
    if principal.sees_everyone or principal.can(PERM_READ_ALL):
        return Scope(everyone=True, work_number=principal.work_number)
    if principal.has_role(*GROUP_ROLES):
        return Scope(everyone=False, work_number=principal.work_number, groups=principal.groups)
    return Scope(everyone=False, work_number=principal.work_number)


def _not_found() -> ProblemError:
    return ProblemError(404, "patient.not_found", "No such patient")


def _forbidden(detail: str) -> ProblemError:
    return ProblemError(403, "auth.forbidden", "Not allowed", detail=detail)


def _changes(data: BaseModel, required: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The fields a PATCH set; 422 naming a required one set to null (None: every field is required)."""
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and (required is None or name in required):
            raise _invalid(name, f"{name} cannot be null")
    return changes


def _invalid(field: str, detail: str, code: str = "request.invalid") -> ProblemError:
    return ProblemError(422, code, "The request is not valid", detail=detail, field=field)


def _fingerprint(**values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    payment: schemas.PaymentRead
    replayed: bool


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    refund: schemas.RefundRead
    replayed: bool


@dataclass(frozen=True, slots=True)
class DepositOutcome:
    entry: schemas.FundEntryRead
    replayed: bool


class PatientService:
    def __init__(
        self,
        settings: PatientSettings,
        cipher: IdNumberCipher,
        notifier: Notifier,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.cipher = cipher
        self.notifier = notifier
        self.clock: Clock = clock or SystemClock()

    def today(self) -> date:
        return self.clock.now().date()

    # --- registration and records (WO-3.1) ------------------------------------------------

    async def register(
        self, session: AsyncSession, principal: Principal, data: schemas.PatientCreate
    ) -> schemas.PatientRead:
        """Register a caller as a patient; the first agent who talked with them becomes the owner."""
        repo = Repository(session)
        now = self.clock.now()
        if await repo.patient_id_by_mobile(data.mobile) is not None:
            raise ProblemError(409, "patient.mobile_registered", "A patient with this mobile exists", field="mobile")
        patient_number = await self._patient_number(repo, data.store_code, data.clinic_card_number, None)
        self._check_birth_date(data.birth_date)
        patient = Patient(
            mobile=data.mobile,
            patient_number=patient_number,
            store_code=data.store_code,
            clinic_card_number=data.clinic_card_number,
            registered_at=now,
            registered_by=principal.user_id,
            updated_at=now,
            cumulative_order_amount_fen=0,
            cumulative_order_count=0,
            points_balance=0,
        )
        self._apply_person(
            patient, data.model_dump(include=set(_PERSON_SCALARS)), data.id_number, "id_number" in data.model_fields_set
        )
        for name in _PATIENT_SCALARS:
            setattr(patient, name, getattr(data, name))
        if data.referrer_mobile:
            patient.referrer_patient_id = await repo.patient_id_by_mobile(data.referrer_mobile)
        patient.conditions = await self._conditions(repo, data.past_illness_ids, data.drug_allergy_ids)
        scheme = await self._scheme(repo, data.level_scheme_code)
        if scheme is not None:
            patient.level_scheme_id = scheme.id
            level = _level_for(scheme.levels, 0, 0)
            patient.level_id = level.id if level else None
        patient.family = []
        repo.add(patient)
        await repo.flush()
        repo.add(FundAccount(patient_id=patient.id, balance_fen=0, updated_at=now))

        change = await self._initial_owner(repo, principal, patient, now)
        await self.notifier.patient_registered(session, patient)
        if change is not None:
            await self.notifier.owner_changed(session, patient.mobile, change)
        return await self.get(session, principal, patient.id, audit=False)

    async def _initial_owner(
        self, repo: Repository, principal: Principal, patient: Patient, now: datetime
    ) -> OwnershipChange | None:
        contact = await repo.take_first_contact(patient.mobile)
        if contact is not None:
            user_id, work_number, kind = contact.user_id, contact.work_number, "first_contact"
        elif principal.has_role(ROLE_AGENT) and principal.work_number:
            user_id, work_number, kind = principal.user_id, principal.work_number, "registration"
        else:
            return None
        if work_number == principal.work_number:
            # The owner's groups as their token says at assignment time (team-lead visibility).
            await repo.remember_agent(work_number, principal.user_id, principal.groups, now)
        patient.owner_user_id, patient.owner_work_number, patient.owner_assigned_at = user_id, work_number, now
        change = OwnershipChange(
            patient_id=patient.id,
            kind=kind,
            to_user_id=user_id,
            to_work_number=work_number,
            changed_by=None if kind == "first_contact" else principal.user_id,
            reason="",
            changed_at=now,
        )
        repo.add(change)
        await repo.flush()
        return change

    async def get(
        self, session: AsyncSession, principal: Principal, patient_id: int, *, audit: bool = True
    ) -> schemas.PatientRead:
        """The full record; every read is logged (who, which patient, when)."""
        repo = Repository(session)
        patient = await repo.get_patient(patient_id, scope_of(principal), details=True)
        if patient is None:
            raise _not_found()
        reveal = principal.can(PERM_ID_NUMBER_READ)
        if audit:
            now = self.clock.now()
            await repo.log_access(patient.id, principal.user_id, principal.work_number, "read", now)
            revealed = patient.id_number_encrypted is not None or any(
                m.id_number_encrypted is not None for m in patient.family
            )
            if reveal and revealed:
                await repo.log_access(patient.id, principal.user_id, principal.work_number, "read_id_number", now)
        fund_balance = await repo.fund_balance(patient.id)
        scheme_code = await repo.scheme_code(patient.level.scheme_id) if patient.level else ""
        return schemas.PatientRead(
            **self._person_read(patient, reveal),
            id=patient.id,
            patient_number=patient.patient_number,
            mobile=patient.mobile,
            store_code=patient.store_code,
            clinic_card_number=patient.clinic_card_number,
            source_channel=patient.source_channel,
            source_detail=patient.source_detail,
            referrer_mobile=patient.referrer_mobile,
            referrer_name=patient.referrer_name,
            referrer_patient_id=patient.referrer_patient_id,
            importance_text=patient.importance_text,
            importance_colour=patient.importance_colour,
            level=_level_ref(patient.level, scheme_code),
            cumulative_order_amount_fen=patient.cumulative_order_amount_fen,
            cumulative_order_count=patient.cumulative_order_count,
            points_balance=patient.points_balance,
            fund_balance_fen=fund_balance,
            owner=_owner(patient.owner_user_id, patient.owner_work_number, patient.owner_assigned_at),
            registered_at=patient.registered_at,
            registered_by=patient.registered_by,
            updated_at=patient.updated_at,
            family=[self._family_read(m, reveal) for m in patient.family],
        )

    async def update(
        self, session: AsyncSession, principal: Principal, patient_id: int, data: schemas.PatientUpdate
    ) -> schemas.PatientRead:
        """Change the fields sent; the mobile is the key and does not change."""
        repo = Repository(session)
        patient = await repo.get_patient(patient_id, scope_of(principal), details=True)
        if patient is None:
            raise _not_found()
        sent = data.model_fields_set
        now = self.clock.now()
        if "name" in sent and data.name is None:
            raise _invalid("name", "name cannot be empty")
        if "source_channel" in sent and data.source_channel is None:
            raise _invalid("source_channel", "source_channel cannot be empty")
        if "gender" in sent and data.gender is None:
            raise _invalid("gender", "gender cannot be empty")
        self._check_birth_date(data.birth_date)
        self._apply_person(
            patient, data.model_dump(include=set(_PERSON_SCALARS) & sent), data.id_number, "id_number" in sent
        )
        for name in _PATIENT_SCALARS:
            if name in sent:
                setattr(patient, name, getattr(data, name))
        if patient.source_channel == "referral" and not (patient.referrer_mobile or patient.referrer_name):
            raise _invalid("referrer_mobile", "a friend referral needs the referrer's mobile or name")
        if "referrer_mobile" in sent:
            patient.referrer_patient_id = (
                await repo.patient_id_by_mobile(data.referrer_mobile) if data.referrer_mobile else None
            )
        if {"store_code", "clinic_card_number"} & sent:
            patient.patient_number = await self._patient_number(
                repo, data.store_code, data.clinic_card_number, patient.id
            )
            patient.store_code, patient.clinic_card_number = data.store_code, data.clinic_card_number
        if "past_illness_ids" in sent or "drug_allergy_ids" in sent:
            illnesses = data.past_illness_ids if "past_illness_ids" in sent else _ids(patient.conditions, "illness")
            allergies = data.drug_allergy_ids if "drug_allergy_ids" in sent else _ids(patient.conditions, "allergy")
            patient.conditions = await self._conditions(repo, illnesses or [], allergies or [])
        if "level_scheme_code" in sent:
            await self._change_scheme(session, repo, patient, data.level_scheme_code, now)
        patient.updated_at = now
        await repo.flush()
        return await self.get(session, principal, patient.id, audit=False)

    async def list_patients(
        self,
        session: AsyncSession,
        principal: Principal,
        filters: PatientFilter,
        after_id: int | None,
        limit: int,
    ) -> schemas.Page[schemas.PatientSummary]:
        """Patients the caller may see (WO-3.3), by id."""
        rows = await Repository(session).list_patients(scope_of(principal), filters, after_id, limit + 1)
        items = [
            schemas.PatientSummary(
                id=p.id,
                patient_number=p.patient_number,
                mobile=p.mobile,
                name=p.name,
                gender=p.gender,
                city=p.city,
                importance_text=p.importance_text,
                importance_colour=p.importance_colour,
                level_code=level_code,
                owner_work_number=p.owner_work_number,
                registered_at=p.registered_at,
            )
            for p, level_code in rows[:limit]
        ]
        next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit and items else None
        return schemas.Page(items=items, next_cursor=next_cursor)

    async def lookup_by_mobile(self, session: AsyncSession, principal: Principal, mobile: str) -> schemas.PatientLookup:
        """Screen pop: patient, family, owner, level and recent history in one indexed query."""
        row = await Repository(session).lookup_by_mobile(mobile, scope_of(principal), self.settings.lookup_recent_items)
        if row is None:
            raise _not_found()
        return _lookup(row)

    async def access_log(self, session: AsyncSession, principal: Principal, patient_id: int) -> list[dict[str, Any]]:
        """Who read the full record of a patient, and when."""
        self._require_admin(principal)
        repo = Repository(session)
        if await repo.get_patient(patient_id, scope_of(principal)) is None:
            raise _not_found()
        return [
            {"user_id": a.user_id, "work_number": a.work_number, "action": a.action, "at": a.at}
            for a in await repo.access_log(patient_id)
        ]

    # --- family -------------------------------------------------------------------------

    async def add_family_member(
        self, session: AsyncSession, principal: Principal, patient_id: int, data: schemas.FamilyMemberCreate
    ) -> schemas.FamilyMemberRead:
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        self._check_birth_date(data.birth_date)
        now = self.clock.now()
        member = FamilyMember(
            patient_id=patient_id, relation=data.relation, mobile=data.mobile, created_at=now, updated_at=now
        )
        self._apply_person(
            member, data.model_dump(include=set(_PERSON_SCALARS)), data.id_number, "id_number" in data.model_fields_set
        )
        member.conditions = await self._conditions(repo, data.past_illness_ids, data.drug_allergy_ids)
        repo.add(member)
        await repo.flush()
        return self._family_read(member, principal.can(PERM_ID_NUMBER_READ))

    async def list_family(
        self, session: AsyncSession, principal: Principal, patient_id: int
    ) -> list[schemas.FamilyMemberRead]:
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        reveal = principal.can(PERM_ID_NUMBER_READ)
        return [self._family_read(m, reveal) for m in await repo.list_family(patient_id)]

    async def update_family_member(
        self,
        session: AsyncSession,
        principal: Principal,
        patient_id: int,
        member_id: int,
        data: schemas.FamilyMemberUpdate,
    ) -> schemas.FamilyMemberRead:
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        member = await repo.get_family_member(patient_id, member_id)
        if member is None:
            raise ProblemError(404, "patient.family_member_not_found", "No such family member")
        sent = data.model_fields_set
        for required in ("name", "gender", "relation"):
            if required in sent and getattr(data, required) is None:
                raise _invalid(required, f"{required} cannot be empty")
        self._check_birth_date(data.birth_date)
        self._apply_person(
            member, data.model_dump(include=set(_PERSON_SCALARS) & sent), data.id_number, "id_number" in sent
        )
        if "relation" in sent and data.relation is not None:
            member.relation = data.relation
        if "mobile" in sent:
            member.mobile = data.mobile
        if "past_illness_ids" in sent or "drug_allergy_ids" in sent:
            illnesses = data.past_illness_ids if "past_illness_ids" in sent else _ids(member.conditions, "illness")
            allergies = data.drug_allergy_ids if "drug_allergy_ids" in sent else _ids(member.conditions, "allergy")
            member.conditions = await self._conditions(repo, illnesses or [], allergies or [])
        member.updated_at = self.clock.now()
        await repo.flush()
        return self._family_read(member, principal.can(PERM_ID_NUMBER_READ))

    async def remove_family_member(
        self, session: AsyncSession, principal: Principal, patient_id: int, member_id: int
    ) -> None:
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        member = await repo.get_family_member(patient_id, member_id)
        if member is None:
            raise ProblemError(404, "patient.family_member_not_found", "No such family member")
        await repo.delete_family_member(member)

    # --- medical records ------------------------------------------------------------------

    async def add_medical_record(
        self, session: AsyncSession, principal: Principal, patient_id: int, data: schemas.MedicalRecordCreate
    ) -> schemas.MedicalRecordRead:
        repo = Repository(session)
        patient = await self._visible(repo, principal, patient_id)
        person_name = patient.name
        if data.family_member_id is not None:
            member = await repo.get_family_member(patient_id, data.family_member_id)
            if member is None:
                raise _invalid("family_member_id", "not a family member of this patient")
            person_name = member.name
        now = self.clock.now()
        record = MedicalRecord(
            patient_id=patient_id,
            person_name=person_name,
            created_by=principal.user_id,
            created_at=now,
            updated_at=now,
            **data.model_dump(),
        )
        repo.add(record)
        await repo.flush()
        return schemas.MedicalRecordRead.model_validate(record)

    async def list_medical_records(
        self,
        session: AsyncSession,
        principal: Principal,
        patient_id: int,
        after: tuple[str, int] | None,
        limit: int,
    ) -> schemas.Page[schemas.MedicalRecordRead]:
        """Newest visit first."""
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        rows = await repo.list_medical_records(patient_id, after, limit + 1)
        items = [schemas.MedicalRecordRead.model_validate(r) for r in rows[:limit]]
        next_cursor = (
            encode_cursor([items[-1].visit_date.isoformat(), items[-1].id]) if len(rows) > limit and items else None
        )
        return schemas.Page(items=items, next_cursor=next_cursor)

    async def update_medical_record(
        self,
        session: AsyncSession,
        principal: Principal,
        patient_id: int,
        record_id: int,
        data: schemas.MedicalRecordUpdate,
    ) -> schemas.MedicalRecordRead:
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        record = await repo.get_medical_record(patient_id, record_id)
        if record is None:
            raise ProblemError(404, "patient.medical_record_not_found", "No such medical record")
        required = ("symptoms", "diagnosis", "treatment_plan", "treatment_schedule", "visit_kind")
        for name, value in _changes(data, required).items():
            setattr(record, name, value)
        record.updated_at = self.clock.now()
        await repo.flush()
        return schemas.MedicalRecordRead.model_validate(record)

    # --- managed lists (WO-3.1) -----------------------------------------------------------

    async def list_conditions(
        self, session: AsyncSession, kind: str | None, include_inactive: bool
    ) -> list[schemas.ConditionRead]:
        rows = await Repository(session).list_conditions(kind, include_inactive)
        return [schemas.ConditionRead.model_validate(c) for c in rows]

    async def add_condition(
        self, session: AsyncSession, principal: Principal, data: schemas.ConditionCreate
    ) -> schemas.ConditionRead:
        self._require_admin(principal)
        repo = Repository(session)
        if await repo.condition_name_taken(data.kind, data.name):
            raise ProblemError(409, "patient.condition_exists", "This entry is already on the list", field="name")
        condition = Condition(kind=data.kind, name=data.name, sort_order=data.sort_order, active=True)
        repo.add(condition)
        await repo.flush()
        return schemas.ConditionRead.model_validate(condition)

    async def update_condition(
        self, session: AsyncSession, principal: Principal, condition_id: int, data: schemas.ConditionUpdate
    ) -> schemas.ConditionRead:
        self._require_admin(principal)
        repo = Repository(session)
        condition = await repo.get_condition(condition_id)
        if condition is None:
            raise ProblemError(404, "patient.condition_not_found", "No such list entry")
        changes = _changes(data)
        if "name" in changes and await repo.condition_name_taken(condition.kind, changes["name"], condition.id):
            raise ProblemError(409, "patient.condition_exists", "This entry is already on the list", field="name")
        for name, value in changes.items():
            setattr(condition, name, value)
        await repo.flush()
        return schemas.ConditionRead.model_validate(condition)

    # --- ownership (WO-3.4) ---------------------------------------------------------------

    async def record_call_answered(self, session: AsyncSession, event: CallAnswered) -> None:
        """The first agent who talks with a patient becomes the owner; before registration, remember them."""
        if event.direction == "internal" or not event.agent_work_number or not event.agent_user_id:
            return
        if getattr(event, "first_answer", True) is False:
            return  # answered again after a transfer: someone talked with the caller before
        mobile = try_normalize_mobile(event.caller_number)
        if mobile is None:
            return
        repo = Repository(session)
        patient_id = await repo.patient_id_by_mobile(mobile)
        if patient_id is None:
            await repo.record_first_contact(
                mobile, event.agent_user_id, event.agent_work_number, event.call_id, event.answered_at
            )
            return
        now = self.clock.now()
        if not await repo.claim_unowned(patient_id, event.agent_user_id, event.agent_work_number, now):
            return
        change = OwnershipChange(
            patient_id=patient_id,
            kind="first_contact",
            to_user_id=event.agent_user_id,
            to_work_number=event.agent_work_number,
            changed_by=None,
            reason=f"answered call {event.call_id}",
            changed_at=now,
        )
        repo.add(change)
        await repo.flush()
        await self.notifier.owner_changed(session, mobile, change)

    async def record_agent_state(self, session: AsyncSession, event: AgentStateChanged) -> None:
        """Keep each work number's holder and groups for team-lead visibility."""
        if not event.work_number:
            return
        await Repository(session).remember_agent(event.work_number, event.user_id, event.groups, event.changed_at)

    async def assign_owner(
        self, session: AsyncSession, principal: Principal, patient_id: int, data: schemas.OwnerAssign
    ) -> schemas.OwnershipChangeRead | None:
        """Supervisors assign an unowned patient or move one to another agent; logged and published."""
        if not principal.has_role(*OWNERSHIP_ROLES):
            raise _forbidden("only supervisors assign or move ownership")
        repo = Repository(session)
        patient = await repo.lock_patient(patient_id, scope_of(principal))
        if patient is None:
            raise _not_found()
        if patient.owner_work_number == data.work_number:
            return None
        user_id = data.user_id or await repo.agent_user_id(data.work_number)
        if user_id is None:
            raise _invalid("user_id", f"work number {data.work_number} is not known here yet; give its user_id")
        now = self.clock.now()
        change = OwnershipChange(
            patient_id=patient.id,
            kind="assigned" if patient.owner_work_number is None else "moved",
            from_user_id=patient.owner_user_id,
            from_work_number=patient.owner_work_number,
            to_user_id=user_id,
            to_work_number=data.work_number,
            changed_by=principal.user_id,
            reason=data.reason,
            changed_at=now,
        )
        patient.owner_user_id, patient.owner_work_number, patient.owner_assigned_at = user_id, data.work_number, now
        patient.updated_at = now
        repo.add(change)
        await repo.flush()
        await self.notifier.owner_changed(session, patient.mobile, change)
        return schemas.OwnershipChangeRead.model_validate(change)

    async def ownership_log(
        self, session: AsyncSession, principal: Principal, patient_id: int, after_id: int | None, limit: int
    ) -> schemas.Page[schemas.OwnershipChangeRead]:
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        rows = await repo.ownership_log(patient_id, after_id, limit + 1)
        items = [schemas.OwnershipChangeRead.model_validate(r) for r in rows[:limit]]
        return schemas.Page(items=items, next_cursor=encode_cursor([items[-1].id]) if len(rows) > limit else None)

    async def owners(
        self, session: AsyncSession, principal: Principal, after_id: int | None, limit: int
    ) -> schemas.Page[schemas.OwnerEntry]:
        """The mobile → owner map for the ACD's copy (CORE-2.2), by patient id."""
        if not principal.can(PERM_READ_OWNERS):
            raise _forbidden(PERM_READ_OWNERS)
        rows = await Repository(session).owners(after_id, limit + 1)
        items = [schemas.OwnerEntry(mobile=m, owner_user_id=u, owner_work_number=w) for _, m, u, w in rows[:limit]]
        return schemas.Page(items=items, next_cursor=encode_cursor([rows[limit - 1][0]]) if len(rows) > limit else None)

    # --- levels (WO-3.2) ------------------------------------------------------------------

    async def list_schemes(self, session: AsyncSession) -> list[schemas.LevelSchemeRead]:
        return [_scheme_read(s) for s in await Repository(session).list_schemes()]

    async def add_scheme(
        self, session: AsyncSession, principal: Principal, data: schemas.LevelSchemeCreate
    ) -> schemas.LevelSchemeRead:
        self._require_admin(principal)
        repo = Repository(session)
        if await repo.scheme_by_code(data.code) is not None:
            raise ProblemError(409, "patient.scheme_exists", "A level scheme with this code exists", field="code")
        codes = [lv.code for lv in data.levels]
        ranks = [lv.rank for lv in data.levels]
        if len(set(codes)) != len(codes):
            raise _invalid("levels", "level codes repeat")
        if len(set(ranks)) != len(ranks):
            raise _invalid("levels", "level ranks repeat")
        if data.is_default:
            await repo.clear_default_scheme()
        scheme = LevelScheme(code=data.code, name=data.name, description=data.description, is_default=data.is_default)
        scheme.levels = [MemberLevel(**lv.model_dump()) for lv in data.levels]
        repo.add(scheme)
        await repo.flush()
        return _scheme_read(scheme)

    async def update_level(
        self, session: AsyncSession, principal: Principal, level_id: int, data: schemas.MemberLevelUpdate
    ) -> schemas.MemberLevelRead:
        self._require_admin(principal)
        repo = Repository(session)
        level = await repo.get_level(level_id)
        if level is None:
            raise ProblemError(404, "patient.level_not_found", "No such member level")
        changes = _changes(data, ("name", "treatment_price_percent", "benefits"))
        for name, value in changes.items():
            setattr(level, name, value)
        await repo.flush()
        return schemas.MemberLevelRead.model_validate(level)

    async def record_order_completed(self, session: AsyncSession, event: OrderCompleted) -> None:
        """Count a completed order: totals, points (WO-3.5) and automatic promotion (WO-3.2)."""
        repo = Repository(session)
        patient = await repo.get_patient(event.patient_id, Scope(everyone=True, work_number=""))
        if patient is None:
            log.warning("order.completed %s names unknown patient %s; ignored", event.order_id, event.patient_id)
            return
        now = self.clock.now()
        points = self.points_for(event.amount_fen)
        completed_at = event.completed_at if event.completed_at.tzinfo else event.completed_at.replace(tzinfo=UTC)
        if not await repo.add_order_completion(patient.id, event.order_id, event.amount_fen, points, completed_at):
            return
        amount, count, balance = await repo.add_order_totals(patient.id, event.amount_fen, points, now)
        if points:
            repo.add(
                PointsEntry(
                    patient_id=patient.id,
                    delta=points,
                    balance_after=balance,
                    kind="order",
                    order_id=event.order_id,
                    created_at=now,
                )
            )
        if patient.level_scheme_id is not None:
            levels = await repo.levels_of_scheme(patient.level_scheme_id)
            current = next((lv for lv in levels if lv.id == patient.level_id), None)
            target = _level_for(levels, amount, count)
            if target is not None and (current is None or target.rank > current.rank):
                await repo.set_level(patient.id, target.id, now)
                scheme_code = await repo.scheme_code(patient.level_scheme_id)
                await self.notifier.level_changed(
                    session, patient.id, patient.mobile, scheme_code, target, current, now
                )
        await repo.flush()

    def points_for(self, amount_fen: int) -> int:
        """A fixed share of the order amount, rounded down to whole points."""
        points = (Decimal(amount_fen) / 100 * self.settings.points_per_yuan).to_integral_value(ROUND_FLOOR)
        return int(points)

    async def _change_scheme(
        self, session: AsyncSession, repo: Repository, patient: Patient, code: str | None, now: datetime
    ) -> None:
        if code is None:
            patient.level_scheme_id, patient.level_id = None, None
            return
        scheme = await repo.scheme_by_code(code)
        if scheme is None:
            raise _invalid("level_scheme_code", f"no level scheme {code!r}")
        if scheme.id == patient.level_scheme_id:
            return
        level = _level_for(scheme.levels, patient.cumulative_order_amount_fen, patient.cumulative_order_count)
        previous = patient.level
        patient.level_scheme_id, patient.level_id = scheme.id, level.id if level else None
        if level is not None:
            await self.notifier.level_changed(session, patient.id, patient.mobile, scheme.code, level, previous, now)

    # --- points (WO-3.5) ------------------------------------------------------------------

    async def points_ledger(
        self, session: AsyncSession, principal: Principal, patient_id: int, before_id: int | None, limit: int
    ) -> schemas.Page[schemas.PointsEntryRead]:
        """Newest entry first."""
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        rows = await repo.points_ledger(patient_id, before_id, limit + 1)
        items = [schemas.PointsEntryRead.model_validate(r) for r in rows[:limit]]
        return schemas.Page(items=items, next_cursor=encode_cursor([items[-1].id]) if len(rows) > limit else None)

    async def list_products(self, session: AsyncSession, include_inactive: bool) -> list[schemas.RewardProductRead]:
        return [
            schemas.RewardProductRead.model_validate(p)
            for p in await Repository(session).list_products(include_inactive)
        ]

    async def add_product(
        self, session: AsyncSession, principal: Principal, data: schemas.RewardProductCreate
    ) -> schemas.RewardProductRead:
        self._require_admin(principal)
        product = RewardProduct(**data.model_dump(), active=True)
        repo = Repository(session)
        repo.add(product)
        await repo.flush()
        return schemas.RewardProductRead.model_validate(product)

    async def update_product(
        self, session: AsyncSession, principal: Principal, product_id: int, data: schemas.RewardProductUpdate
    ) -> schemas.RewardProductRead:
        self._require_admin(principal)
        repo = Repository(session)
        product = await repo.get_product(product_id)
        if product is None:
            raise ProblemError(404, "patient.product_not_found", "No such product")
        changes = _changes(data, ("name", "points_cost", "active"))
        for name, value in changes.items():
            setattr(product, name, value)
        await repo.flush()
        return schemas.RewardProductRead.model_validate(product)

    async def redeem(
        self, session: AsyncSession, principal: Principal, patient_id: int, data: schemas.RedemptionCreate
    ) -> schemas.RedemptionRead:
        """Spend points on a product; refused if the balance, the stock or the visits do not allow it."""
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        product = await repo.get_product(data.product_id)
        if product is None or not product.active:
            raise _invalid("product_id", "no such redeemable product", code="patient.product_not_found")
        now = self.clock.now()
        if product.min_yearly_visits is not None:
            start = datetime(now.year, 1, 1, tzinfo=UTC)
            visits = await repo.yearly_visits(patient_id, start, datetime(now.year + 1, 1, 1, tzinfo=UTC))
            if visits < product.min_yearly_visits:
                raise ProblemError(
                    409,
                    "patient.redemption_not_eligible",
                    "Not enough visits this year for this product",
                    detail=f"{visits} of {product.min_yearly_visits} visits",
                )
        cost = product.points_cost * data.quantity
        balance = await repo.spend_points(patient_id, cost, now)
        if balance is None:
            raise ProblemError(409, "patient.points_insufficient", "Not enough points", detail=f"{cost} points needed")
        if not await repo.take_stock(product.id, data.quantity):
            raise ProblemError(409, "patient.product_out_of_stock", "The product is out of stock")
        redemption = Redemption(
            patient_id=patient_id,
            product_id=product.id,
            quantity=data.quantity,
            points_spent=cost,
            created_by=principal.user_id,
            created_at=now,
        )
        repo.add(redemption)
        await repo.flush()
        repo.add(
            PointsEntry(
                patient_id=patient_id,
                delta=-cost,
                balance_after=balance,
                kind="redemption",
                redemption_id=redemption.id,
                created_at=now,
            )
        )
        await repo.flush()
        return schemas.RedemptionRead(
            id=redemption.id,
            patient_id=patient_id,
            product_id=product.id,
            quantity=data.quantity,
            points_spent=cost,
            created_by=principal.user_id,
            created_at=now,
            points_balance=balance,
        )

    async def yearly_statistics(
        self,
        session: AsyncSession,
        principal: Principal,
        year: int,
        visit_thresholds: Sequence[int],
        amount_thresholds_fen: Sequence[int],
    ) -> schemas.YearlyStatistics:
        """Patients by visits (3, 6, 10+), by amount and by both, for a calendar year (UTC+8 days are not split)."""
        if not principal.has_role(*SUPERVISING_ROLES):
            raise _forbidden("statistics are for supervisors")
        visits_t = sorted(set(visit_thresholds))
        amounts_t = sorted(set(amount_thresholds_fen))
        repo = Repository(session)
        start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        total, rows = await repo.yearly_buckets(start, end, visits_t, amounts_t)
        by_visits = [
            schemas.VisitBucket(
                min_visits=t,
                max_visits=visits_t[i + 1] - 1 if i + 1 < len(visits_t) else None,
                patients=sum(r[2] for r in rows if r[0] == i),
                amount_fen=sum(r[3] for r in rows if r[0] == i),
            )
            for i, t in enumerate(visits_t)
        ]
        by_amount = [
            schemas.AmountBucket(
                min_amount_fen=t,
                below_amount_fen=amounts_t[j + 1] if j + 1 < len(amounts_t) else None,
                patients=sum(r[2] for r in rows if r[1] == j),
            )
            for j, t in enumerate(amounts_t)
        ]
        combined = [
            schemas.CombinedBucket(
                min_visits=vt,
                max_visits=visits_t[i + 1] - 1 if i + 1 < len(visits_t) else None,
                min_amount_fen=at,
                below_amount_fen=amounts_t[j + 1] if j + 1 < len(amounts_t) else None,
                patients=sum(r[2] for r in rows if r[0] == i and r[1] == j),
            )
            for i, vt in enumerate(visits_t)
            for j, at in enumerate(amounts_t)
        ]
        products = [schemas.RewardProductRead.model_validate(p) for p in await repo.list_products(False)]
        return schemas.YearlyStatistics(
            year=year,
            patients_with_orders=total,
            by_visits=by_visits,
            by_amount=by_amount,
            by_visits_and_amount=combined,
            redeemable_products=products,
        )

    # --- cards (WO-3.6) -------------------------------------------------------------------

    async def list_card_types(self, session: AsyncSession) -> list[schemas.CardTypeRead]:
        return [schemas.CardTypeRead.model_validate(t) for t in await Repository(session).list_card_types()]

    async def add_card_type(
        self, session: AsyncSession, principal: Principal, data: schemas.CardTypeCreate
    ) -> schemas.CardTypeRead:
        self._require_admin(principal)
        repo = Repository(session)
        if await repo.card_type_by_code(data.code) is not None:
            raise ProblemError(409, "patient.card_type_exists", "A card type with this code exists", field="code")
        card_type = CardType(**data.model_dump(), active=True)
        card_type.benefits = sorted(set(data.benefits))
        repo.add(card_type)
        await repo.flush()
        return schemas.CardTypeRead.model_validate(card_type)

    async def update_card_type(
        self, session: AsyncSession, principal: Principal, card_type_id: int, data: schemas.CardTypeUpdate
    ) -> schemas.CardTypeRead:
        self._require_admin(principal)
        repo = Repository(session)
        card_type = await repo.get_card_type(card_type_id)
        if card_type is None:
            raise ProblemError(404, "patient.card_type_not_found", "No such card type")
        changes = _changes(data, ("name", "benefits", "therapy_price_percent", "active"))
        if "benefits" in changes:
            changes["benefits"] = sorted(set(changes["benefits"]))
        for name, value in changes.items():
            setattr(card_type, name, value)
        await repo.flush()
        return schemas.CardTypeRead.model_validate(card_type)

    async def issue_card(
        self, session: AsyncSession, principal: Principal, patient_id: int, data: schemas.MemberCardCreate
    ) -> schemas.MemberCardRead:
        """A member may hold several cards; validity runs from the issue date."""
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        card_type = await repo.card_type_by_code(data.card_type_code)
        if card_type is None or not card_type.active:
            raise _invalid("card_type_code", f"no card type {data.card_type_code!r}")
        if await repo.card_number_taken(data.card_number):
            raise ProblemError(409, "patient.card_number_taken", "This card number is in use", field="card_number")
        issued_on = data.issued_on or self.today()
        valid_until = issued_on + timedelta(days=card_type.validity_days) if card_type.validity_days else None
        card = MemberCard(
            patient_id=patient_id,
            card_type_id=card_type.id,
            card_number=data.card_number,
            issued_on=issued_on,
            valid_until=valid_until,
            status="active",
            created_at=self.clock.now(),
        )
        card.card_type = card_type
        repo.add(card)
        await repo.flush()
        return self._card_read(card)

    async def list_cards(
        self, session: AsyncSession, principal: Principal, patient_id: int
    ) -> list[schemas.MemberCardRead]:
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        return [self._card_read(c) for c in await repo.list_cards(patient_id)]

    async def update_card(
        self, session: AsyncSession, principal: Principal, patient_id: int, card_id: int, data: schemas.MemberCardUpdate
    ) -> schemas.MemberCardRead:
        repo = Repository(session)
        await self._visible(repo, principal, patient_id)
        card = await repo.get_card(patient_id, card_id)
        if card is None:
            raise ProblemError(404, "patient.card_not_found", "No such card")
        card.status = data.status
        await repo.flush()
        return self._card_read(card)

    def _card_read(self, card: MemberCard) -> schemas.MemberCardRead:
        today = self.today()
        valid_now = (
            card.status == "active"
            and card.issued_on <= today
            and (card.valid_until is None or today <= card.valid_until)
        )
        return schemas.MemberCardRead(
            id=card.id,
            patient_id=card.patient_id,
            card_number=card.card_number,
            card_type=schemas.CardTypeRead.model_validate(card.card_type),
            issued_on=card.issued_on,
            valid_until=card.valid_until,
            status=card.status,
            valid_now=valid_now,
        )

    # --- funds (WO-3.7) -------------------------------------------------------------------

    async def fund_account(
        self, session: AsyncSession, principal: Principal, patient_id: int
    ) -> schemas.FundAccountRead:
        repo = Repository(session)
        await self._fund_patient(repo, principal, patient_id, PERM_FUNDS_CHARGE)
        account = await repo.fund_account(patient_id)
        return schemas.FundAccountRead(
            patient_id=patient_id,
            balance_fen=account.balance_fen if account else 0,
            updated_at=account.updated_at if account else None,
        )

    async def fund_ledger(
        self, session: AsyncSession, principal: Principal, patient_id: int, before_id: int | None, limit: int
    ) -> schemas.Page[schemas.FundEntryRead]:
        """Newest entry first."""
        repo = Repository(session)
        await self._fund_patient(repo, principal, patient_id, PERM_FUNDS_CHARGE)
        rows = await repo.fund_ledger(patient_id, before_id, limit + 1)
        items = [schemas.FundEntryRead.model_validate(r) for r in rows[:limit]]
        return schemas.Page(items=items, next_cursor=encode_cursor([items[-1].id]) if len(rows) > limit else None)

    async def deposit(
        self, session: AsyncSession, principal: Principal, patient_id: int, key: str, data: schemas.DepositCreate
    ) -> DepositOutcome:
        """Top up a fund account (finance); a retried request with the same key deposits once."""
        if not principal.can(PERM_FUNDS_DEPOSIT):
            raise _forbidden(PERM_FUNDS_DEPOSIT)
        repo = Repository(session)
        await self._fund_patient(repo, principal, patient_id, PERM_FUNDS_DEPOSIT)

        def same(entry: FundEntry) -> bool:
            return entry.patient_id == patient_id and entry.delta_fen == data.amount_fen and entry.note == data.note

        existing = await repo.deposit_by_key(key)
        if existing is not None:
            self._same_request(same(existing))
            return DepositOutcome(schemas.FundEntryRead.model_validate(existing), replayed=True)
        now = self.clock.now()
        await self._ensure_account(repo, patient_id, now)
        entry = FundEntry(
            patient_id=patient_id,
            kind="deposit",
            delta_fen=data.amount_fen,
            balance_after_fen=0,
            idempotency_key=key,
            note=data.note,
            created_by=principal.user_id,
            created_at=now,
        )
        try:
            async with session.begin_nested():
                repo.add(entry)
                await repo.flush()
        except IntegrityError:
            existing = await repo.deposit_by_key(key)
            if existing is None:
                raise
            self._same_request(same(existing))
            return DepositOutcome(schemas.FundEntryRead.model_validate(existing), replayed=True)
        entry.balance_after_fen = await repo.credit(patient_id, data.amount_fen, now)
        await repo.flush()
        return DepositOutcome(schemas.FundEntryRead.model_validate(entry), replayed=False)

    async def pay(
        self, session: AsyncSession, principal: Principal, patient_id: int, key: str, data: schemas.PaymentCreate
    ) -> PaymentOutcome:
        """Charge the member's fund account once per idempotency key; success or failure, never below zero."""
        repo = Repository(session)
        await self._fund_patient(repo, principal, patient_id, PERM_FUNDS_CHARGE)
        fingerprint = _fingerprint(
            patient_id=patient_id, amount_fen=data.amount_fen, reference=data.reference, description=data.description
        )
        existing = await repo.payment_by_key(key)
        if existing is not None:
            self._same_request(existing.request_fingerprint == fingerprint)
            return PaymentOutcome(_payment_read(existing), replayed=True)
        now = self.clock.now()
        payment = FundPayment(
            patient_id=patient_id,
            idempotency_key=key,
            request_fingerprint=fingerprint,
            amount_fen=data.amount_fen,
            reference=data.reference,
            description=data.description,
            status="pending",
            refunded_fen=0,
            created_by=principal.user_id,
            created_at=now,
        )
        try:
            # Claim the key first: a concurrent twin waits on the unique index, then replays.
            async with session.begin_nested():
                repo.add(payment)
                await repo.flush()
        except IntegrityError:
            existing = await repo.payment_by_key(key)
            if existing is None:
                raise
            self._same_request(existing.request_fingerprint == fingerprint)
            return PaymentOutcome(_payment_read(existing), replayed=True)
        balance = await repo.debit(patient_id, data.amount_fen, now)
        if balance is None:
            payment.status = "failed"
            has_account = await repo.fund_account(patient_id) is not None
            payment.failure_reason = "insufficient_funds" if has_account else "no_fund_account"
            await repo.flush()
            await self.notifier.payment_failed(session, payment)
            return PaymentOutcome(_payment_read(payment), replayed=False)
        payment.status, payment.balance_after_fen = "succeeded", balance
        repo.add(
            FundEntry(
                patient_id=patient_id,
                kind="payment",
                delta_fen=-data.amount_fen,
                balance_after_fen=balance,
                payment_id=payment.id,
                note=data.reference,
                created_by=principal.user_id,
                created_at=now,
            )
        )
        await repo.flush()
        await self.notifier.payment_succeeded(session, payment)
        return PaymentOutcome(_payment_read(payment), replayed=False)

    async def get_payment(self, session: AsyncSession, principal: Principal, payment_id: int) -> schemas.PaymentRead:
        repo = Repository(session)
        payment = await repo.get_payment(payment_id)
        if payment is None:
            raise ProblemError(404, "patient.payment_not_found", "No such payment")
        try:
            await self._fund_patient(repo, principal, payment.patient_id, PERM_FUNDS_CHARGE)
        except ProblemError as exc:
            raise ProblemError(404, "patient.payment_not_found", "No such payment") from exc
        return _payment_read(payment)

    async def refund(
        self, session: AsyncSession, principal: Principal, payment_id: int, key: str, data: schemas.RefundCreate
    ) -> RefundOutcome:
        """Give back part or all of a succeeded payment, once per idempotency key."""
        if not principal.can(PERM_FUNDS_REFUND):
            raise _forbidden(PERM_FUNDS_REFUND)
        repo = Repository(session)
        payment = await repo.get_payment(payment_id)
        if payment is None:
            raise ProblemError(404, "patient.payment_not_found", "No such payment")
        fingerprint = _fingerprint(payment_id=payment_id, amount_fen=data.amount_fen, reason=data.reason)
        existing = await repo.refund_by_key(key)
        if existing is not None:
            self._same_request(existing.request_fingerprint == fingerprint)
            return RefundOutcome(schemas.RefundRead.model_validate(existing), replayed=True)
        now = self.clock.now()
        refund = FundRefund(
            payment_id=payment_id,
            idempotency_key=key,
            request_fingerprint=fingerprint,
            amount_fen=data.amount_fen,
            balance_after_fen=0,
            reason=data.reason,
            created_by=principal.user_id,
            created_at=now,
        )
        try:
            async with session.begin_nested():
                repo.add(refund)
                await repo.flush()
        except IntegrityError:
            existing = await repo.refund_by_key(key)
            if existing is None:
                raise
            self._same_request(existing.request_fingerprint == fingerprint)
            return RefundOutcome(schemas.RefundRead.model_validate(existing), replayed=True)
        if not await repo.add_refunded(payment_id, data.amount_fen):
            raise ProblemError(
                409,
                "patient.refund_not_allowed",
                "Only a succeeded payment can be refunded, up to the amount paid",
                field="amount_fen",
            )
        refund.balance_after_fen = await repo.credit(payment.patient_id, data.amount_fen, now)
        repo.add(
            FundEntry(
                patient_id=payment.patient_id,
                kind="refund",
                delta_fen=data.amount_fen,
                balance_after_fen=refund.balance_after_fen,
                payment_id=payment_id,
                refund_id=refund.id,
                note=data.reason,
                created_by=principal.user_id,
                created_at=now,
            )
        )
        await repo.flush()
        await self.notifier.payment_refunded(session, refund, payment.patient_id)
        return RefundOutcome(schemas.RefundRead.model_validate(refund), replayed=False)

    async def _fund_patient(self, repo: Repository, principal: Principal, patient_id: int, permission: str) -> None:
        # Services (IVR payments) hold the permission; people charge the patients they may see.
        if principal.can(permission):
            if not await repo.patient_exists(patient_id):
                raise _not_found()
            return
        await self._visible(repo, principal, patient_id)

    async def _ensure_account(self, repo: Repository, patient_id: int, now: datetime) -> None:
        if await repo.fund_account(patient_id) is None:
            repo.add(FundAccount(patient_id=patient_id, balance_fen=0, updated_at=now))
            await repo.flush()

    @staticmethod
    def _same_request(same: bool) -> None:
        if not same:
            raise ProblemError(
                409,
                "patient.idempotency_key_reused",
                "This idempotency key was used for a different request",
                field="Idempotency-Key",
            )

    # --- helpers --------------------------------------------------------------------------

    async def _visible(self, repo: Repository, principal: Principal, patient_id: int) -> Patient:
        patient = await repo.get_patient(patient_id, scope_of(principal))
        if patient is None:
            raise _not_found()
        return patient

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not (principal.has_role(ROLE_ADMIN, ROLE_DIRECTOR) or principal.can(PERM_ADMIN)):
            raise _forbidden(PERM_ADMIN)

    def _check_birth_date(self, birth_date: date | None) -> None:
        if birth_date is not None and birth_date > self.today():
            raise _invalid("birth_date", "birth_date is in the future")

    async def _patient_number(
        self, repo: Repository, store_code: str | None, card_number: str | None, patient_id: int | None
    ) -> str | None:
        """WO-3.4: the clinic card number with the store code in front."""
        if store_code is None or card_number is None:
            return None
        number = f"{store_code}{card_number}"
        holder = await repo.patient_id_by_number(number)
        if holder is not None and holder != patient_id:
            raise ProblemError(
                409, "patient.number_taken", "Another patient has this clinic card", field="clinic_card_number"
            )
        return number

    async def _scheme(self, repo: Repository, code: str | None) -> LevelScheme | None:
        if code is None:
            return await repo.default_scheme()
        scheme = await repo.scheme_by_code(code)
        if scheme is None:
            raise _invalid("level_scheme_code", f"no level scheme {code!r}")
        return scheme

    async def _conditions(
        self, repo: Repository, illness_ids: Sequence[int], allergy_ids: Sequence[int]
    ) -> list[Condition]:
        found = {c.id: c for c in await repo.conditions_by_ids([*illness_ids, *allergy_ids])}
        chosen: list[Condition] = []
        for field, kind, ids in (
            ("past_illness_ids", "illness", illness_ids),
            ("drug_allergy_ids", "allergy", allergy_ids),
        ):
            for condition_id in dict.fromkeys(ids):
                condition = found.get(condition_id)
                if condition is None or condition.kind != kind or not condition.active:
                    raise _invalid(field, f"{condition_id} is not on the {kind} list")
                chosen.append(condition)
        return chosen

    def _apply_person(self, person: PersonFields, values: dict[str, Any], id_number: str | None, id_sent: bool) -> None:
        for name, value in values.items():
            setattr(person, name, value)
        if id_sent:
            if id_number is None:
                person.id_number_encrypted, person.id_number_masked = None, None
            else:
                person.id_number_encrypted = self.cipher.encrypt(id_number)
                person.id_number_masked = mask_id_number(id_number)

    def _person_read(self, person: FamilyMember | Patient, reveal: bool) -> dict[str, Any]:
        values: dict[str, Any] = {name: getattr(person, name) for name in _PERSON_SCALARS}
        if person.id_number_encrypted is not None and reveal:
            values["id_number"], values["id_number_masked"] = self.cipher.decrypt(person.id_number_encrypted), False
        else:
            values["id_number"], values["id_number_masked"] = (
                person.id_number_masked,
                person.id_number_masked is not None,
            )
        values["past_illnesses"] = [
            schemas.ConditionRef(id=c.id, name=c.name) for c in person.conditions if c.kind == "illness"
        ]
        values["drug_allergies"] = [
            schemas.ConditionRef(id=c.id, name=c.name) for c in person.conditions if c.kind == "allergy"
        ]
        return values

    def _family_read(self, member: FamilyMember, reveal: bool) -> schemas.FamilyMemberRead:
        return schemas.FamilyMemberRead(
            **self._person_read(member, reveal),
            id=member.id,
            patient_id=member.patient_id,
            relation=member.relation,
            mobile=member.mobile,
        )


def _ids(conditions: Sequence[Condition], kind: str) -> list[int]:
    return [c.id for c in conditions if c.kind == kind]


def _level_for(levels: Sequence[MemberLevel], amount_fen: int, count: int) -> MemberLevel | None:
    """The highest level whose amount or count threshold is reached (a level with neither is the entry level)."""
    reached = [
        lv
        for lv in levels
        if (lv.min_order_amount_fen is None and lv.min_order_count is None)
        or (lv.min_order_amount_fen is not None and amount_fen >= lv.min_order_amount_fen)
        or (lv.min_order_count is not None and count >= lv.min_order_count)
    ]
    return max(reached, key=lambda lv: lv.rank, default=None)


def _level_ref(level: MemberLevel | None, scheme_code: str) -> schemas.LevelRef | None:
    if level is None:
        return None
    return schemas.LevelRef(
        id=level.id,
        scheme_code=scheme_code,
        code=level.code,
        name=level.name,
        rank=level.rank,
        treatment_price_percent=level.treatment_price_percent,
    )


def _owner(user_id: str | None, work_number: str | None, at: datetime | None) -> schemas.OwnerRead | None:
    if user_id is None or work_number is None:
        return None
    return schemas.OwnerRead(user_id=user_id, work_number=work_number, assigned_at=at)


def _scheme_read(scheme: LevelScheme) -> schemas.LevelSchemeRead:
    return schemas.LevelSchemeRead(
        id=scheme.id,
        code=scheme.code,
        name=scheme.name,
        description=scheme.description,
        is_default=scheme.is_default,
        levels=[schemas.MemberLevelRead.model_validate(lv) for lv in sorted(scheme.levels, key=lambda lv: lv.rank)],
    )


def _payment_read(payment: FundPayment) -> schemas.PaymentRead:
    return schemas.PaymentRead.model_validate(payment)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _lookup(row: LookupRow) -> schemas.PatientLookup:
    p = row.patient
    visits = sorted(
        (schemas.VisitBrief.model_validate(v) for v in row.visits), key=lambda v: (v.visit_date, v.id), reverse=True
    )
    orders = sorted(
        (schemas.OrderBrief.model_validate(o) for o in row.orders), key=lambda o: _aware(o.completed_at), reverse=True
    )
    for order in orders:
        order.completed_at = _aware(order.completed_at)
    return schemas.PatientLookup(
        id=p.id,
        patient_number=p.patient_number,
        mobile=p.mobile,
        name=p.name,
        nickname=p.nickname,
        gender=p.gender,
        birth_date=p.birth_date,
        city=p.city,
        importance_text=p.importance_text,
        importance_colour=p.importance_colour,
        preferences=p.preferences,
        level=_level_ref(row.level, row.scheme_code or ""),
        points_balance=p.points_balance,
        fund_balance_fen=row.fund_balance_fen or 0,
        owner=_owner(p.owner_user_id, p.owner_work_number, p.owner_assigned_at),
        family=sorted((schemas.FamilyBrief.model_validate(f) for f in row.family), key=lambda f: f.id),
        recent_visits=visits,
        recent_orders=orders,
    )
