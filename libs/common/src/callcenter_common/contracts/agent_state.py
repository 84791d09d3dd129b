"""Events agent-state publishes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from callcenter_common.events import Event

AgentStateName = Literal[
    "logged_out", "idle", "busy", "short_break", "after_call_work", "ringing", "talking", "on_hold"
]
SupervisorActionName = Literal["force_logout", "force_busy", "force_idle"]
AnnouncementAudience = Literal["user", "group", "everyone"]


class AgentStateChanged(Event):
    """Every change of an agent's state (AGENT-5); the ACD and reporting follow it."""

    name: ClassVar[str] = "agent.state_changed"

    user_id: str
    work_number: str
    extension: str | None = None
    state: AgentStateName
    previous_state: AgentStateName
    reason: str = ""
    groups: list[str] = []
    changed_at: datetime
    changed_by: str | None = None  # user id of a supervisor when forced (AGENT-19…21)
    # Added: the call that drives ringing / talking / on_hold / after_call_work, and when
    # after-call work ends by itself.
    call_id: str | None = None
    after_call_work_until: datetime | None = None


class AgentGroupsChanged(Event):
    """An agent signed in to or out of groups (AGENT-6): `groups` are the ones now taking calls."""

    name: ClassVar[str] = "agent.groups_changed"

    user_id: str
    work_number: str
    extension: str | None = None
    groups: list[str] = []
    changed_at: datetime


class AgentMuteChanged(Event):
    """The agent muted or unmuted their side of the current call (AGENT-5); the ACD applies it."""

    name: ClassVar[str] = "agent.mute_changed"

    user_id: str
    work_number: str
    extension: str | None = None
    call_id: str
    muted: bool
    changed_at: datetime


class AgentSupervisorActionTaken(Event):
    """A team lead, manager or director forced an agent out, busy or idle (AGENT-19…21)."""

    name: ClassVar[str] = "agent.supervisor_action_taken"

    action: SupervisorActionName
    agent_user_id: str
    agent_work_number: str
    supervisor_user_id: str
    supervisor_work_number: str
    previous_state: AgentStateName
    state: AgentStateName
    reason: str = ""
    at: datetime


class AnnouncementPublished(Event):
    """An announcement to one agent, a group or everyone (AGENT-26)."""

    name: ClassVar[str] = "announcement.published"

    announcement_id: str
    author_user_id: str
    title: str
    body: str
    audience: AnnouncementAudience
    target_user_id: str | None = None
    target_group_id: str | None = None
    created_at: datetime
