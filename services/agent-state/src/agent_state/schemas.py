from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agent_state.roles import Department

WorkNumber = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
Extension = Field(default=None, min_length=2, max_length=20, pattern=r"^[0-9]+$")
PermissionName = Annotated[str, Field(min_length=3, max_length=100, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
Reason = Field(default="", max_length=100)


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# --- authentication -------------------------------------------------------------------------


class LoginRequest(BaseModel):
    work_number: str = WorkNumber
    password: str = Field(min_length=1, max_length=256)
    extension: str | None = Extension


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=16, max_length=200)


class PasswordChange(BaseModel):
    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class PasswordReset(BaseModel):
    new_password: str = Field(min_length=1, max_length=256)


class UserRead(Orm):
    id: str
    work_number: str
    name: str
    department: Department
    role: str
    extension: str | None
    active: bool
    locked_until: datetime | None
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str
    user: UserRead


class RevocationRead(Orm):
    user_id: str
    session_id: str | None
    not_before: float
    expires_at: float
    reason: str


# --- organisation ---------------------------------------------------------------------------


class UserCreate(BaseModel):
    work_number: str = WorkNumber
    name: str = Field(min_length=1, max_length=100)
    role: str = Field(min_length=1, max_length=40)
    department: Department | None = None  # defaults to the role's department
    extension: str | None = Extension
    password: str = Field(min_length=1, max_length=256)


class UserUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    role: str | None = Field(default=None, min_length=1, max_length=40)
    department: Department | None = None
    extension: str | None = Extension
    active: bool | None = None


class GroupRef(BaseModel):
    id: str
    name: str
    relation: Literal["member", "team_lead", "manager"]
    signed_in: bool = False


class MeRead(BaseModel):
    user: UserRead
    permissions: list[str]
    groups: list[GroupRef]


class RoleRead(BaseModel):
    name: str
    department: Department
    title: str
    permissions: list[str]


class RolePermissionsUpdate(BaseModel):
    permissions: list[PermissionName] = Field(max_length=200)


class PermissionRead(BaseModel):
    name: str
    description: str


class DepartmentRead(BaseModel):
    name: Department
    roles: list[str]


class GroupCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    team_lead_id: str | None = None
    manager_id: str | None = None
    after_call_work_seconds: int | None = Field(default=None, ge=0, le=3600)


class GroupUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    team_lead_id: str | None = None
    manager_id: str | None = None
    after_call_work_seconds: int | None = Field(default=None, ge=0, le=3600)


class GroupRead(Orm):
    id: str
    name: str
    description: str
    team_lead_id: str | None
    manager_id: str | None
    after_call_work_seconds: int | None


class GroupMemberRead(BaseModel):
    user_id: str
    work_number: str
    name: str
    role: str
    signed_in: bool


# --- agent state ----------------------------------------------------------------------------


AgentStateName = Literal[
    "logged_out", "idle", "busy", "short_break", "after_call_work", "ringing", "talking", "on_hold"
]


class StateChangeRequest(BaseModel):
    state: Literal["idle", "busy", "short_break", "after_call_work"]
    reason: str = Reason


class MuteRequest(BaseModel):
    muted: bool


class ForceRequest(BaseModel):
    reason: str = Reason


class AgentStateRead(BaseModel):
    user_id: str
    work_number: str
    name: str
    state: AgentStateName
    reason: str
    since: datetime
    extension: str | None
    call_id: str | None
    muted: bool
    after_call_work_until: datetime | None
    next_state: AgentStateName | None
    next_reason: str
    groups: list[str]


class RoutableAgentRead(BaseModel):
    user_id: str
    work_number: str
    extension: str | None
    state: AgentStateName
    since: datetime
    groups: list[str]


class TimelineEntryRead(Orm):
    id: int
    state: AgentStateName
    reason: str
    started_at: datetime
    ended_at: datetime | None
    changed_by: str | None
    call_id: str | None


class SupervisorActionRead(Orm):
    id: int
    actor_id: str
    target_id: str
    action: Literal["force_logout", "force_busy", "force_idle"]
    reason: str
    previous_state: AgentStateName
    at: datetime


# --- announcements, address book, shifts ----------------------------------------------------


class AnnouncementCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10_000)
    audience: Literal["user", "group", "everyone"]
    target_user_id: str | None = None
    target_group_id: str | None = None


class AnnouncementRead(BaseModel):
    id: str
    author_id: str
    title: str
    body: str
    audience: Literal["user", "group", "everyone"]
    target_user_id: str | None
    target_group_id: str | None
    created_at: datetime
    read: bool
    read_at: datetime | None


class ContactCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=1, max_length=40, pattern=r"^[0-9+\-() ]+$")
    mobile: str = Field(default="", max_length=40, pattern=r"^[0-9+\-() ]*$")
    organization: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=200, pattern=r"^$|^[^@\s]+@[^@\s]+$")
    note: str = Field(default="", max_length=2000)
    shared: bool = False


class ContactUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    phone: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^[0-9+\-() ]+$")
    mobile: str | None = Field(default=None, max_length=40, pattern=r"^[0-9+\-() ]*$")
    organization: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=200, pattern=r"^$|^[^@\s]+@[^@\s]+$")
    note: str | None = Field(default=None, max_length=2000)


class ContactRead(Orm):
    id: str
    owner_id: str | None
    shared: bool
    name: str
    phone: str
    mobile: str
    organization: str
    email: str
    note: str
    updated_at: datetime


class ShiftCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    starts_at: time
    ends_at: time


class ShiftUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    starts_at: time | None = None
    ends_at: time | None = None


class ShiftRead(Orm):
    id: str
    name: str
    starts_at: time
    ends_at: time


class RosterCreate(BaseModel):
    user_id: str
    day: date
    shift_id: str


class RosterRead(Orm):
    id: str
    user_id: str
    day: date
    shift_id: str


class CoverageSlot(BaseModel):
    starts_at: datetime
    ends_at: datetime
    planned: int
    logged_in: int
    planned_and_logged_in: int


class CoverageRead(BaseModel):
    day: date
    timezone: str
    slot_minutes: int
    group_id: str | None
    slots: list[CoverageSlot]
