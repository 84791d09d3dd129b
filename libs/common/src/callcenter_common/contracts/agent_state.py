"""Events agent-state publishes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from callcenter_common.events import Event

AgentStateName = Literal[
    "logged_out", "idle", "busy", "short_break", "after_call_work", "ringing", "talking", "on_hold"
]


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
