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
    # Added: False when another agent answered this call before (after a transfer), so a
    # count of answered calls takes only the first.
    first_answer: bool = True


MissedReason = Literal["no_answer", "busy", "rejected", "cancelled", "answered_elsewhere", "failed"]


class CallAgentMissed(CallEvent, AgentRef):
    """An agent's phone rang for the call and that leg ended unanswered (AGENT-11).

    Every `call.ringing` is closed by a `call.answered` or a `call.agent_missed` of the
    same `agent_channel`, so an agent never stays "ringing"."""

    name: ClassVar[str] = "call.agent_missed"

    agent_channel: str
    reason: MissedReason
    cause: int = 0
    ringing_at: datetime
    missed_at: datetime
    ring_seconds: float = 0.0


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
    """`caller_number` is the outside party; agent fields name the last agent who answered."""

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
    # Added: the agent leg that talked last, and whether the ACD saw the end itself or
    # found the call gone when it resynchronised with the PBX (times then are estimates).
    agent_channel: str | None = None
    seen_by_resync: bool = False


RoutingRule = Literal[
    "blacklist",
    "designated_number",
    "owner",
    "owner_wait",
    "owner_overflow",
    "region",
    "queue",
    "overflow",
    "retry",
    "pickup",
]
RoutingTarget = Literal["agent", "queue", "blocked", "callback"]


class CallRouted(CallEvent):
    """A routing decision of the ACD (CORE-2): which rule applied and where the call goes.

    `target` agent: offered to `agent_extension` now (or waiting for that agent with
    rule `owner_wait`); queue: waiting in `queue` for its groups; blocked: blacklisted and
    hung up; callback: overflowed to a call-back."""

    name: ClassVar[str] = "call.routed"

    rule: RoutingRule
    target: RoutingTarget
    queue: str | None = None
    groups: list[str] = []
    agent_extension: str | None = None
    agent_work_number: str | None = None
    reason: str = ""
    routed_at: datetime


DequeueReason = Literal["answered", "abandoned", "overflowed", "blocked"]


class CallDequeued(CallEvent):
    """A call left the ACD's waiting calls: answered by an agent, abandoned by the caller while
    waiting or ringing, overflowed to a call-back, or blocked. `waited_seconds` from its first
    routing decision."""

    name: ClassVar[str] = "call.dequeued"

    queue: str | None = None
    reason: DequeueReason
    agent_extension: str | None = None
    waited_seconds: float = 0.0
    dequeued_at: datetime


class CallbackRequested(Event):
    """A caller should be called back (AGENT-22): the call overflowed to a call-back or was lost."""

    name: ClassVar[str] = "callback.requested"

    call_id: str
    caller_number: str
    dnis: str = ""
    queue: str | None = None
    reason: str
    requested_at: datetime


class QueueFigures(Event):
    queue_id: str
    waiting: int
    offered: int
    longest_wait_seconds: float
    available_agents: int


class QueueFiguresUpdated(Event):
    """Live figures of the ACD (CORE-6), pushed about every second to supervisors' screens
    (envelope `audience`); a snapshot, so one lost is replaced by the next."""

    name: ClassVar[str] = "queue.figures_updated"

    queues: list[QueueFigures]
    agents_by_state: dict[str, int]
    at: datetime
