"""The announced-calls table: every query, and how a `Call` is remembered across a restart."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from acd.calls import Call
from acd.models import AnnouncedCall
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
