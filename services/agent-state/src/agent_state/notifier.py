"""One method per business fact; every event leaves through the outbox with the state change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from agent_state.models import AgentStatus, Announcement, User
from callcenter_common.auth import TokensRevoked
from callcenter_common.contracts.agent_state import (
    AgentGroupsChanged,
    AgentMuteChanged,
    AgentStateChanged,
    AgentSupervisorActionTaken,
    AnnouncementPublished,
)
from callcenter_common.events import Audience
from callcenter_common.service import ServiceRuntime


class Notifier:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.source = runtime.name

    async def agent_state_changed(
        self,
        session: AsyncSession,
        user: User,
        status: AgentStatus,
        previous_state: str,
        groups: Sequence[str],
        *,
        extension: str | None,
    ) -> None:
        event = AgentStateChanged(
            user_id=user.id,
            work_number=user.work_number,
            extension=extension,
            state=status.state,  # type: ignore[arg-type]
            previous_state=previous_state,  # type: ignore[arg-type]
            reason=status.reason,
            groups=list(groups),
            changed_at=status.since,
            changed_by=status.changed_by,
            call_id=status.call_id,
            after_call_work_until=status.after_call_work_until,
        )
        # The agent's own screen follows every change, also the ones the ACD or a supervisor made.
        envelope = event.envelope(
            self.source,
            correlation_id=status.call_id,
            audience=Audience(user_ids=(user.id,)),
            occurred_at=status.since,
        )
        await self.runtime.publish(session, envelope)

    async def agent_groups_changed(
        self, session: AsyncSession, user: User, extension: str | None, groups: Sequence[str], at: datetime
    ) -> None:
        event = AgentGroupsChanged(
            user_id=user.id, work_number=user.work_number, extension=extension, groups=list(groups), changed_at=at
        )
        await self.runtime.publish(session, event.envelope(self.source, occurred_at=at))

    async def agent_mute_changed(
        self, session: AsyncSession, user: User, status: AgentStatus, call_id: str, at: datetime
    ) -> None:
        event = AgentMuteChanged(
            user_id=user.id,
            work_number=user.work_number,
            extension=status.extension,
            call_id=call_id,
            muted=status.call_muted,
            changed_at=at,
        )
        envelope = event.envelope(
            self.source, correlation_id=call_id, audience=Audience(user_ids=(user.id,)), occurred_at=at
        )
        await self.runtime.publish(session, envelope)

    async def supervisor_action_taken(
        self,
        session: AsyncSession,
        *,
        action: str,
        agent: User,
        supervisor: User,
        previous_state: str,
        state: str,
        reason: str,
        at: datetime,
    ) -> None:
        event = AgentSupervisorActionTaken(
            action=action,  # type: ignore[arg-type]
            agent_user_id=agent.id,
            agent_work_number=agent.work_number,
            supervisor_user_id=supervisor.id,
            supervisor_work_number=supervisor.work_number,
            previous_state=previous_state,  # type: ignore[arg-type]
            state=state,  # type: ignore[arg-type]
            reason=reason,
            at=at,
        )
        envelope = event.envelope(self.source, audience=Audience(user_ids=(agent.id,)), occurred_at=at)
        await self.runtime.publish(session, envelope)

    async def tokens_revoked(
        self, session: AsyncSession, *, user_id: str, not_before: float, session_id: str | None, reason: str
    ) -> None:
        event = TokensRevoked(user_id=user_id, not_before=not_before, session_id=session_id, reason=reason)
        await self.runtime.publish(session, event.envelope(self.source))

    async def announcement_published(self, session: AsyncSession, announcement: Announcement) -> None:
        event = AnnouncementPublished(
            announcement_id=announcement.id,
            author_user_id=announcement.author_id,
            title=announcement.title,
            body=announcement.body,
            audience=announcement.audience,  # type: ignore[arg-type]
            target_user_id=announcement.target_user_id,
            target_group_id=announcement.target_group_id,
            created_at=announcement.created_at,
        )
        if announcement.audience == "everyone":
            audience = Audience(everyone=True)
        elif announcement.target_group_id is not None:
            audience = Audience(group_ids=(announcement.target_group_id,))
        else:
            assert announcement.target_user_id is not None
            audience = Audience(user_ids=(announcement.target_user_id,))
        envelope = event.envelope(self.source, audience=audience, occurred_at=announcement.created_at)
        await self.runtime.publish(session, envelope)
