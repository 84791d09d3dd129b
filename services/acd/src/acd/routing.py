"""Routing configuration (queues, DNIS bindings, number and region rules, blacklist) and the
local copies routing reads (agents, patient owners). Every change is committed, then the
router gets a fresh `RoutingConfig`: applied to the next decision, without a restart."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from acd import schemas
from acd.agents import AgentView
from acd.models import BlacklistEntry, DnisBinding, NumberRule, QueueRow, RegionRule
from acd.regions import normalize_number
from acd.repository import MissedCallFilters, RoutingRepository
from acd.rules import QueueConfig, RegionTarget, RoutingConfig
from callcenter_common.auth import Principal
from callcenter_common.clock import Clock
from callcenter_common.contracts.agent_state import AgentStateChanged
from callcenter_common.contracts.patient import PatientOwnerChanged
from callcenter_common.db import Database
from callcenter_common.events import Envelope
from callcenter_common.pagination import decode_cursor, encode_cursor
from callcenter_common.problems import ProblemError

log = logging.getLogger("acd.routing")

CONFIG_ROLES = ("admin", "supervisor", "director", "manager")
APPROVER_ROLES = ("team_lead", "supervisor", "manager", "director", "admin")


def queue_config(row: QueueRow) -> QueueConfig:
    return QueueConfig(
        queue_id=row.queue_id,
        name=row.name,
        priority=row.priority,
        groups=tuple(row.groups),
        strategy=row.strategy,  # type: ignore[arg-type]
        ring_timeout_seconds=row.ring_timeout_seconds,
        max_wait_seconds=row.max_wait_seconds,
        overflow_queue_id=row.overflow_queue_id,
        overflow_callback=row.overflow_callback,
        owner_wait_seconds=row.owner_wait_seconds,
    )


async def load_config(db: Database, default_queue_id: str | None) -> RoutingConfig:
    """The routing configuration as the database has it now."""
    async with db.session() as session:
        repo = RoutingRepository(session)
        return RoutingConfig(
            queues={row.queue_id: queue_config(row) for row in await repo.queues()},
            dnis={row.dnis: row.queue_id for row in await repo.bindings()},
            default_queue_id=default_queue_id,
            designated={row.caller_number: row.agent_work_number for row in await repo.number_rules()},
            regions={
                row.region: RegionTarget(tuple(row.groups), tuple(row.agent_work_numbers))
                for row in await repo.region_rules()
            },
            blocked=dict(await repo.approved_blacklist()),
        )


def _require(principal: Principal, roles: tuple[str, ...]) -> None:
    if not principal.has_role(*roles):
        raise ProblemError(403, "auth.forbidden", "Not allowed", detail=f"needs one of the roles {', '.join(roles)}")


def _invalid(detail: str, field: str) -> ProblemError:
    return ProblemError(422, "request.invalid", "The request is not valid", detail=detail, field=field)


def _not_found(what: str, key: object) -> ProblemError:
    return ProblemError(404, f"{what}.not_found", f"No such {what.replace('_', ' ')}", detail=str(key))


class RoutingAdmin:
    """CRUD of the routing configuration (supervisors and admins; blacklist requests by anyone signed in)."""

    def __init__(self, db: Database, clock: Clock, on_change: Callable[[], Awaitable[None]]) -> None:
        self.db = db
        self.clock = clock
        self.on_change = on_change

    # -- queues -----------------------------------------------------------------------------------
    async def queues(self) -> list[schemas.QueueRead]:
        async with self.db.session() as session:
            return [schemas.QueueRead.model_validate(r) for r in await RoutingRepository(session).queues()]

    async def queue(self, queue_id: str) -> schemas.QueueRead:
        async with self.db.session() as session:
            row = await RoutingRepository(session).queue(queue_id)
            if row is None:
                raise _not_found("queue", queue_id)
            return schemas.QueueRead.model_validate(row)

    async def create_queue(self, principal: Principal, data: schemas.QueueCreate) -> schemas.QueueRead:
        _require(principal, CONFIG_ROLES)
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            if await repo.queue(data.queue_id) is not None:
                raise ProblemError(409, "queue.exists", "The queue exists", field="queue_id")
            await self._check_overflow(repo, data.queue_id, data.overflow_queue_id)
            row = QueueRow(**data.model_dump(), updated_at=self.clock.now())
            repo.add(row)
            await session.flush()
            read = schemas.QueueRead.model_validate(row)
        await self.on_change()
        return read

    async def update_queue(self, principal: Principal, queue_id: str, data: schemas.QueueUpdate) -> schemas.QueueRead:
        _require(principal, CONFIG_ROLES)
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            row = await repo.queue(queue_id)
            if row is None:
                raise _not_found("queue", queue_id)
            changes = data.model_dump(exclude_unset=True)
            if "overflow_queue_id" in changes:
                await self._check_overflow(repo, queue_id, changes["overflow_queue_id"])
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = self.clock.now()
            await session.flush()
            read = schemas.QueueRead.model_validate(row)
        await self.on_change()
        return read

    async def delete_queue(self, principal: Principal, queue_id: str) -> None:
        _require(principal, CONFIG_ROLES)
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            row = await repo.queue(queue_id)
            if row is None:
                raise _not_found("queue", queue_id)
            if await repo.queue_in_use(queue_id):
                raise ProblemError(409, "queue.in_use", "The queue is bound to a number or is an overflow target")
            await repo.delete(row)
        await self.on_change()

    @staticmethod
    async def _check_overflow(repo: RoutingRepository, queue_id: str, overflow: str | None) -> None:
        if overflow is None:
            return
        if overflow == queue_id or await repo.queue(overflow) is None:
            raise ProblemError(
                422,
                "request.invalid",
                "The request is not valid",
                detail="no such other queue",
                field="overflow_queue_id",
            )

    # -- bindings and rules -----------------------------------------------------------------------
    async def bindings(self) -> list[schemas.DnisBindingRead]:
        async with self.db.session() as session:
            return [schemas.DnisBindingRead.model_validate(r) for r in await RoutingRepository(session).bindings()]

    async def bind_dnis(
        self, principal: Principal, dnis: str, data: schemas.DnisBindingWrite
    ) -> schemas.DnisBindingRead:
        _require(principal, CONFIG_ROLES)
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            if await repo.queue(data.queue_id) is None:
                raise ProblemError(
                    422, "request.invalid", "The request is not valid", detail="no such queue", field="queue_id"
                )
            row = await repo.binding(dnis)
            if row is None:
                row = DnisBinding(dnis=dnis, queue_id=data.queue_id)
                repo.add(row)
            else:
                row.queue_id = data.queue_id
            read = schemas.DnisBindingRead(dnis=dnis, queue_id=data.queue_id)
        await self.on_change()
        return read

    async def unbind_dnis(self, principal: Principal, dnis: str) -> None:
        _require(principal, CONFIG_ROLES)
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            row = await repo.binding(dnis)
            if row is None:
                raise _not_found("dnis_binding", dnis)
            await repo.delete(row)
        await self.on_change()

    async def number_rules(self) -> list[schemas.NumberRuleRead]:
        async with self.db.session() as session:
            return [schemas.NumberRuleRead.model_validate(r) for r in await RoutingRepository(session).number_rules()]

    async def put_number_rule(
        self, principal: Principal, number: str, data: schemas.NumberRuleWrite
    ) -> schemas.NumberRuleRead:
        _require(principal, CONFIG_ROLES)
        number = normalize_number(number)
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            row = await repo.number_rule(number)
            if row is None:
                repo.add(NumberRule(caller_number=number, agent_work_number=data.agent_work_number))
            else:
                row.agent_work_number = data.agent_work_number
        await self.on_change()
        return schemas.NumberRuleRead(caller_number=number, agent_work_number=data.agent_work_number)

    async def delete_number_rule(self, principal: Principal, number: str) -> None:
        _require(principal, CONFIG_ROLES)
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            row = await repo.number_rule(normalize_number(number))
            if row is None:
                raise _not_found("number_rule", number)
            await repo.delete(row)
        await self.on_change()

    async def region_rules(self) -> list[schemas.RegionRuleRead]:
        async with self.db.session() as session:
            return [schemas.RegionRuleRead.model_validate(r) for r in await RoutingRepository(session).region_rules()]

    async def put_region_rule(
        self, principal: Principal, region: str, data: schemas.RegionRuleWrite
    ) -> schemas.RegionRuleRead:
        _require(principal, CONFIG_ROLES)
        if not data.groups and not data.agent_work_numbers:
            raise ProblemError(
                422, "request.invalid", "The request is not valid", detail="name groups or agents", field="groups"
            )
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            row = await repo.region_rule(region)
            if row is None:
                repo.add(RegionRule(region=region, groups=data.groups, agent_work_numbers=data.agent_work_numbers))
            else:
                row.groups, row.agent_work_numbers = data.groups, data.agent_work_numbers
        await self.on_change()
        return schemas.RegionRuleRead(region=region, groups=data.groups, agent_work_numbers=data.agent_work_numbers)

    async def delete_region_rule(self, principal: Principal, region: str) -> None:
        _require(principal, CONFIG_ROLES)
        async with self.db.session() as session:
            repo = RoutingRepository(session)
            row = await repo.region_rule(region)
            if row is None:
                raise _not_found("region_rule", region)
            await repo.delete(row)
        await self.on_change()

    # -- blacklist (AGENT-14) ---------------------------------------------------------------------
    async def blacklist(
        self, principal: Principal, status: str | None, cursor: str | None, limit: int
    ) -> schemas.BlacklistPage:
        key = decode_cursor(cursor, [int])
        async with self.db.session() as session:
            rows = await RoutingRepository(session).blacklist(status, int(key[0]) if key else None, limit + 1)
            items = [schemas.BlacklistRead.model_validate(r) for r in rows[:limit]]
        if not principal.has_role(*APPROVER_ROLES):
            items = [i for i in items if i.requested_by == principal.user_id]
        return schemas.BlacklistPage(
            items=items, next_cursor=encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
        )

    async def request_blacklist(self, principal: Principal, data: schemas.BlacklistCreate) -> schemas.BlacklistRead:
        """An agent asks for a number to be blocked; it blocks nothing until a team lead approves."""
        async with self.db.session() as session:
            row = BlacklistEntry(
                number=normalize_number(data.number),
                reason=data.reason,
                status="pending",
                requested_by=principal.user_id,
                requested_at=self.clock.now(),
                blocked_calls=0,
            )
            RoutingRepository(session).add(row)
            await session.flush()
            return schemas.BlacklistRead.model_validate(row)

    async def decide_blacklist(self, principal: Principal, entry_id: int, approve: bool) -> schemas.BlacklistRead:
        _require(principal, APPROVER_ROLES)
        async with self.db.session() as session:
            row = await RoutingRepository(session).blacklist_entry(entry_id)
            if row is None:
                raise _not_found("blacklist_entry", entry_id)
            if row.status != "pending" and not (row.status == "approved" and not approve):
                raise ProblemError(409, "blacklist_entry.decided", "The entry was decided already")
            row.status = "approved" if approve else "rejected"
            row.decided_by, row.decided_at = principal.user_id, self.clock.now()
            await session.flush()
            read = schemas.BlacklistRead.model_validate(row)
        await self.on_change()
        return read

    # -- lost calls (AGENT-11, AGENT-22) -----------------------------------------------------------
    async def missed_calls(
        self, principal: Principal, filters: MissedCallFilters, cursor: str | None, limit: int
    ) -> schemas.MissedCallPage:
        """Supervisors: every lost call, filtered; an agent: the offers it missed (its extension)."""
        if not principal.has_role(*APPROVER_ROLES):
            if not principal.extension:
                return schemas.MissedCallPage(items=[])
            filters = replace(filters, agent_extension=principal.extension)
        key = decode_cursor(cursor, [int])
        async with self.db.session() as session:
            rows = await RoutingRepository(session).missed_calls(filters, int(key[0]) if key else None, limit + 1)
            items = [schemas.MissedCallRead.model_validate(r) for r in rows[:limit]]
        more = len(rows) > limit
        return schemas.MissedCallPage(items=items, next_cursor=encode_cursor([rows[limit - 1].id]) if more else None)

    async def count_blocked(self, entry_id: int) -> None:
        async with self.db.session() as session:
            await RoutingRepository(session).count_blocked(entry_id)


# -- local copies -------------------------------------------------------------------------------------


class RoutingCopies:
    """agent.state_changed → the agent view; patient.owner_changed → mobile → owner work number."""

    def __init__(self, agents: AgentView, owners: dict[str, str], on_agents_changed: Callable[[], None]) -> None:
        self.agents = agents
        self.owners = owners
        self.on_agents_changed = on_agents_changed

    async def on_agent_state(self, _session: AsyncSession, envelope: Envelope) -> None:
        self.apply_agent_state(AgentStateChanged.from_envelope(envelope))

    def apply_agent_state(self, event: AgentStateChanged) -> None:
        self.agents.apply_state(
            user_id=event.user_id,
            work_number=event.work_number,
            extension=event.extension,
            state=event.state,
            groups=event.groups,
            changed_at=event.changed_at,
        )
        self.on_agents_changed()

    async def on_owner_changed(self, _session: AsyncSession, envelope: Envelope) -> None:
        self.apply_owner(PatientOwnerChanged.from_envelope(envelope))

    def apply_owner(self, event: PatientOwnerChanged) -> None:
        self.owners[normalize_number(event.mobile)] = event.owner_work_number

    async def load(self, agents_url: str, owners_url: str, token: str) -> None:
        """At start-up: agent-state's routable agents and patient's owners, where configured."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(headers=headers, timeout=10.0) as client:
            if agents_url:
                for row in await _all_pages(client, f"{agents_url.rstrip('/')}/agents/routable", "cursor"):
                    self.agents.apply_state(
                        user_id=row["user_id"],
                        work_number=row["work_number"],
                        extension=row.get("extension"),
                        state=row["state"],
                        groups=row.get("groups", []),
                        changed_at=datetime.fromisoformat(row["since"]),
                    )
                self.on_agents_changed()
                log.info("loaded %d routable agents", len(self.agents.by_work_number))
            if owners_url:
                for row in await _all_pages(client, f"{owners_url.rstrip('/')}/owners", "after"):
                    self.owners.setdefault(normalize_number(row["mobile"]), row["owner_work_number"])
                log.info("loaded %d patient owners", len(self.owners))


async def _all_pages(client: httpx.AsyncClient, url: str, cursor_param: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        response = await client.get(url, params={cursor_param: cursor} if cursor else {})
        response.raise_for_status()
        page = response.json()
        rows.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return rows
