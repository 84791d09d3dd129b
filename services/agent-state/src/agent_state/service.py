"""Business rules of agent-state: people and roles, login, the agent state machine, supervision,
announcements, address book and shifts. No HTTP here; SQL lives in `repository.py`."""

from __future__ import annotations

import logging
import time as wall_clock
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from sqlalchemy import ColumnElement, Select, event, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from agent_state import schemas
from agent_state.config import AgentStateSettings
from agent_state.models import (
    AgentGroup,
    AgentStatus,
    Announcement,
    AuthSession,
    Contact,
    GroupMember,
    RefreshToken,
    Revocation,
    RosterEntry,
    Shift,
    StateInterval,
    SupervisorAction,
    User,
)
from agent_state.notifier import Notifier
from agent_state.repository import Repository
from agent_state.roles import (
    DEFAULT_ROLES,
    PERM_ADDRESS_BOOK_SHARED,
    PERM_AGENTS_CONTROL,
    PERM_AGENTS_MONITOR,
    PERM_AGENTS_READ_ALL,
    PERM_ANNOUNCEMENTS_PUBLISH,
    PERM_GROUPS_MANAGE,
    PERM_ROLES_MANAGE,
    PERM_SHIFTS_MANAGE,
    PERM_USERS_MANAGE,
    PERMISSIONS,
    TELEPHONY_ROLES,
    Department,
)
from agent_state.security import Passwords, SigningKeys, hash_refresh_token, new_refresh_token
from agent_state.states import (
    IN_CALL,
    AfterCall,
    AgentState,
    CallFact,
    IllegalTransition,
    Move,
    on_agent_request,
    on_call,
    on_forced,
)
from callcenter_common.auth import (
    ROLE_MANAGER,
    ROLE_TEAM_LEAD,
    Principal,
    RevocationList,
    TokenIssuer,
    TokensRevoked,
)
from callcenter_common.clock import Clock
from callcenter_common.pagination import decode_cursor, page_of
from callcenter_common.problems import ProblemError

log = logging.getLogger("agent_state.service")

STATE_CHANGES = Counter("agent_state_changes_total", "Agent state changes", ["state", "cause"])
LOGINS = Counter("agent_state_logins_total", "Login attempts", ["outcome"])

# A revocation is kept while a token it voids could still be presented (its lifetime plus leeway).
REVOCATION_MARGIN_SECONDS = 60


def _new_id() -> str:
    return str(uuid.uuid4())


def _forbidden(detail: str) -> ProblemError:
    return ProblemError(403, "auth.forbidden", "Not allowed", detail=detail)


def _require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise ProblemError(403, "auth.forbidden", "Permission required", detail=permission)


def _not_found(code: str, what: str) -> ProblemError:
    return ProblemError(404, code, f"No such {what}")


def _illegal(exc: IllegalTransition) -> ProblemError:
    return ProblemError(
        409,
        "agent.illegal_transition",
        "This state change is not possible now",
        detail=exc.why,
        current_state=exc.current.value,
        requested_state=exc.requested.value,
    )


# --- visibility (AGENT-25) ------------------------------------------------------------------


def scope_filter(principal: Principal, column: InstrumentedAttribute[str]) -> ColumnElement[bool] | None:
    """Users whose data `principal` may see: everyone, their groups' members, or only themselves."""
    if principal.sees_everyone:
        return None
    if principal.has_role(ROLE_MANAGER):
        return or_(
            column == principal.user_id, column.in_(Repository.supervised_users(principal.user_id, as_manager=True))
        )
    if principal.has_role(ROLE_TEAM_LEAD):
        return or_(
            column == principal.user_id, column.in_(Repository.supervised_users(principal.user_id, as_manager=False))
        )
    return column == principal.user_id


async def in_scope(repo: Repository, principal: Principal, user_id: str) -> bool:
    if user_id == principal.user_id or principal.sees_everyone:
        return True
    if principal.has_role(ROLE_MANAGER):
        return await repo.supervises(principal.user_id, user_id, as_manager=True)
    if principal.has_role(ROLE_TEAM_LEAD):
        return await repo.supervises(principal.user_id, user_id, as_manager=False)
    return False


