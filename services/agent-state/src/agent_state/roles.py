"""The organisation of WO-1 / AGENT-25 and the default permissions per role (AGENT-31).

Defaults are written once when a role is first created; afterwards an admin edits them
and startup never overwrites the edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from callcenter_common.auth import (
    ROLE_ADMIN,
    ROLE_AGENT,
    ROLE_DIRECTOR,
    ROLE_MANAGER,
    ROLE_SUPERVISOR,
    ROLE_TEAM_LEAD,
)

ROLE_SERVICE = "service"
ROLE_PHARMACIST = "pharmacist"
ROLE_FINANCE_CLERK = "finance_clerk"
ROLE_DOCTOR = "doctor"
ROLE_DOCTOR_ASSISTANT = "doctor_assistant"


class Department(StrEnum):
    CALL_CENTER = "call_center"
    WAREHOUSE = "warehouse"
    FINANCE = "finance"
    CLINIC = "clinic"
    SYSTEM = "system"


# Permission names are free strings (other services check their own); these are the known ones.
PERM_AGENTS_CONTROL = "agents.control"
PERM_AGENTS_MONITOR = "agents.monitor"
PERM_AGENTS_READ_ALL = "agents.read_all"
PERM_ANNOUNCEMENTS_PUBLISH = "announcements.publish"
PERM_ADDRESS_BOOK_SHARED = "address_book.manage_shared"
PERM_SHIFTS_MANAGE = "shifts.manage"
PERM_USERS_MANAGE = "users.manage"
PERM_GROUPS_MANAGE = "groups.manage"
PERM_ROLES_MANAGE = "roles.manage"

PERMISSIONS: dict[str, str] = {
    PERM_AGENTS_CONTROL: "Force agents of one's scope to log out, busy or idle (AGENT-19…21)",
    PERM_AGENTS_MONITOR: "See states and timelines of agents of one's scope (CORE-6)",
    PERM_AGENTS_READ_ALL: "Read every agent's routable state (services such as the ACD)",
    PERM_ANNOUNCEMENTS_PUBLISH: "Publish announcements to agents of one's scope (AGENT-26)",
    PERM_ADDRESS_BOOK_SHARED: "Edit the shared address book (AGENT-28)",
    PERM_SHIFTS_MANAGE: "Define shifts and rosters (AGENT-30)",
    PERM_USERS_MANAGE: "Create and edit users, reset passwords",
    PERM_GROUPS_MANAGE: "Create and edit agent groups and their members",
    PERM_ROLES_MANAGE: "Edit the permissions of roles (AGENT-31)",
    "call.transfer.external": "Transfer a call to an outside number (AGENT-8.3)",
    "call.invite.external": "Invite an outside number into a three-way call (AGENT-8.3)",
    "call.spy": "Listen, whisper, barge, intercept and hang up agents' calls (AGENT-15…18)",
    "blacklist.approve": "Approve blacklist requests (AGENT-14)",
    "recording.play.any": "Play any recording",
    "wechat.force_logout": "Force an agent out of WeChat chat (MEDIA-4.3)",
    "patients.read_all": "Search all patients (WO-3.3)",
    "quality.score": "Score recordings (AGENT-27)",
}

_LEAD = frozenset(
    {
        PERM_AGENTS_CONTROL,
        PERM_AGENTS_MONITOR,
        PERM_ANNOUNCEMENTS_PUBLISH,
        PERM_SHIFTS_MANAGE,
        "call.transfer.external",
        "call.invite.external",
        "call.spy",
        "blacklist.approve",
        "wechat.force_logout",
        "quality.score",
    }
)
_ALL_SEEING = _LEAD | {PERM_ADDRESS_BOOK_SHARED, "recording.play.any", "patients.read_all"}


@dataclass(frozen=True, slots=True)
class RoleDefault:
    name: str
    department: Department
    title: str
    permissions: frozenset[str]


DEFAULT_ROLES: tuple[RoleDefault, ...] = (
    RoleDefault(ROLE_DIRECTOR, Department.CALL_CENTER, "Director", _ALL_SEEING | {PERM_GROUPS_MANAGE}),
    RoleDefault(ROLE_MANAGER, Department.CALL_CENTER, "Manager", _ALL_SEEING),
    RoleDefault(ROLE_SUPERVISOR, Department.CALL_CENTER, "Supervisor", _ALL_SEEING),
    RoleDefault(ROLE_TEAM_LEAD, Department.CALL_CENTER, "Team lead", _LEAD),
    # AGENT-8.3: outside transfer/invite stays off for agents until an admin grants it.
    RoleDefault(ROLE_AGENT, Department.CALL_CENTER, "Agent", frozenset()),
    RoleDefault(ROLE_PHARMACIST, Department.WAREHOUSE, "Regional pharmacy staff", frozenset()),
    RoleDefault(ROLE_FINANCE_CLERK, Department.FINANCE, "Finance (collection, settlement)", frozenset()),
    RoleDefault(ROLE_DOCTOR, Department.CLINIC, "Doctor", frozenset()),
    RoleDefault(ROLE_DOCTOR_ASSISTANT, Department.CLINIC, "Doctor assistant", frozenset()),
    RoleDefault(
        ROLE_ADMIN,
        Department.SYSTEM,
        "System administrator",
        frozenset({PERM_USERS_MANAGE, PERM_GROUPS_MANAGE, PERM_ROLES_MANAGE, PERM_ADDRESS_BOOK_SHARED}),
    ),
    RoleDefault(ROLE_SERVICE, Department.SYSTEM, "Service account", frozenset({PERM_AGENTS_READ_ALL})),
)

# Roles that take calls: only they log in on an extension and have an agent state.
TELEPHONY_ROLES = frozenset({ROLE_AGENT, ROLE_TEAM_LEAD, ROLE_SUPERVISOR, ROLE_MANAGER, ROLE_DIRECTOR})
