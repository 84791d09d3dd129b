"""Events the ACD publishes. `correlation_id` of each envelope is the call's Asterisk Linkedid.

`call_id` is that Linkedid too. Agent fields are filled when the ACD knows the agent
(the extension always; user id and work number once agent-state has told the ACD who is
logged in on that extension).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from callcenter_common.events import Event

Direction = Literal["inbound", "outbound", "internal"]
Outcome = Literal["answered", "abandoned", "unanswered", "blocked", "overflowed", "failed"]
HangupBy = Literal["caller", "agent", "system", "unknown"]


class CallEvent(Event):
    call_id: str
    caller_number: str = ""
    dnis: str = ""
    direction: Direction = "inbound"


class AgentRef(Event):
    agent_extension: str | None = None
    agent_user_id: str | None = None
    agent_work_number: str | None = None


class CallStarted(CallEvent):
    name: ClassVar[str] = "call.started"

    caller_name: str = ""
    channel: str
    started_at: datetime


class CallQueued(CallEvent):
    name: ClassVar[str] = "call.queued"

    queue: str
    priority: int = 0
    queued_at: datetime


class CallRinging(CallEvent, AgentRef):
    name: ClassVar[str] = "call.ringing"

    agent_channel: str | None = None
    ringing_at: datetime


class CallAnswered(CallEvent, AgentRef):
    name: ClassVar[str] = "call.answered"

    agent_channel: str | None = None
    answered_at: datetime
    wait_seconds: float = 0.0


class CallHeld(CallEvent, AgentRef):
    name: ClassVar[str] = "call.held"

    held_at: datetime


class CallResumed(CallEvent, AgentRef):
    name: ClassVar[str] = "call.resumed"

    resumed_at: datetime


class CallTransferred(CallEvent, AgentRef):
    name: ClassVar[str] = "call.transferred"

    kind: Literal["blind", "attended"]
    target: str  # extension, outside number or queue
    transferred_at: datetime


class CallEnded(CallEvent, AgentRef):
    name: ClassVar[str] = "call.ended"

    outcome: Outcome
    hangup_by: HangupBy = "unknown"
    cause: int = 0
    cause_text: str = ""
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime
    wait_seconds: float = 0.0
    talk_seconds: float = 0.0