def group_in_scope(principal: Principal, group: AgentGroup) -> bool:
    if principal.sees_everyone:
        return True
    if principal.has_role(ROLE_MANAGER):
        return group.manager_id == principal.user_id
    if principal.has_role(ROLE_TEAM_LEAD):
        return group.team_lead_id == principal.user_id
    return False


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction has committed (never if it rolls back)."""

    def run(_session: object) -> None:
        action()

    event.listen(session.sync_session, "after_commit", run, once=True)


# --- people, roles and groups (WO-1, AGENT-25, AGENT-31) ------------------------------------


class OrgService:
    def __init__(
        self, settings: AgentStateSettings, clock: Clock, passwords: Passwords, auth: AuthService, notifier: Notifier
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.passwords = passwords
        self.auth = auth
        self.notifier = notifier

    async def ensure_roles(self, session: AsyncSession) -> list[str]:
        """Create the roles of WO-1 that are missing, with default permissions; never overwrite edits."""
        return await Repository(session).add_missing_roles(DEFAULT_ROLES)

    def departments(self) -> list[schemas.DepartmentRead]:
        return [
            schemas.DepartmentRead(name=d, roles=[r.name for r in DEFAULT_ROLES if r.department is d])
            for d in Department
        ]

    async def permissions(self, session: AsyncSession) -> list[schemas.PermissionRead]:
        """Known permissions plus any an admin granted that other services define."""
        names = set(PERMISSIONS) | await Repository(session).permissions_in_use()
        return [schemas.PermissionRead(name=n, description=PERMISSIONS.get(n, "")) for n in sorted(names)]

    async def roles(self, session: AsyncSession) -> list[schemas.RoleRead]:
        return [
            schemas.RoleRead(
                name=r.name,
                department=Department(r.department),
                title=r.title,
                permissions=[p.permission for p in r.permissions],
            )
            for r in await Repository(session).list_roles()
        ]

    async def role(self, session: AsyncSession, name: str) -> schemas.RoleRead:
        role = await Repository(session).get_role(name)
        if role is None:
            raise _not_found("role.not_found", "role")
        return schemas.RoleRead(
            name=role.name,
            department=Department(role.department),
            title=role.title,
            permissions=[p.permission for p in role.permissions],
        )

    async def set_role_permissions(
        self, session: AsyncSession, principal: Principal, name: str, permissions: Sequence[str]
    ) -> schemas.RoleRead:
        """Replace a role's permissions (AGENT-31); tokens carry them from the next login or refresh."""
        _require(principal, PERM_ROLES_MANAGE)
        repo = Repository(session)
        if await repo.get_role(name) is None:
            raise _not_found("role.not_found", "role")
        if principal.has_role(name) and PERM_ROLES_MANAGE not in permissions:
            raise ProblemError(
                409, "role.lockout", "This would take role management away from your own role", field="permissions"
            )
        await repo.replace_role_permissions(name, permissions)
        session.expire_all()
        return await self.role(session, name)

    async def me(self, session: AsyncSession, principal: Principal) -> schemas.MeRead:
        repo = Repository(session)
        user = await self._user(repo, principal.user_id)
        groups: dict[str, schemas.GroupRef] = {}
        for member, group in await repo.memberships(user.id):
            groups[group.id] = schemas.GroupRef(
                id=group.id, name=group.name, relation="member", signed_in=member.signed_in
            )
        for group in await repo.groups_led_or_managed(user.id):
            relation = "team_lead" if group.team_lead_id == user.id else "manager"
            groups.setdefault(group.id, schemas.GroupRef(id=group.id, name=group.name, relation=relation))
        return schemas.MeRead(
            user=schemas.UserRead.model_validate(user),
            permissions=await repo.role_permissions(user.role),
            groups=sorted(groups.values(), key=lambda g: (g.name, g.id)),
        )

    async def _user(self, repo: Repository, user_id: str, *, for_update: bool = False) -> User:
        user = await repo.get_user(user_id, for_update=for_update)
        if user is None:
            raise _not_found("user.not_found", "user")
        return user

    async def create_user(self, session: AsyncSession, principal: Principal, data: schemas.UserCreate) -> User:
        """A new person of any department (WO-1); admins only."""
        _require(principal, PERM_USERS_MANAGE)
        repo = Repository(session)
        department = await self._check_role(repo, data.role, data.department, data.extension)
        self.auth.check_password_policy(data.password, "password")
        if await repo.get_user_by_work_number(data.work_number) is not None:
            raise ProblemError(409, "user.work_number_taken", "This work number is taken", field="work_number")
        now = self.clock.now()
        user = User(
            id=_new_id(),
            work_number=data.work_number,
            name=data.name,
            department=department,
            role=data.role,
            extension=data.extension,
            password_hash=await self.passwords.hash(data.password),
            active=True,
            failed_logins=0,
            password_changed_at=now,
            created_at=now,
            updated_at=now,
        )
        repo.add(user)
        try:
            await repo.flush()
        except IntegrityError as exc:  # a concurrent create with the same work number
            raise ProblemError(409, "user.work_number_taken", "This work number is taken", field="work_number") from exc
        return user

    async def _check_role(
        self, repo: Repository, role_name: str, department: Department | None, extension: str | None
    ) -> str:
        role = await repo.get_role(role_name)
        if role is None:
            raise ProblemError(422, "user.unknown_role", "No such role", field="role")
        if department is not None and department.value != role.department:
            raise ProblemError(
                422,
                "user.department_mismatch",
                f"Role {role_name} belongs to the {role.department} department",
                field="department",
            )
        if extension is not None and role_name not in TELEPHONY_ROLES:
            raise ProblemError(422, "user.no_telephony", f"Role {role_name} takes no calls", field="extension")
        return role.department

    async def list_users(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        department: str | None,
        role: str | None,
        search: str | None,
        cursor: str | None,
        limit: int,
    ) -> schemas.Page[schemas.UserRead]:
        only = None
        if not principal.can(PERM_USERS_MANAGE):
            only = (
                scope_filter(principal, User.id) if principal.can(PERM_AGENTS_MONITOR) else User.id == principal.user_id
            )
        rows = await Repository(session).list_users(
            only_ids=only,
            department=department,
            role=role,
            search=search,
            key=decode_cursor(cursor, [str]),
            limit=limit,
        )
        items, next_cursor = page_of(rows, limit, lambda u: (u.work_number,))
        return schemas.Page(items=[schemas.UserRead.model_validate(u) for u in items], next_cursor=next_cursor)

    async def get_user(self, session: AsyncSession, principal: Principal, user_id: str) -> User:
        repo = Repository(session)
        user = await self._user(repo, user_id)
        if not principal.can(PERM_USERS_MANAGE) and not await self.auth.may_watch(repo, principal, user_id):
            raise _forbidden("this user is outside your groups")
        return user

    async def update_user(
        self, session: AsyncSession, principal: Principal, user_id: str, data: schemas.UserUpdate
    ) -> User:
        """Edit a person; a new role or deactivation voids their tokens at once."""
        _require(principal, PERM_USERS_MANAGE)
        repo = Repository(session)
        user = await self._user(repo, user_id, for_update=True)
        fields = data.model_fields_set
        role = data.role if "role" in fields and data.role is not None else user.role
        department = data.department if "department" in fields else None
        extension = data.extension if "extension" in fields else user.extension
        user.department = await self._check_role(repo, role, department, extension)
        revoke = role != user.role or ("active" in fields and data.active is False and user.active)
        user.role = role
        user.extension = extension
        if "name" in fields and data.name is not None:
            user.name = data.name
        if "active" in fields and data.active is not None:
            user.active = data.active
        user.updated_at = self.clock.now()
        if revoke:
            await self.auth.end_everything(session, repo, user, reason="user_changed", changed_by=principal.user_id)
        return user

    async def reset_password(
        self, session: AsyncSession, principal: Principal, user_id: str, new_password: str
    ) -> None:
        """An admin sets a new password; the user's tokens stop working at once."""
        _require(principal, PERM_USERS_MANAGE)
        repo = Repository(session)
        user = await self._user(repo, user_id, for_update=True)
        self.auth.check_password_policy(new_password, "new_password")
        user.password_hash = await self.passwords.hash(new_password)
        user.password_changed_at = user.updated_at = self.clock.now()
        user.failed_logins, user.locked_until = 0, None
        await self.auth.end_everything(session, repo, user, reason="password_reset", changed_by=principal.user_id)

    # groups

    async def _group(self, repo: Repository, group_id: str) -> AgentGroup:
        group = await repo.get_group(group_id)
        if group is None:
            raise _not_found("group.not_found", "group")
        return group

    async def _check_leaders(self, repo: Repository, team_lead_id: str | None, manager_id: str | None) -> None:
        for field, user_id, roles in (
            ("team_lead_id", team_lead_id, {ROLE_TEAM_LEAD}),
            ("manager_id", manager_id, {ROLE_MANAGER}),
        ):
            if user_id is None:
                continue
            user = await repo.get_user(user_id)
            if user is None or user.role not in roles:
                raise ProblemError(
                    422, "group.bad_leader", f"{field} must be a user with role {', '.join(roles)}", field=field
                )

    async def create_group(self, session: AsyncSession, principal: Principal, data: schemas.GroupCreate) -> AgentGroup:
        _require(principal, PERM_GROUPS_MANAGE)
        repo = Repository(session)
        if await repo.get_group_by_name(data.name) is not None:
            raise ProblemError(409, "group.name_taken", "A group has this name", field="name")
        await self._check_leaders(repo, data.team_lead_id, data.manager_id)
        group = AgentGroup(id=_new_id(), created_at=self.clock.now(), **data.model_dump())
        repo.add(group)
        await repo.flush()
        return group

    async def update_group(
        self, session: AsyncSession, principal: Principal, group_id: str, data: schemas.GroupUpdate
    ) -> AgentGroup:
        _require(principal, PERM_GROUPS_MANAGE)
        repo = Repository(session)
        group = await self._group(repo, group_id)
        changes = data.model_dump(exclude_unset=True)
        if changes.get("name") is None:
            changes.pop("name", None)
        if changes.get("description") is None:
            changes.pop("description", None)
        if "name" in changes and changes["name"] != group.name and await repo.get_group_by_name(changes["name"]):
            raise ProblemError(409, "group.name_taken", "A group has this name", field="name")
        await self._check_leaders(repo, changes.get("team_lead_id"), changes.get("manager_id"))
        for key, value in changes.items():
            setattr(group, key, value)
        await repo.flush()
        return group

    async def list_groups(
        self, session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
    ) -> schemas.Page[schemas.GroupRead]:
        # Group names are no secret: every signed-in user may list them (sign-in, announcements).
        rows = await Repository(session).list_groups(only=None, key=decode_cursor(cursor, [str]), limit=limit)
        items, next_cursor = page_of(rows, limit, lambda g: (g.name,))
        return schemas.Page(items=[schemas.GroupRead.model_validate(g) for g in items], next_cursor=next_cursor)

    async def get_group(self, session: AsyncSession, group_id: str) -> AgentGroup:
        return await self._group(Repository(session), group_id)

    async def group_members(
        self, session: AsyncSession, principal: Principal, group_id: str, *, cursor: str | None, limit: int
    ) -> schemas.Page[schemas.GroupMemberRead]:
        repo = Repository(session)
        group = await self._group(repo, group_id)
        allowed = (
            principal.can(PERM_GROUPS_MANAGE)
            or (principal.can(PERM_AGENTS_MONITOR) and group_in_scope(principal, group))
            or await repo.is_member(principal.user_id, group_id)
        )
        if not allowed:
            raise _forbidden("you are not in this group")
        rows = await repo.group_members(group_id, key=decode_cursor(cursor, [str]), limit=limit)
        items, next_cursor = page_of(rows, limit, lambda row: (row[1].work_number,))
        return schemas.Page(
            items=[
                schemas.GroupMemberRead(
                    user_id=u.id, work_number=u.work_number, name=u.name, role=u.role, signed_in=m.signed_in
                )
                for m, u in items
            ],
            next_cursor=next_cursor,
        )

    async def add_member(self, session: AsyncSession, principal: Principal, group_id: str, user_id: str) -> None:
        """Put an agent in a group (signed in at once); the ACD hears of it."""
        _require(principal, PERM_GROUPS_MANAGE)
        repo = Repository(session)
        await self._group(repo, group_id)
        user = await self._user(repo, user_id)
        if user.role not in TELEPHONY_ROLES:
            raise ProblemError(422, "group.not_an_agent", f"Role {user.role} takes no calls", field="user_id")
        if await repo.get_member(group_id, user_id) is None:
            repo.add(GroupMember(group_id=group_id, user_id=user_id, signed_in=True, added_at=self.clock.now()))
            await repo.flush()
            await self._groups_changed(session, repo, user)

    async def remove_member(self, session: AsyncSession, principal: Principal, group_id: str, user_id: str) -> None:
        _require(principal, PERM_GROUPS_MANAGE)
        repo = Repository(session)
        member = await repo.get_member(group_id, user_id)
        if member is None:
            raise _not_found("group.member_not_found", "member of this group")
        await repo.delete(member)
        await repo.flush()
        await self._groups_changed(session, repo, await self._user(repo, user_id))

    async def _groups_changed(self, session: AsyncSession, repo: Repository, user: User) -> None:
        status = await repo.get_status(user.id)
        groups = (await repo.signed_in_groups([user.id]))[user.id]
        extension = status.extension if status is not None else None
        await self.notifier.agent_groups_changed(session, user, extension, groups, self.clock.now())


