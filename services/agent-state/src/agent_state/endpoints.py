"""Thin routers: parse, call `service.py`, shape the answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import PlainTextResponse
from pydantic import AwareDatetime

from agent_state import schemas
from agent_state.roles import Department
from agent_state.service import Services, contact_read
from callcenter_common.auth import CurrentPrincipal, Principal
from callcenter_common.db import SessionDep
from callcenter_common.pagination import CursorQuery, LimitQuery
from callcenter_common.problems import PROBLEM_RESPONSES, ProblemError
from callcenter_common.service import RuntimeDep

PEM_MEDIA_TYPE = "application/x-pem-file"


def _me(principal: Principal, agent_id: str) -> str:
    return principal.user_id if agent_id == "me" else agent_id


def build_routers(services: Services, public_key_pem: str) -> list[APIRouter]:
    return [
        _auth_router(services, public_key_pem),
        _org_router(services),
        _agents_router(services),
        _announcements_router(services),
        _contacts_router(services),
        _shifts_router(services),
    ]


def _auth_router(services: Services, public_key_pem: str) -> APIRouter:
    router = APIRouter(prefix="/auth", tags=["auth"], responses=PROBLEM_RESPONSES)
    auth = services.auth

    @router.post("/login", summary="Log in with work number, password and extension (AGENT-1)")
    async def login(data: schemas.LoginRequest, runtime: RuntimeDep) -> schemas.TokenPair:
        async with runtime.db.session() as session:
            result = await auth.login(session, data)
        if isinstance(result, ProblemError):
            raise result
        return result

    @router.post("/refresh", summary="Trade a refresh token for a new pair (the old one is spent)")
    async def refresh(data: schemas.RefreshRequest, runtime: RuntimeDep) -> schemas.TokenPair:
        async with runtime.db.session() as session:
            result = await auth.refresh(session, data.refresh_token)
        if isinstance(result, ProblemError):
            raise result
        return result

    @router.post("/logout", summary="End the telephony login; state becomes logged_out (AGENT-2)")
    async def logout(session: SessionDep, principal: CurrentPrincipal) -> schemas.AgentStateRead:
        return await auth.logout(session, principal)

    @router.post(
        "/exit", status_code=status.HTTP_204_NO_CONTENT, summary="Leave: end the session, void its tokens (AGENT-3)"
    )
    async def exit_system(session: SessionDep, principal: CurrentPrincipal) -> Response:
        await auth.exit(session, principal)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.put("/password", summary="Change one's password; older tokens stop working (AGENT-4)")
    async def change_password(
        data: schemas.PasswordChange, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.TokenPair:
        return await auth.change_password(session, principal, data)

    @router.get(
        "/public-key",
        response_class=PlainTextResponse,
        summary="The Ed25519 public key (PEM) that verifies every token",
        responses={200: {"content": {PEM_MEDIA_TYPE: {}}}},
    )
    async def public_key() -> PlainTextResponse:
        return PlainTextResponse(public_key_pem, media_type=PEM_MEDIA_TYPE)

    @router.get("/revocations", summary="Revocations still in force, for services that start later")
    async def revocations(
        session: SessionDep, limit: LimitQuery = 500, cursor: CursorQuery = None
    ) -> schemas.Page[schemas.RevocationRead]:
        return await auth.revocations_page(session, cursor=cursor, limit=limit)

    return router


def _org_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["organisation"], responses=PROBLEM_RESPONSES)
    org = services.org

    @router.get("/users/me", summary="Who I am: user, permissions, groups")
    async def me(session: SessionDep, principal: CurrentPrincipal) -> schemas.MeRead:
        return await org.me(session, principal)

    @router.get("/departments", summary="Departments and their roles (WO-1)")
    async def departments(principal: CurrentPrincipal) -> list[schemas.DepartmentRead]:
        return org.departments()

    @router.get("/permissions", summary="Permission names known here")
    async def permissions(session: SessionDep, principal: CurrentPrincipal) -> list[schemas.PermissionRead]:
        return await org.permissions(session)

    @router.get("/roles", summary="Roles with their permissions (AGENT-25, AGENT-31)")
    async def roles(session: SessionDep, principal: CurrentPrincipal) -> list[schemas.RoleRead]:
        return await org.roles(session)

    @router.get("/roles/{name}")
    async def role(name: str, session: SessionDep, principal: CurrentPrincipal) -> schemas.RoleRead:
        return await org.role(session, name)

    @router.put("/roles/{name}/permissions", summary="Replace a role's permissions (AGENT-31, admins)")
    async def set_role_permissions(
        name: str, data: schemas.RolePermissionsUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.RoleRead:
        return await org.set_role_permissions(session, principal, name, data.permissions)

    @router.post("/users", status_code=status.HTTP_201_CREATED, summary="Create a user (admins)")
    async def create_user(
        data: schemas.UserCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.UserRead:
        return schemas.UserRead.model_validate(await org.create_user(session, principal, data))

    @router.get("/users", summary="Users one may see, by work number")
    async def list_users(
        session: SessionDep,
        principal: CurrentPrincipal,
        department: Department | None = None,
        role: Annotated[str | None, Query(max_length=40)] = None,
        q: Annotated[str | None, Query(max_length=100, description="work number or name contains")] = None,
        limit: LimitQuery = 50,
        cursor: CursorQuery = None,
    ) -> schemas.Page[schemas.UserRead]:
        return await org.list_users(
            session,
            principal,
            department=department.value if department else None,
            role=role,
            search=q,
            cursor=cursor,
            limit=limit,
        )

    @router.get("/users/{user_id}")
    async def get_user(user_id: str, session: SessionDep, principal: CurrentPrincipal) -> schemas.UserRead:
        return schemas.UserRead.model_validate(await org.get_user(session, principal, user_id))

    @router.patch("/users/{user_id}", summary="Edit a user (admins); role change or deactivation voids tokens")
    async def update_user(
        user_id: str, data: schemas.UserUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.UserRead:
        return schemas.UserRead.model_validate(await org.update_user(session, principal, user_id, data))

    @router.put("/users/{user_id}/password", status_code=status.HTTP_204_NO_CONTENT, summary="Reset (admins)")
    async def reset_password(
        user_id: str, data: schemas.PasswordReset, session: SessionDep, principal: CurrentPrincipal
    ) -> Response:
        await org.reset_password(session, principal, user_id, data.new_password)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post("/groups", status_code=status.HTTP_201_CREATED, summary="Create an agent (skill) group")
    async def create_group(
        data: schemas.GroupCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.GroupRead:
        return schemas.GroupRead.model_validate(await org.create_group(session, principal, data))

    @router.get("/groups")
    async def list_groups(
        session: SessionDep, principal: CurrentPrincipal, limit: LimitQuery = 50, cursor: CursorQuery = None
    ) -> schemas.Page[schemas.GroupRead]:
        return await org.list_groups(session, principal, cursor=cursor, limit=limit)

    @router.get("/groups/{group_id}")
    async def get_group(group_id: str, session: SessionDep, principal: CurrentPrincipal) -> schemas.GroupRead:
        return schemas.GroupRead.model_validate(await org.get_group(session, group_id))

    @router.patch("/groups/{group_id}", summary="Edit a group: leaders, after-call work seconds")
    async def update_group(
        group_id: str, data: schemas.GroupUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.GroupRead:
        return schemas.GroupRead.model_validate(await org.update_group(session, principal, group_id, data))

    @router.get("/groups/{group_id}/members")
    async def group_members(
        group_id: str,
        session: SessionDep,
        principal: CurrentPrincipal,
        limit: LimitQuery = 50,
        cursor: CursorQuery = None,
    ) -> schemas.Page[schemas.GroupMemberRead]:
        return await org.group_members(session, principal, group_id, cursor=cursor, limit=limit)

    @router.put("/groups/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def add_member(group_id: str, user_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
        await org.add_member(session, principal, group_id, user_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.delete("/groups/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def remove_member(group_id: str, user_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
        await org.remove_member(session, principal, group_id, user_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


def _agents_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["agents"], responses=PROBLEM_RESPONSES)
    agents = services.agents

    @router.get("/agents", summary="States of the agents one may watch (CORE-6)")
    async def list_states(
        session: SessionDep,
        principal: CurrentPrincipal,
        group_id: str | None = None,
        logged_in: bool = False,
        limit: LimitQuery = 50,
        cursor: CursorQuery = None,
    ) -> schemas.Page[schemas.AgentStateRead]:
        return await agents.list_states(
            session, principal, group_id=group_id, logged_in_only=logged_in, cursor=cursor, limit=limit
        )

    @router.get("/agents/routable", summary="Every logged-in agent, for the ACD at start-up (agents.read_all)")
    async def routable(
        session: SessionDep, principal: CurrentPrincipal, limit: LimitQuery = 500, cursor: CursorQuery = None
    ) -> schemas.Page[schemas.RoutableAgentRead]:
        return await agents.routable(session, principal, cursor=cursor, limit=limit)

    @router.get("/agents/me/groups", summary="My groups and whether I take their calls now (AGENT-6)")
    async def my_groups(session: SessionDep, principal: CurrentPrincipal) -> list[schemas.GroupRef]:
        return await agents.my_groups(session, principal)

    @router.post("/agents/me/groups/{group_id}/sign-in", summary="Take this group's calls (AGENT-6)")
    async def sign_in(group_id: str, session: SessionDep, principal: CurrentPrincipal) -> list[schemas.GroupRef]:
        return await agents.sign_group(session, principal, group_id, signed_in=True)

    @router.post("/agents/me/groups/{group_id}/sign-out", summary="Stop taking this group's calls (AGENT-6)")
    async def sign_out(group_id: str, session: SessionDep, principal: CurrentPrincipal) -> list[schemas.GroupRef]:
        return await agents.sign_group(session, principal, group_id, signed_in=False)

    @router.put("/agents/me/state", summary="Choose idle, busy, short break or after-call work (AGENT-5)")
    async def change_state(
        data: schemas.StateChangeRequest, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.AgentStateRead:
        return await agents.change_own_state(session, principal, data.state, data.reason)

    @router.put("/agents/me/mute", summary="Mute or unmute my side of the current call")
    async def mute(
        data: schemas.MuteRequest, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.AgentStateRead:
        return await agents.set_mute(session, principal, data.muted)

    @router.get("/agents/{agent_id}/state", summary="One agent's state (`me` for oneself)")
    async def get_state(agent_id: str, session: SessionDep, principal: CurrentPrincipal) -> schemas.AgentStateRead:
        return await agents.get_state(session, principal, _me(principal, agent_id))

    @router.get("/agents/{agent_id}/timeline", summary="State intervals, oldest first (`me` for oneself)")
    async def timeline(
        agent_id: str,
        session: SessionDep,
        principal: CurrentPrincipal,
        since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
        until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
        limit: LimitQuery = 100,
        cursor: CursorQuery = None,
    ) -> schemas.Page[schemas.TimelineEntryRead]:
        return await agents.timeline(
            session, principal, _me(principal, agent_id), since=since, until=until, cursor=cursor, limit=limit
        )

    async def force(
        action: str, agent_id: str, data: schemas.ForceRequest | None, session: SessionDep, principal: Principal
    ) -> schemas.AgentStateRead:
        return await agents.force(session, principal, agent_id, action, data.reason if data else "")

    @router.post("/agents/{agent_id}/force-logout", summary="Team lead forces an agent out (AGENT-19)")
    async def force_logout(
        agent_id: str, session: SessionDep, principal: CurrentPrincipal, data: schemas.ForceRequest | None = None
    ) -> schemas.AgentStateRead:
        return await force("force_logout", agent_id, data, session, principal)

    @router.post("/agents/{agent_id}/force-busy", summary="Team lead forces an idle agent busy (AGENT-20)")
    async def force_busy(
        agent_id: str, session: SessionDep, principal: CurrentPrincipal, data: schemas.ForceRequest | None = None
    ) -> schemas.AgentStateRead:
        return await force("force_busy", agent_id, data, session, principal)

    @router.post("/agents/{agent_id}/force-idle", summary="Team lead forces a busy agent idle (AGENT-21)")
    async def force_idle(
        agent_id: str, session: SessionDep, principal: CurrentPrincipal, data: schemas.ForceRequest | None = None
    ) -> schemas.AgentStateRead:
        return await force("force_idle", agent_id, data, session, principal)

    @router.get("/supervisor-actions", summary="Audit of forced logouts / busy / idle, newest first")
    async def supervisor_actions(
        session: SessionDep,
        principal: CurrentPrincipal,
        agent_id: str | None = None,
        limit: LimitQuery = 50,
        cursor: CursorQuery = None,
    ) -> schemas.Page[schemas.SupervisorActionRead]:
        return await agents.supervisor_actions(session, principal, agent_id=agent_id, cursor=cursor, limit=limit)

    return router


def _announcements_router(services: Services) -> APIRouter:
    router = APIRouter(prefix="/announcements", tags=["announcements"], responses=PROBLEM_RESPONSES)
    announcements = services.announcements

    @router.post("", status_code=status.HTTP_201_CREATED, summary="To an agent, a group or everyone (AGENT-26)")
    async def publish(
        data: schemas.AnnouncementCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.AnnouncementRead:
        return await announcements.publish(session, principal, data)

    @router.get("", summary="Announcements addressed to me, newest first, with read state")
    async def mine(
        session: SessionDep,
        principal: CurrentPrincipal,
        unread_only: bool = False,
        limit: LimitQuery = 50,
        cursor: CursorQuery = None,
    ) -> schemas.Page[schemas.AnnouncementRead]:
        return await announcements.mine(session, principal, unread_only=unread_only, cursor=cursor, limit=limit)

    @router.get("/sent", summary="Announcements I wrote")
    async def sent(
        session: SessionDep, principal: CurrentPrincipal, limit: LimitQuery = 50, cursor: CursorQuery = None
    ) -> schemas.Page[schemas.AnnouncementRead]:
        return await announcements.sent(session, principal, cursor=cursor, limit=limit)

    @router.get("/{announcement_id}")
    async def get(announcement_id: str, session: SessionDep, principal: CurrentPrincipal) -> schemas.AnnouncementRead:
        return await announcements.get(session, principal, announcement_id)

    @router.post("/{announcement_id}/read", summary="Mark as read")
    async def mark_read(
        announcement_id: str, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.AnnouncementRead:
        return await announcements.mark_read(session, principal, announcement_id)

    return router


def _contacts_router(services: Services) -> APIRouter:
    router = APIRouter(prefix="/contacts", tags=["address book"], responses=PROBLEM_RESPONSES)
    book = services.address_book

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Add a personal or shared contact (AGENT-28)")
    async def create(
        data: schemas.ContactCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.ContactRead:
        return contact_read(await book.create(session, principal, data))

    @router.get("", summary="My personal contacts and the shared ones, by name")
    async def list_contacts(
        session: SessionDep,
        principal: CurrentPrincipal,
        scope: Literal["all", "personal", "shared"] = "all",
        q: Annotated[str | None, Query(max_length=100)] = None,
        limit: LimitQuery = 50,
        cursor: CursorQuery = None,
    ) -> schemas.Page[schemas.ContactRead]:
        return await book.list(session, principal, scope=scope, search=q, cursor=cursor, limit=limit)

    @router.get("/{contact_id}")
    async def get(contact_id: str, session: SessionDep, principal: CurrentPrincipal) -> schemas.ContactRead:
        return contact_read(await book.get(session, principal, contact_id))

    @router.patch("/{contact_id}")
    async def update(
        contact_id: str, data: schemas.ContactUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.ContactRead:
        return contact_read(await book.update(session, principal, contact_id, data))

    @router.delete("/{contact_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete(contact_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
        await book.delete(session, principal, contact_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


def _shifts_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["shifts"], responses=PROBLEM_RESPONSES)
    shifts = services.shifts

    @router.post("/shifts", status_code=status.HTTP_201_CREATED, summary="Define a shift (AGENT-30)")
    async def create_shift(
        data: schemas.ShiftCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.ShiftRead:
        return schemas.ShiftRead.model_validate(await shifts.create_shift(session, principal, data))

    @router.get("/shifts")
    async def list_shifts(
        session: SessionDep, principal: CurrentPrincipal, limit: LimitQuery = 50, cursor: CursorQuery = None
    ) -> schemas.Page[schemas.ShiftRead]:
        return await shifts.shifts(session, cursor=cursor, limit=limit)

    @router.get("/shifts/coverage", summary="Per time slot: planned vs logged-in agents (AGENT-30)")
    async def coverage(
        session: SessionDep,
        principal: CurrentPrincipal,
        day: date,
        slot_minutes: Annotated[int, Query(ge=15, le=240)] = 60,
        group_id: str | None = None,
    ) -> schemas.CoverageRead:
        return await shifts.coverage(session, principal, day=day, slot_minutes=slot_minutes, group_id=group_id)

    @router.patch("/shifts/{shift_id}")
    async def update_shift(
        shift_id: str, data: schemas.ShiftUpdate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.ShiftRead:
        return schemas.ShiftRead.model_validate(await shifts.update_shift(session, principal, shift_id, data))

    @router.post("/rosters", status_code=status.HTTP_201_CREATED, summary="Put an agent on a shift for a day")
    async def assign(
        data: schemas.RosterCreate, session: SessionDep, principal: CurrentPrincipal
    ) -> schemas.RosterRead:
        return schemas.RosterRead.model_validate(await shifts.assign(session, principal, data))

    @router.get("/rosters", summary="Roster entries of a date range (at most 62 days), by day")
    async def roster(
        session: SessionDep,
        principal: CurrentPrincipal,
        first_day: Annotated[date, Query(alias="from")],
        last_day: Annotated[date, Query(alias="to")],
        user_id: str | None = None,
        limit: LimitQuery = 100,
        cursor: CursorQuery = None,
    ) -> schemas.Page[schemas.RosterRead]:
        return await shifts.roster(
            session, principal, first_day=first_day, last_day=last_day, user_id=user_id, cursor=cursor, limit=limit
        )

    @router.delete("/rosters/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def unassign(entry_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
        await shifts.unassign(session, principal, entry_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
