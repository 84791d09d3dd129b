from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from callcenter_common.contracts.acd import Direction


class ChannelRead(BaseModel):
    uniqueid: str
    name: str
    linkedid: str
    call_id: str | None
    kind: Literal["agent", "external", "local"]
    extension: str | None
    state: int
    caller_number: str
    caller_name: str
    connected_number: str
    connected_name: str
    context: str
    exten: str
    bridge_id: str | None
    on_hold: bool
    music_on_hold: bool
    recording: bool
    created_at: datetime


class CallRead(BaseModel):
    call_id: str
    direction: Direction
    status: Literal["waiting", "ringing", "talking", "held"]
    caller_number: str
    caller_name: str
    dnis: str
    started_at: datetime
    answered_at: datetime | None
    agent_extension: str | None
    agent_channel: str | None
    channels: list[str]
    variables: dict[str, str]


class CallPage(BaseModel):
    items: list[CallRead]
    next_cursor: str | None = None


class ChannelPage(BaseModel):
    items: list[ChannelRead]
    next_cursor: str | None = None


class AmiStatusRead(BaseModel):
    connected: bool
    host: str
    port: int
    version: str
    last_event_at: datetime | None
    reconnects: int
    last_error: str
    resyncs: int
    last_resync_at: datetime | None
    last_resync_error: str
    live_calls: int
    live_channels: int
    facts_waiting: int
    reading_paused: bool


# -- routing (issue #6) ------------------------------------------------------------------------------

Code = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
]
Number = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32, pattern=r"^\+?[0-9 ()-]+$")
]
StrategyName = Literal["longest_idle", "fewest_calls", "round_robin"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueFields(StrictModel):
    name: Annotated[str, StringConstraints(max_length=120)] = ""
    priority: Annotated[int, Field(ge=0, le=100, description="higher is answered first")] = 0
    groups: list[Code] = []
    strategy: StrategyName = "longest_idle"
    ring_timeout_seconds: Annotated[int, Field(ge=5, le=120)] = 20
    max_wait_seconds: Annotated[int | None, Field(ge=10, le=7_200)] = None
    overflow_queue_id: Code | None = None
    overflow_callback: bool = False
    owner_wait_seconds: Annotated[int, Field(ge=0, le=600)] = 30


class QueueCreate(QueueFields):
    queue_id: Code


class QueueUpdate(StrictModel):
    name: Annotated[str, StringConstraints(max_length=120)] | None = None
    priority: Annotated[int, Field(ge=0, le=100)] | None = None
    groups: list[Code] | None = None
    strategy: StrategyName | None = None
    ring_timeout_seconds: Annotated[int, Field(ge=5, le=120)] | None = None
    max_wait_seconds: Annotated[int, Field(ge=10, le=7_200)] | None = None
    overflow_queue_id: Code | None = None
    overflow_callback: bool | None = None
    owner_wait_seconds: Annotated[int, Field(ge=0, le=600)] | None = None


class QueueRead(QueueFields):
    model_config = ConfigDict(from_attributes=True)

    queue_id: str
    updated_at: datetime


class DnisBindingWrite(StrictModel):
    queue_id: Code


class DnisBindingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    dnis: str
    queue_id: str


class NumberRuleWrite(StrictModel):
    agent_work_number: Code


class NumberRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    caller_number: str
    agent_work_number: str


class RegionRuleWrite(StrictModel):
    groups: list[Code] = []
    agent_work_numbers: list[Code] = []


class RegionRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    region: str
    groups: list[str]
    agent_work_numbers: list[str]


class BlacklistCreate(StrictModel):
    number: Number
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)]


class BlacklistRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: str
    reason: str
    status: Literal["pending", "approved", "rejected"]
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    blocked_calls: int


class BlacklistPage(BaseModel):
    items: list[BlacklistRead]
    next_cursor: str | None = None


class WaitingCallRead(BaseModel):
    call_id: str
    caller_number: str
    dnis: str
    queue: str
    priority: int
    status: Literal["waiting", "offered"]
    rule: str
    groups: list[str]
    waiting_for_agent: str | None
    offered_to: str | None
    waited_seconds: float
    region: str | None


class RoutableAgentRead(BaseModel):
    work_number: str
    extension: str | None
    state: str
    groups: list[str]
    available: bool
    reserved_for: str | None
    held: str | None
    idle_since: datetime
    calls_today: int


class QueueFigures(BaseModel):
    queue_id: str
    waiting: int
    offered: int
    longest_wait_seconds: float
    available_agents: int


class MissedCallRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    call_id: str
    kind: Literal["abandoned", "unanswered", "agent_missed"]
    caller_number: str
    dnis: str
    queue: str | None
    agent_extension: str | None
    reason: str
    waited_seconds: float
    at: datetime


class MissedCallPage(BaseModel):
    items: list[MissedCallRead]
    next_cursor: str | None = None
