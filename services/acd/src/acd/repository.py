"""Every query: the announced calls (and how a `Call` is remembered across a restart), and the routing configuration."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from acd.calls import Call
from acd.models import AnnouncedCall, BlacklistEntry, DnisBinding, MissedCall, NumberRule, QueueRow, RegionRule
from callcenter_common.db import Database


def remembered(call: Call, facts: Iterable[str] | None = None) -> dict[str, Any]:
    """What a restarted ACD needs to continue a call: its published `facts` and what `call.ended` says."""
    return {
        "call_id": call.call_id,
        "main_uniqueid": call.main_uniqueid,
        "main_channel": call.main_channel,
        "direction": call.direction,
        "started_at": call.started_at.isoformat(),
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "dnis": call.dnis,
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "agent_extension": call.agent_extension,
        "agent_channel": call.agent_channel,
        "held": call.held,
        "hangup_by": call.hangup_by,
        "variables": dict(call.variables),
        "facts": sorted(call.facts if facts is None else facts),
    }


def recalled(state: Mapping[str, Any]) -> Call:
    answered_at = state.get("answered_at")
    return Call(
        call_id=state["call_id"],
        main_uniqueid=state["main_uniqueid"],
        main_channel=state["main_channel"],
        direction=state["direction"],
        started_at=datetime.fromisoformat(state["started_at"]),
        caller_number=state.get("caller_number", ""),
        caller_name=state.get("caller_name", ""),
        dnis=state.get("dnis", ""),
        answered_at=datetime.fromisoformat(answered_at) if answered_at else None,
        agent_extension=state.get("agent_extension"),
        agent_channel=state.get("agent_channel"),
        held=bool(state.get("held", False)),
        hangup_by=state.get("hangup_by"),
        variables=dict(state.get("variables", {})),
        facts=set(state.get("facts", ())),
    )


class CallRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def announced(self) -> list[Call]:
        async with self.db.session() as session:
            rows = (await session.execute(select(AnnouncedCall.state))).scalars().all()
        return [recalled(json.loads(row)) for row in rows]

    async def save(
        self, session: AsyncSession, states: Mapping[str, dict[str, Any]], ended: set[str], at: datetime
    ) -> None:
        """Keep the calls that go on, forget the ended ones; in the caller's transaction."""
        if states:
            dialect = sqlite if self.db.is_sqlite else postgresql
            stmt = dialect.insert(AnnouncedCall).values(
                [{"call_id": k, "state": json.dumps(v), "updated_at": at} for k, v in states.items()]
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[AnnouncedCall.call_id],
                set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
            )
            await session.execute(stmt)
        if ended:
            await session.execute(delete(AnnouncedCall).where(AnnouncedCall.call_id.in_(ended)))

    async def add_missed(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        await session.execute(insert(MissedCall), rows)


class RoutingRepository:
    """Queues, bindings, rules and the blacklist, in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def queues(self) -> list[QueueRow]:
        return list((await self.session.execute(select(QueueRow).order_by(QueueRow.queue_id))).scalars())

    async def queue(self, queue_id: str) -> QueueRow | None:
        return await self.session.get(QueueRow, queue_id)

    async def bindings(self) -> list[DnisBinding]:
        return list((await self.session.execute(select(DnisBinding).order_by(DnisBinding.dnis))).scalars())

    async def binding(self, dnis: str) -> DnisBinding | None:
        return await self.session.get(DnisBinding, dnis)

    async def queue_in_use(self, queue_id: str) -> bool:
        bound = await self.session.execute(select(DnisBinding.dnis).where(DnisBinding.queue_id == queue_id).limit(1))
        overflow = await self.session.execute(
            select(QueueRow.queue_id).where(QueueRow.overflow_queue_id == queue_id).limit(1)
        )
        return bound.first() is not None or overflow.first() is not None

    async def number_rules(self) -> list[NumberRule]:
        return list((await self.session.execute(select(NumberRule).order_by(NumberRule.caller_number))).scalars())

    async def number_rule(self, number: str) -> NumberRule | None:
        return await self.session.get(NumberRule, number)

    async def region_rules(self) -> list[RegionRule]:
        return list((await self.session.execute(select(RegionRule).order_by(RegionRule.region))).scalars())

    async def region_rule(self, region: str) -> RegionRule | None:
        return await self.session.get(RegionRule, region)

    async def blacklist(self, status: str | None, after_id: int | None, limit: int) -> list[BlacklistEntry]:
        query = select(BlacklistEntry).order_by(BlacklistEntry.id).limit(limit)
        if status:
            query = query.where(BlacklistEntry.status == status)
        if after_id is not None:
            query = query.where(BlacklistEntry.id > after_id)
        return list((await self.session.execute(query)).scalars())

    async def blacklist_entry(self, entry_id: int) -> BlacklistEntry | None:
        return await self.session.get(BlacklistEntry, entry_id)

    async def approved_blacklist(self) -> list[tuple[str, int]]:
        rows = await self.session.execute(
            select(BlacklistEntry.number, BlacklistEntry.id).where(BlacklistEntry.status == "approved")
        )
        return [(number, entry_id) for number, entry_id in rows]

    async def count_blocked(self, entry_id: int) -> None:
        await self.session.execute(
            update(BlacklistEntry)
            .where(BlacklistEntry.id == entry_id)
            .values(blocked_calls=BlacklistEntry.blocked_calls + 1)
        )

    def add(self, row: object) -> None:
        self.session.add(row)

    async def delete(self, row: object) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def missed_calls(self, filters: MissedCallFilters, after_id: int | None, limit: int) -> list[MissedCall]:
        query = select(MissedCall).order_by(MissedCall.id).limit(limit)
        if after_id is not None:
            query = query.where(MissedCall.id > after_id)
        for column, value in (
            (MissedCall.kind, filters.kind),
            (MissedCall.queue, filters.queue),
            (MissedCall.caller_number, filters.caller_number),
            (MissedCall.agent_extension, filters.agent_extension),
        ):
            if value is not None:
                query = query.where(column == value)
        if filters.since is not None:
            query = query.where(MissedCall.at >= filters.since)
        if filters.until is not None:
            query = query.where(MissedCall.at < filters.until)
        return list((await self.session.execute(query)).scalars())


@dataclass(frozen=True, slots=True)
class MissedCallFilters:
    kind: str | None = None
    queue: str | None = None
    caller_number: str | None = None
    agent_extension: str | None = None
    since: datetime | None = None
    until: datetime | None = None
