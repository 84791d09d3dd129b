"""The ACD's call facts drive ringing, talking, on hold and after-call work (AGENT-5)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from agent_state.service import AgentStateService
from agent_state.states import CallFact
from callcenter_common.contracts.acd import (
    CallAgentMissed,
    CallAnswered,
    CallEnded,
    CallHeld,
    CallResumed,
    CallRinging,
)
from callcenter_common.events import Envelope


class CallEventConsumer:
    """Queue `agent-state.calls`; each event id is applied once (the runtime's inbox)."""

    names = (
        CallRinging.name,
        CallAnswered.name,
        CallAgentMissed.name,
        CallHeld.name,
        CallResumed.name,
        CallEnded.name,
    )

    def __init__(self, agents: AgentStateService) -> None:
        self.agents = agents

    async def handle(self, session: AsyncSession, envelope: Envelope) -> None:
        if envelope.name == CallRinging.name:
            ringing = CallRinging.from_envelope(envelope)
            await self.agents.apply_call_fact(
                session,
                CallFact.RINGING,
                extension=ringing.agent_extension,
                call_id=ringing.call_id,
                at=ringing.ringing_at,
            )
        elif envelope.name == CallAnswered.name:
            answered = CallAnswered.from_envelope(envelope)
            await self.agents.apply_call_fact(
                session,
                CallFact.ANSWERED,
                extension=answered.agent_extension,
                call_id=answered.call_id,
                at=answered.answered_at,
            )
        elif envelope.name == CallAgentMissed.name:
            missed = CallAgentMissed.from_envelope(envelope)
            await self.agents.apply_call_fact(
                session, CallFact.MISSED, extension=missed.agent_extension, call_id=missed.call_id, at=missed.missed_at
            )
        elif envelope.name == CallHeld.name:
            held = CallHeld.from_envelope(envelope)
            await self.agents.apply_call_fact(
                session, CallFact.HELD, extension=held.agent_extension, call_id=held.call_id, at=held.held_at
            )
        elif envelope.name == CallResumed.name:
            resumed = CallResumed.from_envelope(envelope)
            await self.agents.apply_call_fact(
                session,
                CallFact.RESUMED,
                extension=resumed.agent_extension,
                call_id=resumed.call_id,
                at=resumed.resumed_at,
            )
        elif envelope.name == CallEnded.name:
            ended = CallEnded.from_envelope(envelope)
            await self.agents.apply_call_fact(
                session,
                CallFact.ENDED,
                extension=ended.agent_extension,
                call_id=ended.call_id,
                at=ended.ended_at,
                answered=ended.answered_at is not None and ended.outcome == "answered",
            )
