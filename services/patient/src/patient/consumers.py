"""Events the patient service follows; each is applied once per event id (the runtime's inbox)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from callcenter_common.contracts.acd import CallAnswered
from callcenter_common.contracts.agent_state import AgentStateChanged
from callcenter_common.contracts.patient import OrderCompleted
from callcenter_common.events import Envelope
from callcenter_common.service import ServiceRuntime
from patient.service import PatientService


class PatientConsumers:
    def __init__(self, service: PatientService) -> None:
        self.service = service

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.consume("first_contact", [CallAnswered.name], self.on_call_answered)
        runtime.consume("agents", [AgentStateChanged.name], self.on_agent_state_changed)
        runtime.consume("orders", [OrderCompleted.name], self.on_order_completed)

    async def on_call_answered(self, session: AsyncSession, envelope: Envelope) -> None:
        await self.service.record_call_answered(session, CallAnswered.from_envelope(envelope))

    async def on_agent_state_changed(self, session: AsyncSession, envelope: Envelope) -> None:
        await self.service.record_agent_state(session, AgentStateChanged.from_envelope(envelope))

    async def on_order_completed(self, session: AsyncSession, envelope: Envelope) -> None:
        await self.service.record_order_completed(session, OrderCompleted.from_envelope(envelope))
