"""Events the patient service publishes, and `order.completed`, which it consumes.

Money is integer fen (1 yuan = 100 fen) everywhere; mobiles are 11 bare digits for
Chinese mobiles, E.164 (`+852…`) for others.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from callcenter_common.events import Event

OwnershipChangeKind = Literal["first_contact", "registration", "assigned", "moved"]
PaymentFailureReason = Literal["insufficient_funds", "no_fund_account"]


class PatientRegistered(Event):
    """An agent registered a patient (WO-3.1)."""

    name: ClassVar[str] = "patient.registered"

    patient_id: int
    patient_number: str | None = None
    mobile: str
    patient_name: str
    owner_user_id: str | None = None
    owner_work_number: str | None = None
    source_channel: str
    registered_at: datetime
    registered_by: str


class PatientOwnerChanged(Event):
    """The owner agent of a patient (mobile) is set or moved (WO-3.4); the ACD keeps a copy (CORE-2.2)."""

    name: ClassVar[str] = "patient.owner_changed"

    patient_id: int
    mobile: str
    owner_user_id: str
    owner_work_number: str
    previous_owner_user_id: str | None = None
    previous_owner_work_number: str | None = None
    kind: OwnershipChangeKind
    changed_by: str | None = None  # user id of the supervisor; None when the rule did it
    changed_at: datetime


class PatientLevelChanged(Event):
    """A member moved to another level (WO-3.2), e.g. promoted after an order."""

    name: ClassVar[str] = "patient.level_changed"

    patient_id: int
    mobile: str
    scheme_code: str
    level_code: str
    previous_level_code: str | None = None
    treatment_price_percent: int
    changed_at: datetime


class PaymentSucceeded(Event):
    """A member's fund account was charged (WO-3.7)."""

    name: ClassVar[str] = "payment.succeeded"

    payment_id: int
    patient_id: int
    amount_fen: int = Field(gt=0)
    balance_after_fen: int
    reference: str = ""
    idempotency_key: str
    paid_at: datetime


class PaymentFailed(Event):
    """A charge of a member's fund account was refused (WO-3.7)."""

    name: ClassVar[str] = "payment.failed"

    payment_id: int
    patient_id: int
    amount_fen: int = Field(gt=0)
    reason: PaymentFailureReason
    reference: str = ""
    idempotency_key: str
    failed_at: datetime


class PaymentRefunded(Event):
    """Part or all of a succeeded payment went back to the member's fund account (WO-3.7)."""

    name: ClassVar[str] = "payment.refunded"

    refund_id: int
    payment_id: int
    patient_id: int
    amount_fen: int = Field(gt=0)
    balance_after_fen: int
    refunded_at: datetime


class OrderCompleted(Event):
    """Published by workorder when a patient's order is completed (paid / treated).

    The patient service earns points from it (WO-3.5) and promotes levels (WO-3.2).
    """

    name: ClassVar[str] = "order.completed"

    patient_id: int
    order_id: str
    amount_fen: int = Field(ge=0)
    completed_at: datetime
