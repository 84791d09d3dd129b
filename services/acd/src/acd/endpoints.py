"""Read-only views of the live model: calls, channels, the AMI link (CORE-6)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from acd.calls import Call, Channel
from acd.schemas import AmiStatusRead, CallPage, CallRead, ChannelPage, ChannelRead
from acd.service import AcdService
from callcenter_common.auth import CurrentPrincipal, Principal
from callcenter_common.contracts.acd import Direction
from callcenter_common.problems import PROBLEM_RESPONSES, ProblemError

LimitQuery = Annotated[int, Query(ge=1, le=500, description="page size")]
CursorQuery = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]


def _encode(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(key, list) or len(key) != 2 or not all(isinstance(k, str) for k in key):
        raise _bad_cursor()
    return key[0], key[1]


def _bad_cursor() -> ProblemError:
    return ProblemError(
        422, "request.invalid", "The request is not valid", detail="cursor is not valid", field="cursor"
    )


def _sees(principal: Principal, extensions: set[str | None]) -> bool:
    """Supervisors see every call; an agent the calls on their own extension."""
    return principal.sees_everyone or principal.has_role("manager", "team_lead") or principal.extension in extensions


def build_router(service: AcdService) -> APIRouter:
    router = APIRouter(tags=["live calls"], responses=PROBLEM_RESPONSES)

    def call_read(call: Call) -> CallRead:
        return CallRead(
            call_id=call.call_id,
            direction=call.direction,
            status=service.call_status(call),  # type: ignore[arg-type]
            caller_number=call.caller_number,
            caller_name=call.caller_name,
            dnis=call.dnis,
            started_at=call.started_at,
            answered_at=call.answered_at,
            agent_extension=call.agent_extension,
            agent_channel=call.agent_channel,
            channels=service.channel_names(call),
            variables=call.variables,
        )

    def channel_read(ch: Channel) -> ChannelRead:
        return ChannelRead(
            uniqueid=ch.uniqueid,
            name=ch.name,
            linkedid=ch.linkedid,
            call_id=ch.call_id,
            kind=ch.kind,
            extension=ch.extension,
            state=ch.state,
            caller_number=ch.caller_number,
            caller_name=ch.caller_name,
            connected_number=ch.connected_number,
            connected_name=ch.connected_name,
            context=ch.context,
            exten=ch.exten,
            bridge_id=ch.bridge_id,
            on_hold=ch.on_hold,
            music_on_hold=ch.music_on_hold,
            recording=ch.recording,
            created_at=ch.created_at,
        )

    @router.get("/calls", response_model=CallPage, summary="Calls in progress, oldest first")
    async def list_calls(
        principal: CurrentPrincipal,
        limit: LimitQuery = 100,
        cursor: CursorQuery = None,
        direction: Direction | None = None,
        dnis: Annotated[str | None, Query(max_length=40)] = None,
        agent_extension: Annotated[str | None, Query(max_length=20)] = None,
    ) -> CallPage:
        after = _decode(cursor)
        rows = []
        for call in service.live_calls():
            if after is not None and (call.started_at.isoformat(), call.call_id) <= after:
                continue
            if direction is not None and call.direction != direction:
                continue
            if dnis is not None and call.dnis != dnis:
                continue
            extensions = service.call_extensions(call)
            if agent_extension is not None and agent_extension not in extensions:
                continue
            if _sees(principal, extensions):
                rows.append(call)
            if len(rows) > limit:
                break
        page = rows[:limit]
        next_cursor = _encode(page[-1].started_at.isoformat(), page[-1].call_id) if len(rows) > limit else None
        return CallPage(items=[call_read(c) for c in page], next_cursor=next_cursor)

    @router.get("/channels", response_model=ChannelPage, summary="Channels Asterisk has now, oldest first")
    async def list_channels(
        principal: CurrentPrincipal,
        limit: LimitQuery = 100,
        cursor: CursorQuery = None,
        call_id: Annotated[str | None, Query(max_length=64)] = None,
        kind: Literal["agent", "external", "local"] | None = None,
    ) -> ChannelPage:
        after = _decode(cursor)
        rows = []
        for ch in service.live_channels():
            if after is not None and (ch.created_at.isoformat(), ch.uniqueid) <= after:
                continue
            if call_id is not None and ch.call_id != call_id:
                continue
            if kind is not None and ch.kind != kind:
                continue
            call = service.model.calls.get(ch.call_id or "")
            extensions = service.call_extensions(call) if call is not None else {ch.extension}
            if _sees(principal, extensions):
                rows.append(ch)
            if len(rows) > limit:
                break
        page = rows[:limit]
        next_cursor = _encode(page[-1].created_at.isoformat(), page[-1].uniqueid) if len(rows) > limit else None
        return ChannelPage(items=[channel_read(c) for c in page], next_cursor=next_cursor)

    @router.get("/ami/status", response_model=AmiStatusRead, summary="The AMI connection and the last resync")
    async def ami_status(principal: CurrentPrincipal) -> AmiStatusRead:
        return AmiStatusRead.model_validate(service.ami_status())

    return router
