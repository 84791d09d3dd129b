"""HTTP routes of the patient service: parse, call `PatientService`, answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status

from callcenter_common.auth import CurrentPrincipal
from callcenter_common.db import SessionDep
from callcenter_common.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor
from callcenter_common.problems import PROBLEM_RESPONSES, ProblemError
from patient import schemas
from patient.phones import normalize_mobile
from patient.repository import PatientFilter
from patient.service import PatientService

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]
IdempotencyKeyHeader = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="a retried request with the same key has the same effect once and the same answer",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"
NO_NUL = r"^[^\x00]*$"


def _id_cursor(cursor: str | None) -> int | None:
    key = decode_cursor(cursor, [int])
    return key[0] if key else None


def build_router(service: PatientService) -> APIRouter:
    router = APIRouter(responses=PROBLEM_RESPONSES)
    patients = APIRouter(prefix="/patients", tags=["patients"])

    # --- patients (WO-3.1, WO-3.3) ------------------------------------------------------

    @patients.post("", status_code=status.HTTP_201_CREATED, summary="Register a caller as a patient")
    async def register(
        body: schemas.PatientCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.PatientRead:
        return await service.register(session, principal, body)

    @patients.get("", summary="Patients the caller may see, by id")
    async def list_patients(
        session: SessionDep,
        principal: CurrentPrincipal,
        q: Annotated[
            str | None,
            Query(max_length=100, pattern=NO_NUL, description="name prefix, mobile prefix or patient number"),
        ] = None,
        owner_work_number: Annotated[str | None, Query(max_length=40, pattern=NO_NUL)] = None,
        unowned: bool | None = None,
        source_channel: schemas.SourceChannel | None = None,
        level_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> schemas.Page[schemas.PatientSummary]:
        filters = PatientFilter(q, owner_work_number, unowned, source_channel, level_id)
        return await service.list_patients(session, principal, filters, _id_cursor(cursor), limit)

    @patients.get("/by-mobile/{mobile}", summary="Screen pop: the patient of a mobile, with family and history")
    async def lookup_by_mobile(
        mobile: Annotated[str, Path(max_length=30)], session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.PatientLookup:
        try:
            normalized = normalize_mobile(mobile)
        except ValueError as exc:
            raise ProblemError(422, "request.invalid", "Not a mobile number", detail=str(exc), field="mobile") from exc
        return await service.lookup_by_mobile(session, principal, normalized)

    @patients.get("/{patient_id}", summary="The full record (the read is logged)")
    async def get_patient(patient_id: Id, session: SessionDep, principal: CurrentPrincipal) -> schemas.PatientRead:
        return await service.get(session, principal, patient_id)

    @patients.patch("/{patient_id}", summary="Change the fields sent")
    async def update_patient(
        patient_id: Id, body: schemas.PatientUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.PatientRead:
        return await service.update(session, principal, patient_id, body)

    @patients.get("/{patient_id}/access-log", summary="Who read the full record, and when (admins)")
    async def access_log(patient_id: Id, session: SessionDep, principal: CurrentPrincipal) -> list[dict[str, Any]]:
        return await service.access_log(session, principal, patient_id)

    # --- family and medical records -----------------------------------------------------

    @patients.post("/{patient_id}/family", status_code=status.HTTP_201_CREATED, summary="Add a family member")
    async def add_family_member(
        patient_id: Id, body: schemas.FamilyMemberCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.FamilyMemberRead:
        return await service.add_family_member(session, principal, patient_id, body)

    @patients.get("/{patient_id}/family", summary="The patient's family members")
    async def list_family(
        patient_id: Id, session: SessionDep, principal: CurrentPrincipal
    ) -> list[schemas.FamilyMemberRead]:
        return await service.list_family(session, principal, patient_id)

    @patients.patch("/{patient_id}/family/{member_id}", summary="Change a family member")
    async def update_family_member(
        patient_id: Id,
        member_id: Id,
        body: schemas.FamilyMemberUpdate,
        session: SessionDep,
        principal: CurrentPrincipal,
    ) -> schemas.FamilyMemberRead:
        return await service.update_family_member(session, principal, patient_id, member_id, body)

    @patients.delete(
        "/{patient_id}/family/{member_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a family member"
    )
    async def remove_family_member(
        patient_id: Id, member_id: Id, session: SessionDep, principal: CurrentPrincipal
    ) -> Response:
        await service.remove_family_member(session, principal, patient_id, member_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @patients.post("/{patient_id}/medical-records", status_code=status.HTTP_201_CREATED, summary="Add a medical record")
    async def add_medical_record(
        patient_id: Id, body: schemas.MedicalRecordCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.MedicalRecordRead:
        return await service.add_medical_record(session, principal, patient_id, body)

    @patients.get("/{patient_id}/medical-records", summary="Medical records, newest visit first")
    async def list_medical_records(
        patient_id: Id,
        session: SessionDep,
        principal: CurrentPrincipal,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> schemas.Page[schemas.MedicalRecordRead]:
        key = decode_cursor(cursor, [str, int])
        after = (str(key[0]), int(key[1])) if key else None
        if after is not None:
            try:
                date.fromisoformat(after[0])
            except ValueError as exc:
                raise ProblemError(422, "request.invalid", "The request is not valid", field="cursor") from exc
        return await service.list_medical_records(session, principal, patient_id, after, limit)

    @patients.patch("/{patient_id}/medical-records/{record_id}", summary="Change a medical record")
    async def update_medical_record(
        patient_id: Id,
        record_id: Id,
        body: schemas.MedicalRecordUpdate,
        session: SessionDep,
        principal: CurrentPrincipal,
    ) -> schemas.MedicalRecordRead:
        return await service.update_medical_record(session, principal, patient_id, record_id, body)

    # --- ownership (WO-3.4) -------------------------------------------------------------

    @patients.put("/{patient_id}/owner", summary="Assign or move the owner agent (supervisors)")
    async def assign_owner(
        patient_id: Id, body: schemas.OwnerAssign, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.PatientRead:
        await service.assign_owner(session, principal, patient_id, body)
        return await service.get(session, principal, patient_id, audit=False)

    @patients.get("/{patient_id}/owner-log", summary="Ownership changes, oldest first")
    async def owner_log(
        patient_id: Id,
        session: SessionDep,
        principal: CurrentPrincipal,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> schemas.Page[schemas.OwnershipChangeRead]:
        return await service.ownership_log(session, principal, patient_id, _id_cursor(cursor), limit)

    @router.get("/owners", tags=["ownership"], summary="Mobile → owner map for the ACD (patients.read_owners)")
    async def owners(
        session: SessionDep,
        principal: CurrentPrincipal,
        after: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    ) -> schemas.Page[schemas.OwnerEntry]:
        return await service.owners(session, principal, _id_cursor(after), limit)

    # --- points and redemptions (WO-3.5) ------------------------------------------------

    @patients.get("/{patient_id}/points-ledger", summary="Points ledger, newest first")
    async def points_ledger(
        patient_id: Id,
        session: SessionDep,
        principal: CurrentPrincipal,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> schemas.Page[schemas.PointsEntryRead]:
        return await service.points_ledger(session, principal, patient_id, _id_cursor(cursor), limit)

    @patients.post(
        "/{patient_id}/redemptions", status_code=status.HTTP_201_CREATED, summary="Redeem points for a product"
    )
    async def redeem(
        patient_id: Id, body: schemas.RedemptionCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.RedemptionRead:
        return await service.redeem(session, principal, patient_id, body)

    # --- cards (WO-3.6) -----------------------------------------------------------------

    @patients.post("/{patient_id}/cards", status_code=status.HTTP_201_CREATED, summary="Issue a member card")
    async def issue_card(
        patient_id: Id, body: schemas.MemberCardCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.MemberCardRead:
        return await service.issue_card(session, principal, patient_id, body)

    @patients.get("/{patient_id}/cards", summary="The member's cards")
    async def list_cards(
        patient_id: Id, session: SessionDep, principal: CurrentPrincipal
    ) -> list[schemas.MemberCardRead]:
        return await service.list_cards(session, principal, patient_id)

    @patients.patch("/{patient_id}/cards/{card_id}", summary="Cancel or reactivate a card")
    async def update_card(
        patient_id: Id, card_id: Id, body: schemas.MemberCardUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.MemberCardRead:
        return await service.update_card(session, principal, patient_id, card_id, body)

    # --- funds (WO-3.7) -----------------------------------------------------------------

    @patients.get("/{patient_id}/fund", summary="The member's fund balance")
    async def fund_account(patient_id: Id, session: SessionDep, principal: CurrentPrincipal) -> schemas.FundAccountRead:
        return await service.fund_account(session, principal, patient_id)

    @patients.get("/{patient_id}/fund/ledger", summary="Fund ledger, newest first")
    async def fund_ledger(
        patient_id: Id,
        session: SessionDep,
        principal: CurrentPrincipal,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> schemas.Page[schemas.FundEntryRead]:
        return await service.fund_ledger(session, principal, patient_id, _id_cursor(cursor), limit)

    @patients.post("/{patient_id}/fund/deposits", summary="Top up the fund account (patients.funds.deposit)")
    async def deposit(
        patient_id: Id,
        body: schemas.DepositCreate,
        idempotency_key: IdempotencyKeyHeader,
        session: SessionDep,
        principal: CurrentPrincipal,
        response: Response,
    ) -> schemas.FundEntryRead:
        outcome = await service.deposit(session, principal, patient_id, idempotency_key, body)
        if outcome.replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return outcome.entry

    @patients.post(
        "/{patient_id}/fund/payments",
        summary="Charge the fund account: status succeeded or failed; once per Idempotency-Key",
    )
    async def pay(
        patient_id: Id,
        body: schemas.PaymentCreate,
        idempotency_key: IdempotencyKeyHeader,
        session: SessionDep,
        principal: CurrentPrincipal,
        response: Response,
    ) -> schemas.PaymentRead:
        outcome = await service.pay(session, principal, patient_id, idempotency_key, body)
        if outcome.replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return outcome.payment

    funds = APIRouter(prefix="/fund/payments", tags=["funds"])

    @funds.get("/{payment_id}", summary="A payment's result")
    async def get_payment(payment_id: Id, session: SessionDep, principal: CurrentPrincipal) -> schemas.PaymentRead:
        return await service.get_payment(session, principal, payment_id)

    @funds.post("/{payment_id}/refunds", summary="Refund part or all of a payment (patients.funds.refund)")
    async def refund(
        payment_id: Id,
        body: schemas.RefundCreate,
        idempotency_key: IdempotencyKeyHeader,
        session: SessionDep,
        principal: CurrentPrincipal,
        response: Response,
    ) -> schemas.RefundRead:
        outcome = await service.refund(session, principal, payment_id, idempotency_key, body)
        if outcome.replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return outcome.refund

    # --- reference data: managed lists, levels, cards, products (admins) ----------------

    admin = APIRouter(tags=["reference data"])

    @admin.get("/conditions", summary="The managed lists of past illnesses and drug allergies")
    async def list_conditions(
        session: SessionDep,
        principal: CurrentPrincipal,
        kind: schemas.ConditionKind | None = None,
        include_inactive: bool = False,
    ) -> list[schemas.ConditionRead]:
        return await service.list_conditions(session, kind, include_inactive)

    @admin.post("/conditions", status_code=status.HTTP_201_CREATED, summary="Add a list entry (admins)")
    async def add_condition(
        body: schemas.ConditionCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.ConditionRead:
        return await service.add_condition(session, principal, body)

    @admin.patch("/conditions/{condition_id}", summary="Rename, reorder or retire a list entry (admins)")
    async def update_condition(
        condition_id: Id, body: schemas.ConditionUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.ConditionRead:
        return await service.update_condition(session, principal, condition_id, body)

    @admin.get("/level-schemes", summary="Member-level schemes and their levels")
    async def list_schemes(session: SessionDep, principal: CurrentPrincipal) -> list[schemas.LevelSchemeRead]:
        return await service.list_schemes(session)

    @admin.post("/level-schemes", status_code=status.HTTP_201_CREATED, summary="Add a level scheme (admins)")
    async def add_scheme(
        body: schemas.LevelSchemeCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.LevelSchemeRead:
        return await service.add_scheme(session, principal, body)

    @admin.patch("/member-levels/{level_id}", summary="Change a level's benefits or thresholds (admins)")
    async def update_level(
        level_id: Id, body: schemas.MemberLevelUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.MemberLevelRead:
        return await service.update_level(session, principal, level_id, body)

    @admin.get("/card-types", summary="Member card types")
    async def list_card_types(session: SessionDep, principal: CurrentPrincipal) -> list[schemas.CardTypeRead]:
        return await service.list_card_types(session)

    @admin.post("/card-types", status_code=status.HTTP_201_CREATED, summary="Add a card type (admins)")
    async def add_card_type(
        body: schemas.CardTypeCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.CardTypeRead:
        return await service.add_card_type(session, principal, body)

    @admin.patch("/card-types/{card_type_id}", summary="Change a card type (admins)")
    async def update_card_type(
        card_type_id: Id, body: schemas.CardTypeUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.CardTypeRead:
        return await service.update_card_type(session, principal, card_type_id, body)

    @admin.get("/reward-products", summary="Products redeemable with points")
    async def list_products(
        session: SessionDep, principal: CurrentPrincipal, include_inactive: bool = False
    ) -> list[schemas.RewardProductRead]:
        return await service.list_products(session, include_inactive)

    @admin.post("/reward-products", status_code=status.HTTP_201_CREATED, summary="Add a redeemable product (admins)")
    async def add_product(
        body: schemas.RewardProductCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.RewardProductRead:
        return await service.add_product(session, principal, body)

    @admin.patch("/reward-products/{product_id}", summary="Change a redeemable product (admins)")
    async def update_product(
        product_id: Id, body: schemas.RewardProductUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.RewardProductRead:
        return await service.update_product(session, principal, product_id, body)

    @admin.get("/statistics/yearly", summary="Patients by visits, amount and both in a year (supervisors)")
    async def yearly_statistics(
        session: SessionDep,
        principal: CurrentPrincipal,
        year: Annotated[int, Query(ge=2000, le=2100)],
        visit_thresholds: Annotated[list[int], Query(min_length=1, max_length=10)] = [3, 6, 10],  # noqa: B006
        amount_thresholds_fen: Annotated[list[int], Query(min_length=1, max_length=10)] = [  # noqa: B006
            100_000,
            500_000,
            1_000_000,
        ],
    ) -> schemas.YearlyStatistics:
        for name, values in (("visit_thresholds", visit_thresholds), ("amount_thresholds_fen", amount_thresholds_fen)):
            if any(v < 1 or v > 10**12 for v in values):
                raise ProblemError(422, "request.invalid", "The request is not valid", field=name)
        return await service.yearly_statistics(session, principal, year, visit_thresholds, amount_thresholds_fen)

    router.include_router(patients)
    router.include_router(funds)
    router.include_router(admin)
    return router
