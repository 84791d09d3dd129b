"""Events of the patient service: one method per business fact, staged in the caller's transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callcenter_common.contracts.patient import (
    OwnershipChangeKind,
    PatientLevelChanged,
    PatientOwnerChanged,
    PatientRegistered,
    PaymentFailed,
    PaymentFailureReason,
    PaymentRefunded,
    PaymentSucceeded,
)
from callcenter_common.events import Envelope
from patient.models import FundPayment, FundRefund, MemberLevel, OwnershipChange, Patient

Publish = Callable[[AsyncSession, Envelope], Awaitable[None]]


class Notifier:
    def __init__(self, publish: Publish, source: str = "patient") -> None:
        self._publish = publish
        self.source = source

    async def patient_registered(self, session: AsyncSession, patient: Patient) -> None:
        event = PatientRegistered(
            patient_id=patient.id,
            patient_number=patient.patient_number,
            mobile=patient.mobile,
            patient_name=patient.name,
            owner_user_id=patient.owner_user_id,
            owner_work_number=patient.owner_work_number,
            source_channel=patient.source_channel,
            registered_at=patient.registered_at,
            registered_by=patient.registered_by,
        )
        await self._publish(session, event.envelope(self.source, occurred_at=patient.registered_at))

    async def owner_changed(self, session: AsyncSession, mobile: str, change: OwnershipChange) -> None:
        kind: OwnershipChangeKind = change.kind  # type: ignore[assignment]
        event = PatientOwnerChanged(
            patient_id=change.patient_id,
            mobile=mobile,
            owner_user_id=change.to_user_id,
            owner_work_number=change.to_work_number,
            previous_owner_user_id=change.from_user_id,
            previous_owner_work_number=change.from_work_number,
            kind=kind,
            changed_by=change.changed_by,
            changed_at=change.changed_at,
        )
        await self._publish(session, event.envelope(self.source, occurred_at=change.changed_at))

    async def level_changed(
        self,
        session: AsyncSession,
        patient_id: int,
        mobile: str,
        scheme_code: str,
        level: MemberLevel,
        previous: MemberLevel | None,
        at: datetime,
    ) -> None:
        event = PatientLevelChanged(
            patient_id=patient_id,
            mobile=mobile,
            scheme_code=scheme_code,
            level_code=level.code,
            previous_level_code=previous.code if previous else None,
            treatment_price_percent=level.treatment_price_percent,
            changed_at=at,
        )
        await self._publish(session, event.envelope(self.source, occurred_at=at))

    async def payment_succeeded(self, session: AsyncSession, payment: FundPayment) -> None:
        event = PaymentSucceeded(
            payment_id=payment.id,
            patient_id=payment.patient_id,
            amount_fen=payment.amount_fen,
            balance_after_fen=payment.balance_after_fen or 0,
            reference=payment.reference,
            idempotency_key=payment.idempotency_key,
            paid_at=payment.created_at,
        )
        await self._publish(session, event.envelope(self.source, occurred_at=payment.created_at))

    async def payment_failed(self, session: AsyncSession, payment: FundPayment) -> None:
        reason: PaymentFailureReason = payment.failure_reason  # type: ignore[assignment]
        event = PaymentFailed(
            payment_id=payment.id,
            patient_id=payment.patient_id,
            amount_fen=payment.amount_fen,
            reason=reason,
            reference=payment.reference,
            idempotency_key=payment.idempotency_key,
            failed_at=payment.created_at,
        )
        await self._publish(session, event.envelope(self.source, occurred_at=payment.created_at))

    async def payment_refunded(self, session: AsyncSession, refund: FundRefund, patient_id: int) -> None:
        event = PaymentRefunded(
            refund_id=refund.id,
            payment_id=refund.payment_id,
            patient_id=patient_id,
            amount_fen=refund.amount_fen,
            balance_after_fen=refund.balance_after_fen,
            refunded_at=refund.created_at,
        )
        await self._publish(session, event.envelope(self.source, occurred_at=refund.created_at))
