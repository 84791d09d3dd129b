"""Every query of agent-state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from agent_state.models import (
    AgentGroup,
    AgentStatus,
    Announcement,
    AnnouncementRead,
    AuthSession,
    Contact,
    GroupMember,
    RefreshToken,
    Revocation,
    Role,
    RolePermission,
    RosterEntry,
    Shift,
    StateInterval,
    SupervisorAction,
    User,
)
from agent_state.roles import TELEPHONY_ROLES, RoleDefault
from agent_state.states import AgentState
from callcenter_common.pagination import Key, after


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.is_sqlite = session.bind is not None and session.bind.dialect.name == "sqlite"

    async def flush(self) -> None:
        await self.session.flush()

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def delete(self, row: object) -> None:
        await self.session.delete(row)

    # --- roles and permissions --------------------------------------------------------------

    async def role_names(self) -> set[str]:
        return set((await self.session.scalars(select(Role.name))).all())

    async def add_missing_roles(self, defaults: Iterable[RoleDefault]) -> list[str]:
        """Create roles not there yet, with their default permissions; returns the created names."""
        existing = await self.role_names()
        created = [d for d in defaults if d.name not in existing]
        if not created:
            return []
        insert = postgresql.insert if not self.is_sqlite else sqlite.insert
        await self.session.execute(
            insert(Role).on_conflict_do_nothing(),
            [{"name": d.name, "department": d.department.value, "title": d.title} for d in created],
        )
        permissions = [{"role": d.name, "permission": p} for d in created for p in sorted(d.permissions)]
        if permissions:
            await self.session.execute(insert(RolePermission).on_conflict_do_nothing(), permissions)
        return [d.name for d in created]

    async def get_role(self, name: str) -> Role | None:
        query = select(Role).where(Role.name == name).options(selectinload(Role.permissions))
        return (await self.session.scalars(query)).one_or_none()

    async def list_roles(self) -> Sequence[Role]:
        query = select(Role).options(selectinload(Role.permissions)).order_by(Role.department, Role.name)
        return (await self.session.scalars(query)).all()

    async def role_permissions(self, role: str) -> list[str]:
        query = select(RolePermission.permission).where(RolePermission.role == role)
        return sorted((await self.session.scalars(query)).all())

    async def replace_role_permissions(self, role: str, permissions: Iterable[str]) -> None:
        await self.session.execute(delete(RolePermission).where(RolePermission.role == role))
        self.add(*(RolePermission(role=role, permission=p) for p in sorted(set(permissions))))
        await self.flush()

    async def permissions_in_use(self) -> set[str]:
        return set((await self.session.scalars(select(RolePermission.permission).distinct())).all())

    # --- users ------------------------------------------------------------------------------

    async def get_user(self, user_id: str, *, for_update: bool = False) -> User | None:
        query = select(User).where(User.id == user_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def get_user_by_work_number(self, work_number: str, *, for_update: bool = False) -> User | None:
        query = select(User).where(User.work_number == work_number)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def users_by_ids(self, user_ids: Iterable[str]) -> dict[str, User]:
        ids = set(user_ids)
        if not ids:
            return {}
        rows = await self.session.scalars(select(User).where(User.id.in_(ids)))
        return {u.id: u for u in rows}

    async def list_users(
        self,
        *,
        only_ids: ColumnElement[bool] | None,
        department: str | None,
        role: str | None,
        search: str | None,
        key: Key | None,
        limit: int,
    ) -> Sequence[User]:
        query = select(User).order_by(User.work_number).limit(limit + 1)
        if only_ids is not None:
            query = query.where(only_ids)
        if department:
            query = query.where(User.department == department)
        if role:
            query = query.where(User.role == role)
        if search:
            like = f"%{_escape_like(search)}%"
            query = query.where(or_(User.work_number.ilike(like, escape="\\"), User.name.ilike(like, escape="\\")))
        if (cond := after([User.work_number], key)) is not None:
            query = query.where(cond)
        return (await self.session.scalars(query)).all()

    # --- groups -----------------------------------------------------------------------------

    async def get_group(self, group_id: str) -> AgentGroup | None:
        return await self.session.get(AgentGroup, group_id)

    async def get_group_by_name(self, name: str) -> AgentGroup | None:
        return (await self.session.scalars(select(AgentGroup).where(AgentGroup.name == name))).one_or_none()

    async def list_groups(
        self, *, only: ColumnElement[bool] | None, key: Key | None, limit: int
    ) -> Sequence[AgentGroup]:
        query = select(AgentGroup).order_by(AgentGroup.name).limit(limit + 1)
        if only is not None:
            query = query.where(only)
        if (cond := after([AgentGroup.name], key)) is not None:
            query = query.where(cond)
        return (await self.session.scalars(query)).all()

    async def get_member(self, group_id: str, user_id: str) -> GroupMember | None:
        return await self.session.get(GroupMember, (group_id, user_id))

    async def group_members(self, group_id: str, *, key: Key | None, limit: int) -> Sequence[tuple[GroupMember, User]]:
        query = (
            select(GroupMember, User)
            .join(User, User.id == GroupMember.user_id)
            .where(GroupMember.group_id == group_id)
            .order_by(User.work_number)
            .limit(limit + 1)
        )
        if (cond := after([User.work_number], key)) is not None:
            query = query.where(cond)
        return [(m, u) for m, u in (await self.session.execute(query)).all()]

    async def memberships(self, user_id: str) -> Sequence[tuple[GroupMember, AgentGroup]]:
        query = (
            select(GroupMember, AgentGroup)
            .join(AgentGroup, AgentGroup.id == GroupMember.group_id)
            .where(GroupMember.user_id == user_id)
            .order_by(AgentGroup.name)
        )
        return [(m, g) for m, g in (await self.session.execute(query)).all()]

    async def groups_led_or_managed(self, user_id: str) -> Sequence[AgentGroup]:
        query = (
            select(AgentGroup)
            .where(or_(AgentGroup.team_lead_id == user_id, AgentGroup.manager_id == user_id))
            .order_by(AgentGroup.name)
        )
        return (await self.session.scalars(query)).all()

    async def signed_in_groups(self, user_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = set(user_ids)
        result: dict[str, list[str]] = {i: [] for i in ids}
        if not ids:
            return result
        query = (
            select(GroupMember.user_id, GroupMember.group_id)
            .where(GroupMember.user_id.in_(ids), GroupMember.signed_in.is_(True))
            .order_by(GroupMember.user_id, GroupMember.group_id)
        )
        for user_id, group_id in (await self.session.execute(query)).all():
            result[user_id].append(group_id)
        return result

    async def after_call_work_seconds(self, user_id: str) -> int | None:
        """The longest after-call work among the groups the agent takes calls for, if any is set."""
        query = (
            select(func.max(AgentGroup.after_call_work_seconds))
            .join(GroupMember, GroupMember.group_id == AgentGroup.id)
            .where(GroupMember.user_id == user_id, GroupMember.signed_in.is_(True))
        )
        value = (await self.session.execute(query)).scalar_one_or_none()
        return int(value) if value is not None else None

    @staticmethod
    def supervised_groups(supervisor_id: str, *, as_manager: bool) -> Select[str]:
        column = AgentGroup.manager_id if as_manager else AgentGroup.team_lead_id
        return select(AgentGroup.id).where(column == supervisor_id)

    @staticmethod
    def group_user_ids(group_id: str) -> Select[str]:
        return select(GroupMember.user_id).where(GroupMember.group_id == group_id)

    @classmethod
    def supervised_users(cls, supervisor_id: str, *, as_manager: bool) -> Select[str]:
        groups = cls.supervised_groups(supervisor_id, as_manager=as_manager)
        return select(GroupMember.user_id).where(GroupMember.group_id.in_(groups))

    async def supervises(self, supervisor_id: str, user_id: str, *, as_manager: bool) -> bool:
        query = select(func.count()).where(
            GroupMember.user_id == user_id,
            GroupMember.group_id.in_(self.supervised_groups(supervisor_id, as_manager=as_manager)),
        )
        return bool((await self.session.execute(query)).scalar_one())

    async def is_member(self, user_id: str, group_id: str) -> bool:
        return await self.get_member(group_id, user_id) is not None

    # --- sessions, refresh tokens, revocations ----------------------------------------------

    async def get_session(self, session_id: str, *, for_update: bool = False) -> AuthSession | None:
        query = select(AuthSession).where(AuthSession.id == session_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def open_sessions(self, user_id: str) -> Sequence[AuthSession]:
        query = select(AuthSession).where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
        return (await self.session.scalars(query.order_by(AuthSession.started_at))).all()

    async def end_sessions(self, session_ids: Sequence[str], at: datetime, reason: str) -> None:
        if not session_ids:
            return
        await self.session.execute(
            update(AuthSession)
            .where(AuthSession.id.in_(session_ids), AuthSession.ended_at.is_(None))
            .values(ended_at=at, end_reason=reason)
        )
        await self.session.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(session_ids)))

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        query = select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def active_revocations(self, now_epoch: float, *, key: Key | None, limit: int) -> Sequence[Revocation]:
        query = select(Revocation).where(Revocation.expires_at > now_epoch).order_by(Revocation.id).limit(limit + 1)
        if (cond := after([Revocation.id], key)) is not None:
            query = query.where(cond)
        return (await self.session.scalars(query)).all()

    async def prune_revocations(self, now_epoch: float) -> None:
        await self.session.execute(delete(Revocation).where(Revocation.expires_at <= now_epoch))

    # --- agent state ------------------------------------------------------------------------

    async def get_status(self, user_id: str, *, for_update: bool = False) -> AgentStatus | None:
        query = select(AgentStatus).where(AgentStatus.user_id == user_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def get_status_and_user(self, user_id: str) -> tuple[AgentStatus, User] | None:
        """The state row locked for a change, with its user, in one round trip."""
        query = (
            select(AgentStatus, User)
            .join(User, User.id == AgentStatus.user_id)
            .where(AgentStatus.user_id == user_id)
            .with_for_update(of=AgentStatus)
        )
        row = (await self.session.execute(query)).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def get_status_by_extension(self, extension: str, *, for_update: bool = False) -> AgentStatus | None:
        query = select(AgentStatus).where(AgentStatus.extension == extension)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def statuses_ringing_for(self, call_id: str, *, except_user: str) -> Sequence[AgentStatus]:
        query = (
            select(AgentStatus)
            .where(
                AgentStatus.call_id == call_id,
                AgentStatus.state == AgentState.RINGING.value,
                AgentStatus.user_id != except_user,
            )
            .order_by(AgentStatus.user_id)
            .with_for_update()
        )
        return (await self.session.scalars(query)).all()

    async def list_agents(
        self,
        *,
        only_ids: ColumnElement[bool] | None,
        logged_in_only: bool,
        group_id: str | None,
        key: Key | None,
        limit: int,
    ) -> Sequence[tuple[User, AgentStatus | None]]:
        """Active people of the telephony roles with their state (None: never logged in), by work number."""
        query = (
            select(User, AgentStatus)
            .outerjoin(AgentStatus, AgentStatus.user_id == User.id)
            .where(User.role.in_(TELEPHONY_ROLES), User.active.is_(True))
            .order_by(User.work_number)
            .limit(limit + 1)
        )
        if only_ids is not None:
            query = query.where(only_ids)
        if logged_in_only:
            query = query.where(AgentStatus.state.is_not(None), AgentStatus.state != AgentState.LOGGED_OUT.value)
        if group_id:
            query = query.where(User.id.in_(self.group_user_ids(group_id)))
        if (cond := after([User.work_number], key)) is not None:
            query = query.where(cond)
        return [(u, s) for u, s in (await self.session.execute(query)).all()]

    async def expired_after_call_work(self, now: datetime, limit: int) -> Sequence[AgentStatus]:
        query = (
            select(AgentStatus)
            .where(
                AgentStatus.state == AgentState.AFTER_CALL_WORK.value,
                AgentStatus.after_call_work_until <= now,
            )
            .order_by(AgentStatus.after_call_work_until, AgentStatus.user_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.scalars(query)).all()

    async def next_after_call_work_deadline(self) -> datetime | None:
        query = select(func.min(AgentStatus.after_call_work_until)).where(
            AgentStatus.state == AgentState.AFTER_CALL_WORK.value
        )
        value: datetime | None = (await self.session.execute(query)).scalar_one_or_none()
        return value

    async def close_interval(self, user_id: str, at: datetime) -> None:
        await self.session.execute(
            update(StateInterval)
            .where(StateInterval.user_id == user_id, StateInterval.ended_at.is_(None))
            .values(ended_at=at)
        )

    async def timeline(
        self, user_id: str, *, since: datetime | None, until: datetime | None, key: Key | None, limit: int
    ) -> Sequence[StateInterval]:
        query = (
            select(StateInterval)
            .where(StateInterval.user_id == user_id)
            .order_by(StateInterval.started_at, StateInterval.id)
            .limit(limit + 1)
        )
        if since is not None:
            query = query.where(or_(StateInterval.ended_at.is_(None), StateInterval.ended_at > since))
        if until is not None:
            query = query.where(StateInterval.started_at < until)
        if (cond := after([StateInterval.started_at, StateInterval.id], key)) is not None:
            query = query.where(cond)
        return (await self.session.scalars(query)).all()

    async def logged_in_intervals(
        self, start: datetime, end: datetime, user_ids: Select[str] | None
    ) -> Sequence[tuple[str, datetime, datetime | None]]:
        query = select(StateInterval.user_id, StateInterval.started_at, StateInterval.ended_at).where(
            StateInterval.state != AgentState.LOGGED_OUT.value,
            StateInterval.started_at < end,
            or_(StateInterval.ended_at.is_(None), StateInterval.ended_at > start),
        )
        if user_ids is not None:
            query = query.where(StateInterval.user_id.in_(user_ids))
        return [(u, s, e) for u, s, e in (await self.session.execute(query)).all()]

    async def supervisor_actions(
        self, *, only_targets: ColumnElement[bool] | None, target_id: str | None, key: Key | None, limit: int
    ) -> Sequence[SupervisorAction]:
        query = select(SupervisorAction).order_by(SupervisorAction.id.desc()).limit(limit + 1)
        if only_targets is not None:
            query = query.where(only_targets)
        if target_id:
            query = query.where(SupervisorAction.target_id == target_id)
        if (cond := after([SupervisorAction.id], key, descending=True)) is not None:
            query = query.where(cond)
        return (await self.session.scalars(query)).all()

    # --- announcements ----------------------------------------------------------------------

    @staticmethod
    def related_groups(user_id: str) -> Select[str]:
        """Groups a user is a member, the team lead or the manager of (the `groups` of their token)."""
        member = select(GroupMember.group_id).where(GroupMember.user_id == user_id)
        led = select(AgentGroup.id).where(or_(AgentGroup.team_lead_id == user_id, AgentGroup.manager_id == user_id))
        return select(AgentGroup.id).where(or_(AgentGroup.id.in_(member), AgentGroup.id.in_(led)))

    async def related_group_ids(self, user_id: str) -> list[str]:
        return sorted((await self.session.scalars(self.related_groups(user_id))).all())

    @staticmethod
    def _addressed_to(user_id: str, group_ids: Select[str]) -> ColumnElement[bool]:
        return or_(
            Announcement.audience == "everyone",
            and_(Announcement.audience == "user", Announcement.target_user_id == user_id),
            and_(Announcement.audience == "group", Announcement.target_group_id.in_(group_ids)),
        )

    async def announcement_for(self, announcement_id: str, user_id: str) -> tuple[Announcement, datetime | None] | None:
        """The announcement if it is addressed to the user (or written by them), with when they read it."""
        groups = self.related_groups(user_id)
        query = (
            select(Announcement, AnnouncementRead.read_at)
            .outerjoin(
                AnnouncementRead,
                and_(AnnouncementRead.announcement_id == Announcement.id, AnnouncementRead.user_id == user_id),
            )
            .where(
                Announcement.id == announcement_id,
                or_(self._addressed_to(user_id, groups), Announcement.author_id == user_id),
            )
        )
        row = (await self.session.execute(query)).one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def announcements_for(
        self, user_id: str, *, unread_only: bool, key: Key | None, limit: int
    ) -> Sequence[tuple[Announcement, datetime | None]]:
        groups = self.related_groups(user_id)
        query = (
            select(Announcement, AnnouncementRead.read_at)
            .outerjoin(
                AnnouncementRead,
                and_(AnnouncementRead.announcement_id == Announcement.id, AnnouncementRead.user_id == user_id),
            )
            .where(self._addressed_to(user_id, groups))
            .order_by(Announcement.created_at.desc(), Announcement.id.desc())
            .limit(limit + 1)
        )
        if unread_only:
            query = query.where(AnnouncementRead.read_at.is_(None))
        if (cond := after([Announcement.created_at, Announcement.id], key, descending=True)) is not None:
            query = query.where(cond)
        return [(a, r) for a, r in (await self.session.execute(query)).all()]

    async def announcements_by(self, author_id: str, *, key: Key | None, limit: int) -> Sequence[Announcement]:
        query = (
            select(Announcement)
            .where(Announcement.author_id == author_id)
            .order_by(Announcement.created_at.desc(), Announcement.id.desc())
            .limit(limit + 1)
        )
        if (cond := after([Announcement.created_at, Announcement.id], key, descending=True)) is not None:
            query = query.where(cond)
        return (await self.session.scalars(query)).all()

    async def mark_read(self, announcement_id: str, user_id: str, at: datetime) -> None:
        insert = postgresql.insert if not self.is_sqlite else sqlite.insert
        await self.session.execute(
            insert(AnnouncementRead)
            .values(announcement_id=announcement_id, user_id=user_id, read_at=at)
            .on_conflict_do_nothing()
        )

    # --- address book -----------------------------------------------------------------------

    async def get_contact(self, contact_id: str) -> Contact | None:
        return await self.session.get(Contact, contact_id)

    async def contacts(
        self, user_id: str, *, scope: str, search: str | None, key: Key | None, limit: int
    ) -> Sequence[Contact]:
        mine = Contact.owner_id == user_id
        shared = Contact.owner_id.is_(None)
        visible = {"personal": mine, "shared": shared}.get(scope, or_(mine, shared))
        query = select(Contact).where(visible).order_by(Contact.name, Contact.id).limit(limit + 1)
        if search:
            like = f"%{_escape_like(search)}%"
            query = query.where(
                or_(
                    Contact.name.ilike(like, escape="\\"),
                    Contact.phone.ilike(like, escape="\\"),
                    Contact.mobile.ilike(like, escape="\\"),
                    Contact.organization.ilike(like, escape="\\"),
                )
            )
        if (cond := after([Contact.name, Contact.id], key)) is not None:
            query = query.where(cond)
        return (await self.session.scalars(query)).all()

    # --- shifts -----------------------------------------------------------------------------

    async def get_shift(self, shift_id: str) -> Shift | None:
        return await self.session.get(Shift, shift_id)

    async def get_shift_by_name(self, name: str) -> Shift | None:
        return (await self.session.scalars(select(Shift).where(Shift.name == name))).one_or_none()

    async def shifts(self, *, key: Key | None, limit: int) -> Sequence[Shift]:
        query = select(Shift).order_by(Shift.name).limit(limit + 1)
        if (cond := after([Shift.name], key)) is not None:
            query = query.where(cond)
        return (await self.session.scalars(query)).all()

    async def get_roster_entry(self, entry_id: str) -> RosterEntry | None:
        return await self.session.get(RosterEntry, entry_id)

    async def find_roster_entry(self, user_id: str, day: date, shift_id: str) -> RosterEntry | None:
        query = select(RosterEntry).where(
            RosterEntry.user_id == user_id, RosterEntry.day == day, RosterEntry.shift_id == shift_id
        )
        return (await self.session.scalars(query)).one_or_none()

    async def roster(
        self,
        *,
        first_day: date,
        last_day: date,
        only_users: ColumnElement[bool] | None,
        key: Key | None,
        limit: int,
    ) -> Sequence[RosterEntry]:
        query = (
            select(RosterEntry)
            .where(RosterEntry.day >= first_day, RosterEntry.day <= last_day)
            .order_by(RosterEntry.day, RosterEntry.id)
            .limit(limit + 1)
        )
        if only_users is not None:
            query = query.where(only_users)
        if key is not None:
            day, entry_id = date.fromisoformat(key[0]), key[1]
            query = query.where(or_(RosterEntry.day > day, and_(RosterEntry.day == day, RosterEntry.id > entry_id)))
        return (await self.session.scalars(query)).all()

    async def planned_shifts(
        self, first_day: date, last_day: date, user_ids: Select[str] | None
    ) -> Sequence[tuple[str, date, Shift]]:
        query = (
            select(RosterEntry.user_id, RosterEntry.day, Shift)
            .join(Shift, Shift.id == RosterEntry.shift_id)
            .where(RosterEntry.day >= first_day, RosterEntry.day <= last_day)
        )
        if user_ids is not None:
            query = query.where(RosterEntry.user_id.in_(user_ids))
        return [(u, d, s) for u, d, s in (await self.session.execute(query)).all()]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