# --- authentication (AGENT-1…4) -------------------------------------------------------------


class AuthService:
    def __init__(
        self,
        settings: AgentStateSettings,
        clock: Clock,
        passwords: Passwords,
        keys: SigningKeys,
        notifier: Notifier,
        revocations: RevocationList,
        agents: AgentStateService,
        wall_time: Callable[[], float] = wall_clock.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.passwords = passwords
        self.keys = keys
        self.issuer = TokenIssuer(
            keys.private_pem, issuer=settings.platform.jwt_issuer, audience=settings.platform.jwt_audience
        )
        self.notifier = notifier
        self.revocations = revocations
        self.agents = agents
        self.wall_time = wall_time

    def check_password_policy(self, password: str, field: str) -> None:
        if len(password) < self.settings.password_min_length:
            raise ProblemError(
                422,
                "auth.password_too_short",
                f"A password has at least {self.settings.password_min_length} characters",
                field=field,
            )

    async def may_watch(self, repo: Repository, principal: Principal, user_id: str) -> bool:
        """Self, or a supervisor with `agents.monitor` whose groups hold the user."""
        if user_id == principal.user_id:
            return True
        return principal.can(PERM_AGENTS_MONITOR) and await in_scope(repo, principal, user_id)

    async def login(self, session: AsyncSession, data: schemas.LoginRequest) -> schemas.TokenPair | ProblemError:
        """Check the password (counting failures) and open a session, on an extension if given.

        A refused login is returned, not raised, so that the failure count commits.
        """
        repo = Repository(session)
        now = self.clock.now()
        user = await repo.get_user_by_work_number(data.work_number, for_update=True)
        if user is not None and user.locked_until is not None and user.locked_until > now:
            LOGINS.labels("locked").inc()
            return self._locked(user.locked_until)
        valid = await self.passwords.verify(user.password_hash if user else None, data.password)
        if user is None or not valid:
            LOGINS.labels("bad_credentials").inc()
            if user is not None:
                user.failed_logins += 1
                if user.failed_logins >= self.settings.login_max_failures:
                    user.failed_logins = 0
                    user.locked_until = now + timedelta(minutes=self.settings.login_lock_minutes)
                    log.warning("account %s locked after repeated failures", user.work_number)
                    return self._locked(user.locked_until)
            return ProblemError(
                401, "auth.invalid_credentials", "Wrong work number or password", headers={"WWW-Authenticate": "Bearer"}
            )
        if not user.active:
            LOGINS.labels("inactive").inc()
            return ProblemError(403, "auth.account_disabled", "This account is disabled")
        user.failed_logins, user.locked_until = 0, None
        if self.passwords.needs_rehash(user.password_hash):
            user.password_hash = await self.passwords.hash(data.password)
        auth_session = AuthSession(
            id=uuid.uuid4().hex, user_id=user.id, extension=data.extension, started_at=now, end_reason=""
        )
        repo.add(auth_session)
        await repo.flush()
        if data.extension is not None:
            await self.agents.telephony_login(session, repo, user, data.extension, auth_session.id, now)
        LOGINS.labels("ok").inc()
        return await self._issue(repo, user, auth_session)

    def _locked(self, until: datetime) -> ProblemError:
        retry = max(1, int((until - self.clock.now()).total_seconds()))
        return ProblemError(
            429,
            "auth.account_locked",
            "Too many failed logins; the account is locked for a while",
            headers={"Retry-After": str(retry)},
            locked_until=until.isoformat(),
        )

    async def _issue(
        self, repo: Repository, user: User, auth_session: AuthSession, *, after: float = 0.0
    ) -> schemas.TokenPair:
        # `iat` must be later than any revocation just written, or the new token would be void too.
        issued = max(self.wall_time(), after + 0.001)
        access = self.issuer.issue(
            user_id=user.id,
            work_number=user.work_number,
            roles=[user.role],
            groups=await repo.related_group_ids(user.id),
            permissions=await repo.role_permissions(user.role),
            session_id=auth_session.id,
            extension=auth_session.extension,
            ttl_seconds=self.settings.access_token_ttl_seconds,
            now=issued,
        )
        refresh = new_refresh_token()
        now = self.clock.now()
        repo.add(
            RefreshToken(
                token_hash=hash_refresh_token(refresh),
                session_id=auth_session.id,
                user_id=user.id,
                created_at=now,
                expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
            )
        )
        await repo.flush()
        return schemas.TokenPair(
            access_token=access,
            expires_in=self.settings.access_token_ttl_seconds,
            refresh_token=refresh,
            refresh_expires_in=self.settings.refresh_token_ttl_seconds,
            session_id=auth_session.id,
            user=schemas.UserRead.model_validate(user),
        )

    async def refresh(self, session: AsyncSession, refresh_token: str) -> schemas.TokenPair | ProblemError:
        """Rotate: the presented token is spent, a new pair comes back. A spent token presented
        again means it was stolen: the whole session ends. Refusals are returned so they commit."""
        repo = Repository(session)
        invalid = ProblemError(
            401, "auth.refresh_invalid", "The refresh token is not valid", headers={"WWW-Authenticate": "Bearer"}
        )
        token = await repo.get_refresh_token(hash_refresh_token(refresh_token))
        if token is None:
            return invalid
        now = self.clock.now()
        auth_session = await repo.get_session(token.session_id, for_update=True)
        user = await repo.get_user(token.user_id)
        if auth_session is None or user is None or auth_session.ended_at is not None:
            return invalid
        if token.used_at is not None:
            log.warning("refresh token of session %s reused; ending the session", auth_session.id)
            await self._end_session(session, repo, user, auth_session, reason="refresh_reused")
            return invalid
        if token.expires_at <= now or not user.active:
            return invalid
        token.used_at = now
        return await self._issue(repo, user, auth_session)

    async def logout(self, session: AsyncSession, principal: Principal) -> schemas.AgentStateRead:
        """AGENT-2: end the telephony login; the session (and token) stays for non-call work."""
        repo = Repository(session)
        user = await self._active_user(repo, principal)
        await self.agents.telephony_logout(session, repo, user, changed_by=None, force=False)
        return await self.agents.read_state(repo, user)

    async def exit(self, session: AsyncSession, principal: Principal) -> None:
        """AGENT-3: leave the system: telephony logout if this session holds it, session and token void."""
        repo = Repository(session)
        user = await self._active_user(repo, principal)
        auth_session = await repo.get_session(principal.session_id, for_update=True)
        status = await repo.get_status(user.id, for_update=True)
        if status is not None and status.session_id == principal.session_id:
            await self.agents.telephony_logout(session, repo, user, changed_by=None, force=False)
        if auth_session is not None and auth_session.user_id == user.id:
            await self._end_session(session, repo, user, auth_session, reason="exit")

    async def change_password(
        self, session: AsyncSession, principal: Principal, data: schemas.PasswordChange
    ) -> schemas.TokenPair:
        """AGENT-4: needs the old password; every older token stops working, a fresh pair comes back."""
        repo = Repository(session)
        user = await self._active_user(repo, principal, for_update=True)
        if not await self.passwords.verify(user.password_hash, data.old_password):
            raise ProblemError(403, "auth.wrong_password", "The old password is wrong", field="old_password")
        self.check_password_policy(data.new_password, "new_password")
        if data.new_password == data.old_password:
            raise ProblemError(422, "auth.password_unchanged", "The new password is the old one", field="new_password")
        now = self.clock.now()
        user.password_hash = await self.passwords.hash(data.new_password)
        user.password_changed_at = user.updated_at = now
        current = await repo.get_session(principal.session_id)
        extension = current.extension if current is not None and current.ended_at is None else None
        not_before = await self._revoke(session, repo, user.id, session_id=None, reason="password_changed")
        sessions = await repo.open_sessions(user.id)
        await repo.end_sessions([s.id for s in sessions], now, "password_changed")
        fresh = AuthSession(id=uuid.uuid4().hex, user_id=user.id, extension=extension, started_at=now, end_reason="")
        repo.add(fresh)
        await repo.flush()
        status = await repo.get_status(user.id, for_update=True)
        if status is not None and status.session_id == principal.session_id:
            status.session_id = fresh.id
        return await self._issue(repo, user, fresh, after=not_before)

    async def _active_user(self, repo: Repository, principal: Principal, *, for_update: bool = False) -> User:
        user = await repo.get_user(principal.user_id, for_update=for_update)
        if user is None or not user.active:
            raise ProblemError(401, "auth.unauthenticated", "Authentication required", detail="the user is disabled")
        return user

    async def _end_session(
        self, session: AsyncSession, repo: Repository, user: User, auth_session: AuthSession, *, reason: str
    ) -> None:
        await repo.end_sessions([auth_session.id], self.clock.now(), reason)
        await self._revoke(session, repo, user.id, session_id=auth_session.id, reason=reason)

    async def end_everything(
        self, session: AsyncSession, repo: Repository, user: User, *, reason: str, changed_by: str | None
    ) -> None:
        """Telephony logout, every session ended, every token void on every service."""
        await self.agents.telephony_logout(session, repo, user, changed_by=changed_by, force=True)
        sessions = await repo.open_sessions(user.id)
        await repo.end_sessions([s.id for s in sessions], self.clock.now(), reason)
        await self._revoke(session, repo, user.id, session_id=None, reason=reason)

    async def _revoke(
        self, session: AsyncSession, repo: Repository, user_id: str, *, session_id: str | None, reason: str
    ) -> float:
        not_before = self.wall_time()
        expires_at = not_before + self.settings.access_token_ttl_seconds + REVOCATION_MARGIN_SECONDS
        repo.add(
            Revocation(
                user_id=user_id, session_id=session_id, not_before=not_before, expires_at=expires_at, reason=reason
            )
        )
        await self.notifier.tokens_revoked(
            session, user_id=user_id, not_before=not_before, session_id=session_id, reason=reason
        )
        # Every service (this one too) applies the event from the bus; this process need not wait for it.
        revocation = _revocation_event(user_id, not_before, session_id, reason)
        after_commit(session, lambda: self.revocations.apply(revocation))
        return not_before

    async def revocations_page(
        self, session: AsyncSession, *, cursor: str | None, limit: int
    ) -> schemas.Page[schemas.RevocationRead]:
        rows = await Repository(session).active_revocations(
            self.wall_time(), key=decode_cursor(cursor, [int]), limit=limit
        )
        items, next_cursor = page_of(rows, limit, lambda r: (r.id,))
        return schemas.Page(items=[schemas.RevocationRead.model_validate(r) for r in items], next_cursor=next_cursor)

    async def load_revocations(self, session: AsyncSession) -> int:
        """After a restart: apply the active revocations to this process's list."""
        repo = Repository(session)
        await repo.prune_revocations(self.wall_time())
        count, key = 0, None
        while True:
            rows = await repo.active_revocations(self.wall_time(), key=key, limit=1000)
            for row in rows[:1000]:
                self.revocations.apply(_revocation_event(row.user_id, row.not_before, row.session_id, row.reason))
                count += 1
            if len(rows) <= 1000:
                return count
            key = (rows[999].id,)

    async def prune_revocations(self, session: AsyncSession) -> None:
        await Repository(session).prune_revocations(self.wall_time())


def _revocation_event(user_id: str, not_before: float, session_id: str | None, reason: str) -> TokensRevoked:
    return TokensRevoked(user_id=user_id, not_before=not_before, session_id=session_id, reason=reason)


# --- the agent state machine (AGENT-5, AGENT-6) and supervision (AGENT-19…21) ---------------


class AgentStateService:
    def __init__(self, settings: AgentStateSettings, clock: Clock, notifier: Notifier) -> None:
        self.settings = settings
        self.clock = clock
        self.notifier = notifier
        self.auth: AuthService | None = None  # set in main: force-logout ends sessions

    # reading

    async def read_state(
        self, repo: Repository, user: User, status: AgentStatus | None = None, groups: list[str] | None = None
    ) -> schemas.AgentStateRead:
        status = status or await repo.get_status(user.id)
        if groups is None:
            groups = (await repo.signed_in_groups([user.id]))[user.id]
        return _state_read(user, status, groups, self.clock.now())

    async def get_state(self, session: AsyncSession, principal: Principal, user_id: str) -> schemas.AgentStateRead:
        repo = Repository(session)
        user = await self._watchable(repo, principal, user_id)
        return await self.read_state(repo, user)

    async def _watchable(self, repo: Repository, principal: Principal, user_id: str) -> User:
        user = await repo.get_user(user_id)
        if user is None:
            raise _not_found("agent.not_found", "agent")
        if user_id != principal.user_id and not (
            principal.can(PERM_AGENTS_MONITOR) and await in_scope(repo, principal, user_id)
        ):
            raise _forbidden("this agent is outside your groups")
        return user

    async def list_states(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        group_id: str | None,
        logged_in_only: bool,
        cursor: str | None,
        limit: int,
    ) -> schemas.Page[schemas.AgentStateRead]:
        """CORE-6: the states of the agents one may watch."""
        only = scope_filter(principal, User.id) if principal.can(PERM_AGENTS_MONITOR) else User.id == principal.user_id
        repo = Repository(session)
        rows = await repo.list_agents(
            only_ids=only,
            logged_in_only=logged_in_only,
            group_id=group_id,
            key=decode_cursor(cursor, [str]),
            limit=limit,
        )
        items, next_cursor = page_of(rows, limit, lambda row: (row[0].work_number,))
        groups = await repo.signed_in_groups(u.id for u, _ in items)
        now = self.clock.now()
        return schemas.Page(items=[_state_read(u, s, groups[u.id], now) for u, s in items], next_cursor=next_cursor)

    async def routable(
        self, session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
    ) -> schemas.Page[schemas.RoutableAgentRead]:
        """Every logged-in agent with extension, state and signed-in groups: the ACD's start-up snapshot."""
        _require(principal, PERM_AGENTS_READ_ALL)
        repo = Repository(session)
        rows = await repo.list_agents(
            only_ids=None, logged_in_only=True, group_id=None, key=decode_cursor(cursor, [str]), limit=limit
        )
        items, next_cursor = page_of(rows, limit, lambda row: (row[0].work_number,))
        groups = await repo.signed_in_groups(u.id for u, _ in items)
        return schemas.Page(
            items=[
                schemas.RoutableAgentRead(
                    user_id=u.id,
                    work_number=u.work_number,
                    extension=s.extension,
                    state=s.state,  # type: ignore[arg-type]
                    since=s.since,
                    groups=groups[u.id],
                )
                for u, s in items
                if s is not None
            ],
            next_cursor=next_cursor,
        )

    async def timeline(
        self,
        session: AsyncSession,
        principal: Principal,
        user_id: str,
        *,
        since: datetime | None,
        until: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> schemas.Page[schemas.TimelineEntryRead]:
        repo = Repository(session)
        await self._watchable(repo, principal, user_id)
        rows = await repo.timeline(
            user_id, since=since, until=until, key=decode_cursor(cursor, [datetime, int]), limit=limit
        )
        items, next_cursor = page_of(rows, limit, lambda r: (r.started_at, r.id))
        return schemas.Page(items=[schemas.TimelineEntryRead.model_validate(r) for r in items], next_cursor=next_cursor)

    # the one place a state changes

    async def _move(
        self,
        session: AsyncSession,
        repo: Repository,
        user: User,
        status: AgentStatus,
        state: AgentState,
        *,
        at: datetime,
        cause: str,
        reason: str = "",
        changed_by: str | None = None,
        call_id: str | None = None,
        after_call_work_until: datetime | None = None,
    ) -> list[str]:
        """Change the state, extend the timeline, publish the event; returns the signed-in groups."""
        previous = status.state
        at = max(at, status.since)  # the timeline never runs backwards, whatever clock an event carries
        extension = status.extension
        if call_id != status.call_id:
            status.call_muted = False
        status.state, status.reason, status.since, status.changed_by = state.value, reason, at, changed_by
        status.call_id = call_id
        status.after_call_work_until = after_call_work_until
        if state not in IN_CALL and state is not AgentState.AFTER_CALL_WORK:
            status.next_state, status.next_reason = None, ""
        if state is AgentState.LOGGED_OUT:
            status.extension = status.session_id = None
            status.call_event_at = None
        await repo.close_interval(user.id, at)
        repo.add(
            StateInterval(
                user_id=user.id, state=state.value, reason=reason, started_at=at, changed_by=changed_by, call_id=call_id
            )
        )
        await repo.flush()
        groups = (await repo.signed_in_groups([user.id]))[user.id]
        await self.notifier.agent_state_changed(session, user, status, previous, groups, extension=extension)
        STATE_CHANGES.labels(state.value, cause).inc()
        return groups

    async def _move_after_call(
        self, session: AsyncSession, repo: Repository, user: User, status: AgentStatus, *, at: datetime, cause: str
    ) -> None:
        """The call and its paperwork are over: idle, or what the agent chose meanwhile."""
        target = AgentState(status.next_state) if status.next_state else AgentState.IDLE
        await self._move(session, repo, user, status, target, at=at, cause=cause, reason=status.next_reason)

    # telephony login (AGENT-1, AGENT-2)

    async def telephony_login(
        self, session: AsyncSession, repo: Repository, user: User, extension: str, session_id: str, at: datetime
    ) -> None:
        if user.role not in TELEPHONY_ROLES:
            raise ProblemError(422, "agent.no_telephony", f"Role {user.role} takes no calls", field="extension")
        holder = await repo.get_status_by_extension(extension, for_update=True)
        if holder is not None and holder.user_id != user.id:
            raise ProblemError(
                409, "agent.extension_in_use", "Another agent is logged in on this extension", field="extension"
            )
        status = await repo.get_status(user.id, for_update=True)
        if status is None:
            status = AgentStatus(
                user_id=user.id,
                state=AgentState.LOGGED_OUT.value,
                reason="",
                since=at,
                call_muted=False,
                next_reason="",
            )
            repo.add(status)
        elif status.extension not in (None, extension):
            if AgentState(status.state) in IN_CALL:
                raise ProblemError(
                    409, "agent.in_call", "Finish the call on your other extension first", current_state=status.state
                )
            await self._move(session, repo, user, status, AgentState.LOGGED_OUT, at=at, cause="agent", reason="moved")
        status.session_id = session_id
        if status.state != AgentState.LOGGED_OUT.value:
            return  # already logged in on this extension: a new session, the same state
        status.extension = extension
        try:
            await repo.flush()
        except IntegrityError as exc:  # another agent took the extension at the same moment
            raise ProblemError(
                409, "agent.extension_in_use", "Another agent is logged in on this extension", field="extension"
            ) from exc
        await self._move(session, repo, user, status, AgentState.IDLE, at=at, cause="agent")

    async def telephony_logout(
        self, session: AsyncSession, repo: Repository, user: User, *, changed_by: str | None, force: bool
    ) -> str | None:
        """State → logged_out; returns the previous state, None when not logged in."""
        status = await repo.get_status(user.id, for_update=True)
        if status is None or status.state == AgentState.LOGGED_OUT.value:
            return None
        previous = status.state
        if not force and AgentState(previous) in IN_CALL:
            raise _illegal(IllegalTransition(AgentState(previous), AgentState.LOGGED_OUT, "hang up first"))
        await self._move(
            session,
            repo,
            user,
            status,
            AgentState.LOGGED_OUT,
            at=self.clock.now(),
            cause="supervisor" if changed_by else "agent",
            reason="forced" if changed_by else "",
            changed_by=changed_by,
        )
        return previous

    # agent-chosen changes (AGENT-5)

    async def change_own_state(
        self, session: AsyncSession, principal: Principal, state: str, reason: str
    ) -> schemas.AgentStateRead:
        repo = Repository(session)
        found = await repo.get_status_and_user(principal.user_id)
        if found is None:  # never logged in on an extension
            raise _illegal(IllegalTransition(AgentState.LOGGED_OUT, AgentState(state), "log in on an extension first"))
        status, user = found
        try:
            decision = on_agent_request(AgentState(status.state), status.reason, AgentState(state), reason)
        except IllegalTransition as exc:
            raise _illegal(exc) from exc
        now = self.clock.now()
        groups = None
        if isinstance(decision, AfterCall):
            status.next_state = decision.state.value if decision.state else None
            status.next_reason = decision.reason
        elif isinstance(decision, Move):
            until = None
            if decision.state is AgentState.AFTER_CALL_WORK:
                until = now + timedelta(seconds=await self._after_call_work_seconds(repo, user.id))
            groups = await self._move(
                session,
                repo,
                user,
                status,
                decision.state,
                at=now,
                cause="agent",
                reason=decision.reason,
                after_call_work_until=until,
            )
        return await self.read_state(repo, user, status, groups)

    async def set_mute(self, session: AsyncSession, principal: Principal, muted: bool) -> schemas.AgentStateRead:
        """Mute is a flag on the agent's current call, not a state."""
        repo = Repository(session)
        user = await self._user(repo, principal.user_id)
        status = await repo.get_status(user.id, for_update=True)
        if (
            status is None
            or status.call_id is None
            or AgentState(status.state) not in (AgentState.TALKING, AgentState.ON_HOLD)
        ):
            raise ProblemError(
                409, "agent.no_call", "There is no call to mute", current_state=status.state if status else "logged_out"
            )
        if status.call_muted != muted:
            status.call_muted = muted
            await self.notifier.agent_mute_changed(session, user, status, status.call_id, self.clock.now())
        return await self.read_state(repo, user, status)

    async def _after_call_work_seconds(self, repo: Repository, user_id: str) -> int:
        configured = await repo.after_call_work_seconds(user_id)
        return self.settings.after_call_work_seconds if configured is None else configured

    async def _user(self, repo: Repository, user_id: str) -> User:
        user = await repo.get_user(user_id)
        if user is None:
            raise _not_found("agent.not_found", "agent")
        return user

    # call-driven changes (from the ACD's call.* events)

    async def apply_call_fact(
        self,
        session: AsyncSession,
        fact: CallFact,
        *,
        extension: str | None,
        call_id: str,
        at: datetime,
        answered: bool = False,
    ) -> bool:
        """Apply a call fact to the agent logged in on `extension`; False when it changed nothing."""
        repo = Repository(session)
        if fact is CallFact.ANSWERED:
            await self._release_other_ringing(session, repo, call_id, extension, at)
        if not extension:
            return False
        status = await repo.get_status_by_extension(extension, for_update=True)
        if status is None:
            return False
        # Deliveries are handled concurrently, so facts may arrive out of order. The newest fact
        # seen decides, even one that changed nothing: an older one arriving later is dropped
        # (an `ended` overtaken by its `answered` must not leave the agent talking forever).
        if status.call_event_at is not None and at < status.call_event_at:
            return False
        status.call_event_at = at
        target = on_call(fact, AgentState(status.state), status.call_id, call_id, answered=answered)
        if target is None:
            return False
        user = await self._user(repo, status.user_id)
        if target is AgentState.AFTER_CALL_WORK:
            seconds = await self._after_call_work_seconds(repo, user.id)
            if seconds == 0:
                await self._move_after_call(session, repo, user, status, at=at, cause="call")
                return True
            until = self.clock.now() + timedelta(seconds=seconds)
            await self._move(
                session, repo, user, status, target, at=at, cause="call", call_id=call_id, after_call_work_until=until
            )
        elif target is AgentState.IDLE:
            await self._move_after_call(session, repo, user, status, at=at, cause="call")
        else:
            await self._move(session, repo, user, status, target, at=at, cause="call", call_id=call_id)
        return True

    async def _release_other_ringing(
        self, session: AsyncSession, repo: Repository, call_id: str, extension: str | None, at: datetime
    ) -> None:
        # Someone else answered (or picked up, AGENT-13) a call that was ringing here.
        holder = await repo.get_status_by_extension(extension) if extension else None
        for other in await repo.statuses_ringing_for(call_id, except_user=holder.user_id if holder else ""):
            user = await self._user(repo, other.user_id)
            other.call_event_at = at
            await self._move_after_call(session, repo, user, other, at=at, cause="call")

    async def expire_after_call_work(self, session: AsyncSession, *, limit: int = 500) -> int:
        """End every after-call work whose stored deadline has passed (also those from before a restart)."""
        repo = Repository(session)
        now = self.clock.now()
        expired = await repo.expired_after_call_work(now, limit)
        users = await repo.users_by_ids(s.user_id for s in expired)
        for status in expired:
            assert status.after_call_work_until is not None
            await self._move_after_call(
                session, repo, users[status.user_id], status, at=status.after_call_work_until, cause="system"
            )
        return len(expired)

    # groups and skills (AGENT-6)

    async def my_groups(self, session: AsyncSession, principal: Principal) -> list[schemas.GroupRef]:
        repo = Repository(session)
        return [
            schemas.GroupRef(id=g.id, name=g.name, relation="member", signed_in=m.signed_in)
            for m, g in await repo.memberships(principal.user_id)
        ]

    async def sign_group(
        self, session: AsyncSession, principal: Principal, group_id: str, *, signed_in: bool
    ) -> list[schemas.GroupRef]:
        repo = Repository(session)
        user = await self._user(repo, principal.user_id)
        member = await repo.get_member(group_id, user.id)
        if member is None:
            raise _not_found("group.not_a_member", "group membership")
        if member.signed_in != signed_in:
            member.signed_in = signed_in
            await repo.flush()
            status = await repo.get_status(user.id)
            groups = (await repo.signed_in_groups([user.id]))[user.id]
            await self.notifier.agent_groups_changed(
                session, user, status.extension if status else None, groups, self.clock.now()
            )
        return await self.my_groups(session, principal)

    # supervisor controls (AGENT-19…21)

    async def force(
        self, session: AsyncSession, principal: Principal, agent_id: str, action: str, reason: str
    ) -> schemas.AgentStateRead:
        """Force logout / busy / idle an agent of one's scope; audited and pushed to the agent."""
        _require(principal, PERM_AGENTS_CONTROL)
        repo = Repository(session)
        agent = await self._user(repo, agent_id)
        if not await in_scope(repo, principal, agent_id):
            raise _forbidden("this agent is outside your groups")
        supervisor = await self._user(repo, principal.user_id)
        now = self.clock.now()
        status = await repo.get_status(agent.id, for_update=True)
        previous = AgentState(status.state) if status is not None else AgentState.LOGGED_OUT
        if action == "force_logout":
            assert self.auth is not None
            await self.auth.end_everything(session, repo, agent, reason="forced_logout", changed_by=supervisor.id)
            state = AgentState.LOGGED_OUT
        else:
            requested = AgentState.BUSY if action == "force_busy" else AgentState.IDLE
            try:
                move = on_forced(previous, requested)
            except IllegalTransition as exc:
                raise _illegal(exc) from exc
            assert status is not None
            await self._move(
                session,
                repo,
                agent,
                status,
                move.state,
                at=now,
                cause="supervisor",
                reason=reason or move.reason,
                changed_by=supervisor.id,
            )
            state = move.state
        repo.add(
            SupervisorAction(
                actor_id=supervisor.id,
                target_id=agent.id,
                action=action,
                reason=reason,
                previous_state=previous.value,
                at=now,
            )
        )
        await self.notifier.supervisor_action_taken(
            session,
            action=action,
            agent=agent,
            supervisor=supervisor,
            previous_state=previous.value,
            state=state.value,
            reason=reason,
            at=now,
        )
        await repo.flush()
        return await self.read_state(repo, agent)

    async def supervisor_actions(
        self, session: AsyncSession, principal: Principal, *, agent_id: str | None, cursor: str | None, limit: int
    ) -> schemas.Page[schemas.SupervisorActionRead]:
        only = (
            scope_filter(principal, SupervisorAction.target_id)
            if principal.can(PERM_AGENTS_MONITOR)
            else (SupervisorAction.target_id == principal.user_id)
        )
        rows = await Repository(session).supervisor_actions(
            only_targets=only, target_id=agent_id, key=decode_cursor(cursor, [int]), limit=limit
        )
        items, next_cursor = page_of(rows, limit, lambda r: (r.id,))
        return schemas.Page(
            items=[schemas.SupervisorActionRead.model_validate(r) for r in items], next_cursor=next_cursor
        )


def _state_read(user: User, status: AgentStatus | None, groups: list[str], now: datetime) -> schemas.AgentStateRead:
    if status is None:
        return schemas.AgentStateRead(
            user_id=user.id,
            work_number=user.work_number,
            name=user.name,
            state="logged_out",
            reason="",
            since=now,
            extension=None,
            call_id=None,
            muted=False,
            after_call_work_until=None,
            next_state=None,
            next_reason="",
            groups=groups,
        )
    return schemas.AgentStateRead(
        user_id=user.id,
        work_number=user.work_number,
        name=user.name,
        state=status.state,  # type: ignore[arg-type]
        reason=status.reason,
        since=status.since,
        extension=status.extension,
        call_id=status.call_id,
        muted=status.call_muted,
        after_call_work_until=status.after_call_work_until,
        next_state=status.next_state,  # type: ignore[arg-type]
        next_reason=status.next_reason,
        groups=groups,
    )


# --- announcements (AGENT-26) ---------------------------------------------------------------


class AnnouncementService:
    def __init__(self, clock: Clock, notifier: Notifier) -> None:
        self.clock = clock
        self.notifier = notifier

    async def publish(
        self, session: AsyncSession, principal: Principal, data: schemas.AnnouncementCreate
    ) -> schemas.AnnouncementRead:
        """To one agent, a group or everyone of one's scope; pushed live to their screens."""
        _require(principal, PERM_ANNOUNCEMENTS_PUBLISH)
        repo = Repository(session)
        target_user_id = target_group_id = None
        if data.audience == "user":
            if data.target_user_id is None:
                raise ProblemError(422, "announcement.target_missing", "Name the agent", field="target_user_id")
            if await repo.get_user(data.target_user_id) is None:
                raise ProblemError(422, "announcement.unknown_user", "No such user", field="target_user_id")
            if not await in_scope(repo, principal, data.target_user_id):
                raise _forbidden("this agent is outside your groups")
            target_user_id = data.target_user_id
        elif data.audience == "group":
            if data.target_group_id is None:
                raise ProblemError(422, "announcement.target_missing", "Name the group", field="target_group_id")
            group = await repo.get_group(data.target_group_id)
            if group is None:
                raise ProblemError(422, "announcement.unknown_group", "No such group", field="target_group_id")
            if not group_in_scope(principal, group):
                raise _forbidden("this group is not yours")
            target_group_id = group.id
        elif not principal.sees_everyone:
            raise _forbidden("only directors, supervisors and admins address everyone")
        announcement = Announcement(
            id=_new_id(),
            author_id=principal.user_id,
            title=data.title,
            body=data.body,
            audience=data.audience,
            target_user_id=target_user_id,
            target_group_id=target_group_id,
            created_at=self.clock.now(),
        )
        repo.add(announcement)
        await repo.flush()
        await self.notifier.announcement_published(session, announcement)
        return _announcement_read(announcement, None)

    async def mine(
        self, session: AsyncSession, principal: Principal, *, unread_only: bool, cursor: str | None, limit: int
    ) -> schemas.Page[schemas.AnnouncementRead]:
        rows = await Repository(session).announcements_for(
            principal.user_id, unread_only=unread_only, key=decode_cursor(cursor, [datetime, str]), limit=limit
        )
        items, next_cursor = page_of(rows, limit, lambda row: (row[0].created_at, row[0].id))
        return schemas.Page(items=[_announcement_read(a, r) for a, r in items], next_cursor=next_cursor)

    async def sent(
        self, session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
    ) -> schemas.Page[schemas.AnnouncementRead]:
        rows = await Repository(session).announcements_by(
            principal.user_id, key=decode_cursor(cursor, [datetime, str]), limit=limit
        )
        items, next_cursor = page_of(rows, limit, lambda a: (a.created_at, a.id))
        return schemas.Page(items=[_announcement_read(a, None) for a in items], next_cursor=next_cursor)

    async def get(self, session: AsyncSession, principal: Principal, announcement_id: str) -> schemas.AnnouncementRead:
        found = await Repository(session).announcement_for(announcement_id, principal.user_id)
        if found is None:  # not addressed to this user: as if it did not exist
            raise _not_found("announcement.not_found", "announcement")
        return _announcement_read(*found)

    async def mark_read(
        self, session: AsyncSession, principal: Principal, announcement_id: str
    ) -> schemas.AnnouncementRead:
        repo = Repository(session)
        if await repo.announcement_for(announcement_id, principal.user_id) is None:
            raise _not_found("announcement.not_found", "announcement")
        await repo.mark_read(announcement_id, principal.user_id, self.clock.now())
        found = await repo.announcement_for(announcement_id, principal.user_id)
        assert found is not None
        return _announcement_read(*found)


def _announcement_read(a: Announcement, read_at: datetime | None) -> schemas.AnnouncementRead:
    return schemas.AnnouncementRead(
        id=a.id,
        author_id=a.author_id,
        title=a.title,
        body=a.body,
        audience=a.audience,  # type: ignore[arg-type]
        target_user_id=a.target_user_id,
        target_group_id=a.target_group_id,
        created_at=a.created_at,
        read=read_at is not None,
        read_at=read_at,
    )


# --- address book (AGENT-28) ----------------------------------------------------------------


class AddressBookService:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def create(self, session: AsyncSession, principal: Principal, data: schemas.ContactCreate) -> Contact:
        if data.shared:
            _require(principal, PERM_ADDRESS_BOOK_SHARED)
        now = self.clock.now()
        contact = Contact(
            id=_new_id(),
            owner_id=None if data.shared else principal.user_id,
            created_by=principal.user_id,
            created_at=now,
            updated_at=now,
            **data.model_dump(exclude={"shared"}),
        )
        Repository(session).add(contact)
        await session.flush()
        return contact

    async def _visible(self, repo: Repository, principal: Principal, contact_id: str) -> Contact:
        contact = await repo.get_contact(contact_id)
        if contact is None or (contact.owner_id is not None and contact.owner_id != principal.user_id):
            raise _not_found("contact.not_found", "contact")  # another's personal contact is none of yours
        return contact

    def _check_editable(self, principal: Principal, contact: Contact) -> None:
        if contact.owner_id is None:
            _require(principal, PERM_ADDRESS_BOOK_SHARED)

    async def get(self, session: AsyncSession, principal: Principal, contact_id: str) -> Contact:
        return await self._visible(Repository(session), principal, contact_id)

    async def update(
        self, session: AsyncSession, principal: Principal, contact_id: str, data: schemas.ContactUpdate
    ) -> Contact:
        contact = await self._visible(Repository(session), principal, contact_id)
        self._check_editable(principal, contact)
        for key, value in data.model_dump(exclude_unset=True).items():
            if value is not None:
                setattr(contact, key, value)
        contact.updated_at = self.clock.now()
        await session.flush()
        return contact

    async def delete(self, session: AsyncSession, principal: Principal, contact_id: str) -> None:
        repo = Repository(session)
        contact = await self._visible(repo, principal, contact_id)
        self._check_editable(principal, contact)
        await repo.delete(contact)

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        scope: str,
        search: str | None,
        cursor: str | None,
        limit: int,
    ) -> schemas.Page[schemas.ContactRead]:
        rows = await Repository(session).contacts(
            principal.user_id, scope=scope, search=search, key=decode_cursor(cursor, [str, str]), limit=limit
        )
        items, next_cursor = page_of(rows, limit, lambda c: (c.name, c.id))
        return schemas.Page(items=[contact_read(c) for c in items], next_cursor=next_cursor)


def contact_read(contact: Contact) -> schemas.ContactRead:
    return schemas.ContactRead(
        id=contact.id,
        owner_id=contact.owner_id,
        shared=contact.owner_id is None,
        name=contact.name,
        phone=contact.phone,
        mobile=contact.mobile,
        organization=contact.organization,
        email=contact.email,
        note=contact.note,
        updated_at=contact.updated_at,
    )


# --- shifts and rosters (AGENT-30) ----------------------------------------------------------


MAX_ROSTER_DAYS = 62


class ShiftService:
    def __init__(self, settings: AgentStateSettings, clock: Clock) -> None:
        self.clock = clock
        self.zone = ZoneInfo(settings.timezone)

    async def create_shift(self, session: AsyncSession, principal: Principal, data: schemas.ShiftCreate) -> Shift:
        _require(principal, PERM_SHIFTS_MANAGE)
        repo = Repository(session)
        _check_shift_times(data.starts_at, data.ends_at)
        if await repo.get_shift_by_name(data.name) is not None:
            raise ProblemError(409, "shift.name_taken", "A shift has this name", field="name")
        shift = Shift(id=_new_id(), created_at=self.clock.now(), **data.model_dump())
        repo.add(shift)
        await repo.flush()
        return shift

    async def update_shift(
        self, session: AsyncSession, principal: Principal, shift_id: str, data: schemas.ShiftUpdate
    ) -> Shift:
        _require(principal, PERM_SHIFTS_MANAGE)
        repo = Repository(session)
        shift = await repo.get_shift(shift_id)
        if shift is None:
            raise _not_found("shift.not_found", "shift")
        changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
        if "name" in changes and changes["name"] != shift.name and await repo.get_shift_by_name(changes["name"]):
            raise ProblemError(409, "shift.name_taken", "A shift has this name", field="name")
        _check_shift_times(changes.get("starts_at", shift.starts_at), changes.get("ends_at", shift.ends_at))
        for key, value in changes.items():
            setattr(shift, key, value)
        await repo.flush()
        return shift

    async def shifts(self, session: AsyncSession, *, cursor: str | None, limit: int) -> schemas.Page[schemas.ShiftRead]:
        rows = await Repository(session).shifts(key=decode_cursor(cursor, [str]), limit=limit)
        items, next_cursor = page_of(rows, limit, lambda s: (s.name,))
        return schemas.Page(items=[schemas.ShiftRead.model_validate(s) for s in items], next_cursor=next_cursor)

    async def assign(self, session: AsyncSession, principal: Principal, data: schemas.RosterCreate) -> RosterEntry:
        """Put an agent of one's scope on a shift for a day (idempotent)."""
        _require(principal, PERM_SHIFTS_MANAGE)
        repo = Repository(session)
        if await repo.get_user(data.user_id) is None:
            raise ProblemError(422, "roster.unknown_user", "No such user", field="user_id")
        if await repo.get_shift(data.shift_id) is None:
            raise ProblemError(422, "roster.unknown_shift", "No such shift", field="shift_id")
        if not await in_scope(repo, principal, data.user_id):
            raise _forbidden("this agent is outside your groups")
        existing = await repo.find_roster_entry(data.user_id, data.day, data.shift_id)
        if existing is not None:
            return existing
        entry = RosterEntry(
            id=_new_id(), created_by=principal.user_id, created_at=self.clock.now(), **data.model_dump()
        )
        repo.add(entry)
        await repo.flush()
        return entry

    async def unassign(self, session: AsyncSession, principal: Principal, entry_id: str) -> None:
        _require(principal, PERM_SHIFTS_MANAGE)
        repo = Repository(session)
        entry = await repo.get_roster_entry(entry_id)
        if entry is None:
            raise _not_found("roster.not_found", "roster entry")
        if not await in_scope(repo, principal, entry.user_id):
            raise _forbidden("this agent is outside your groups")
        await repo.delete(entry)

    async def roster(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        first_day: date,
        last_day: date,
        user_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> schemas.Page[schemas.RosterRead]:
        if last_day < first_day:
            raise ProblemError(422, "roster.bad_range", "`to` is before `from`", field="query.to")
        if (last_day - first_day).days > MAX_ROSTER_DAYS:
            raise ProblemError(422, "roster.range_too_long", f"At most {MAX_ROSTER_DAYS} days", field="query.to")
        repo = Repository(session)
        only = (
            scope_filter(principal, RosterEntry.user_id)
            if principal.can(PERM_SHIFTS_MANAGE) or principal.can(PERM_AGENTS_MONITOR)
            else RosterEntry.user_id == principal.user_id
        )
        if user_id is not None:
            only = RosterEntry.user_id == user_id if only is None else (only & (RosterEntry.user_id == user_id))
        rows = await repo.roster(
            first_day=first_day, last_day=last_day, only_users=only, key=decode_cursor(cursor, [str, str]), limit=limit
        )
        items, next_cursor = page_of(rows, limit, lambda r: (r.day.isoformat(), r.id))
        return schemas.Page(items=[schemas.RosterRead.model_validate(r) for r in items], next_cursor=next_cursor)

    async def coverage(
        self, session: AsyncSession, principal: Principal, *, day: date, slot_minutes: int, group_id: str | None
    ) -> schemas.CoverageRead:
        """Per time slot of a local day: agents planned by the roster vs agents logged in (timeline)."""
        if not (principal.can(PERM_SHIFTS_MANAGE) or principal.can(PERM_AGENTS_MONITOR)):
            raise ProblemError(403, "auth.forbidden", "Permission required", detail=PERM_AGENTS_MONITOR)
        if (24 * 60) % slot_minutes:
            raise ProblemError(422, "coverage.bad_slot", "Slots must divide the day", field="query.slot_minutes")
        repo = Repository(session)
        users: Select[str] | None = None  # everyone
        if group_id is not None:
            group = await repo.get_group(group_id)
            if group is None:
                raise ProblemError(422, "coverage.unknown_group", "No such group", field="query.group_id")
            if not group_in_scope(principal, group):
                raise _forbidden("this group is not yours")
            users = Repository.group_user_ids(group_id)
        elif not principal.sees_everyone:
            users = Repository.supervised_users(principal.user_id, as_manager=principal.has_role(ROLE_MANAGER))
        start = datetime.combine(day, datetime.min.time(), self.zone)
        slots = [
            (start + timedelta(minutes=slot_minutes * i), start + timedelta(minutes=slot_minutes * (i + 1)))
            for i in range(24 * 60 // slot_minutes)
        ]
        now = self.clock.now()
        planned = [
            (user_id, *self._shift_bounds(on_day, shift))
            for user_id, on_day, shift in await repo.planned_shifts(day - timedelta(days=1), day, users)
        ]
        logged = await repo.logged_in_intervals(slots[0][0], slots[-1][1], users)
        result = []
        for slot_start, slot_end in slots:
            planned_ids = {u for u, s, e in planned if s < slot_end and e > slot_start}
            logged_ids = {u for u, s, e in logged if s < slot_end and (e or now) > slot_start}
            result.append(
                schemas.CoverageSlot(
                    starts_at=slot_start,
                    ends_at=slot_end,
                    planned=len(planned_ids),
                    logged_in=len(logged_ids),
                    planned_and_logged_in=len(planned_ids & logged_ids),
                )
            )
        return schemas.CoverageRead(
            day=day, timezone=str(self.zone), slot_minutes=slot_minutes, group_id=group_id, slots=result
        )

    def _shift_bounds(self, on_day: date, shift: Shift) -> tuple[datetime, datetime]:
        start = datetime.combine(on_day, shift.starts_at, self.zone)
        end_day = on_day if shift.ends_at > shift.starts_at else on_day + timedelta(days=1)
        return start, datetime.combine(end_day, shift.ends_at, self.zone)


def _check_shift_times(starts_at: time, ends_at: time) -> None:
    if starts_at == ends_at:
        raise ProblemError(422, "shift.empty", "A shift cannot start and end at the same time", field="ends_at")


@dataclass(frozen=True, slots=True)
class Services:
    org: OrgService
    auth: AuthService
    agents: AgentStateService
    announcements: AnnouncementService
    address_book: AddressBookService
    shifts: ShiftService
