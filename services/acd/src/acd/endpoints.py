"""Read-only views of the live model: calls, channels, the AMI link (CORE-6)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from acd.calls import Call, Channel
from acd.repository import MissedCallFilters
from acd.schemas import (
    AmiStatusRead,
    BlacklistCreate,
    BlacklistPage,
    BlacklistRead,
    CallPage,
    CallRead,
    ChannelPage,
    ChannelRead,
    DnisBindingRead,
    DnisBindingWrite,
    MissedCallPage,
    NumberRuleRead,
    NumberRuleWrite,
    QueueCreate,
    QueueFigures,
    QueueRead,
    QueueUpdate,
    RegionRuleRead,
    RegionRuleWrite,
    RoutableAgentRead,
    WaitingCallRead,
)
from acd.service import AcdService
from callcenter_common.auth import CurrentPrincipal, Principal
from callcenter_common.contracts.acd import Direction
from callcenter_common.problems import PROBLEM_RESPONSES, ProblemError

LimitQuery = Annotated[int, Query(ge=1, le=500, description="page size")]
CursorQuery = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")]
NumberPath = Annotated[str, Path(min_length=3, max_length=32, pattern=r"^\+?[0-9]+$")]
RegionPath = Annotated[str, Path(min_length=1, max_length=40)]


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


def build_routing_router(service: AcdService) -> APIRouter:
    """Queues, DNIS bindings, number / region rules, blacklist (CORE-2, AGENT-14) and what waits now."""
    router = APIRouter(tags=["routing"], responses=PROBLEM_RESPONSES)
    admin = service.admin

    @router.get("/queues", summary="Every queue")
    async def list_queues(_principal: CurrentPrincipal) -> list[QueueRead]:
        return await admin.queues()

    @router.post("/queues", status_code=201, summary="Create a queue (supervisors, admins)")
    async def create_queue(data: QueueCreate, principal: CurrentPrincipal) -> QueueRead:
        return await admin.create_queue(principal, data)

    @router.get("/queues/{queue_id}", summary="One queue")
    async def get_queue(queue_id: str, _principal: CurrentPrincipal) -> QueueRead:
        return await admin.queue(queue_id)

    @router.patch("/queues/{queue_id}", summary="Change a queue; applies to the next decision")
    async def update_queue(queue_id: str, data: QueueUpdate, principal: CurrentPrincipal) -> QueueRead:
        return await admin.update_queue(principal, queue_id, data)

    @router.delete("/queues/{queue_id}", status_code=204, summary="Delete a queue no number is bound to")
    async def delete_queue(queue_id: str, principal: CurrentPrincipal) -> None:
        await admin.delete_queue(principal, queue_id)

    @router.get("/dnis", summary="Called number → queue bindings")
    async def list_bindings(_principal: CurrentPrincipal) -> list[DnisBindingRead]:
        return await admin.bindings()

    @router.put("/dnis/{dnis}", summary="Bind a called number to a queue")
    async def bind(dnis: NumberPath, data: DnisBindingWrite, principal: CurrentPrincipal) -> DnisBindingRead:
        return await admin.bind_dnis(principal, dnis, data)

    @router.delete("/dnis/{dnis}", status_code=204, summary="Unbind a called number")
    async def unbind(dnis: NumberPath, principal: CurrentPrincipal) -> None:
        await admin.unbind_dnis(principal, dnis)

    @router.get("/number-rules", summary="Caller number → designated agent (CORE-2.4)")
    async def list_number_rules(_principal: CurrentPrincipal) -> list[NumberRuleRead]:
        return await admin.number_rules()

    @router.put("/number-rules/{number}", summary="Designate an agent for a caller number")
    async def put_number_rule(number: NumberPath, data: NumberRuleWrite, principal: CurrentPrincipal) -> NumberRuleRead:
        return await admin.put_number_rule(principal, number, data)

    @router.delete("/number-rules/{number}", status_code=204)
    async def delete_number_rule(number: NumberPath, principal: CurrentPrincipal) -> None:
        await admin.delete_number_rule(principal, number)

    @router.get("/region-rules", summary="City or province → agents / groups (CORE-2.3)")
    async def list_region_rules(_principal: CurrentPrincipal) -> list[RegionRuleRead]:
        return await admin.region_rules()

    @router.put("/region-rules/{region}", summary="Designate agents or groups for a city or province (e.g. 广州)")
    async def put_region_rule(region: RegionPath, data: RegionRuleWrite, principal: CurrentPrincipal) -> RegionRuleRead:
        return await admin.put_region_rule(principal, region, data)

    @router.delete("/region-rules/{region}", status_code=204)
    async def delete_region_rule(region: RegionPath, principal: CurrentPrincipal) -> None:
        await admin.delete_region_rule(principal, region)

    @router.get("/blacklist", summary="Blacklist entries (an agent sees their own requests)")
    async def list_blacklist(
        principal: CurrentPrincipal,
        status: Literal["pending", "approved", "rejected"] | None = None,
        limit: LimitQuery = 100,
        cursor: CursorQuery = None,
    ) -> BlacklistPage:
        return await admin.blacklist(principal, status, cursor, limit)

    @router.post("/blacklist", status_code=201, summary="Ask for a number to be blocked, with a reason (AGENT-14)")
    async def request_blacklist(data: BlacklistCreate, principal: CurrentPrincipal) -> BlacklistRead:
        return await admin.request_blacklist(principal, data)

    @router.post("/blacklist/{entry_id}/approve", summary="Approve: the number is blocked from now on (team leads)")
    async def approve(entry_id: int, principal: CurrentPrincipal) -> BlacklistRead:
        return await admin.decide_blacklist(principal, entry_id, approve=True)

    @router.post("/blacklist/{entry_id}/reject", summary="Reject a request, or lift an approved entry (team leads)")
    async def reject(entry_id: int, principal: CurrentPrincipal) -> BlacklistRead:
        return await admin.decide_blacklist(principal, entry_id, approve=False)

    @router.get(
        "/missed-calls", summary="Lost calls, oldest first (AGENT-22); an agent sees the offers it missed (AGENT-11)"
    )
    async def missed_calls(
        principal: CurrentPrincipal,
        kind: Literal["abandoned", "unanswered", "agent_missed"] | None = None,
        queue: str | None = None,
        caller_number: str | None = None,
        agent_extension: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: LimitQuery = 100,
        cursor: CursorQuery = None,
    ) -> MissedCallPage:
        filters = MissedCallFilters(kind, queue, caller_number, agent_extension, since, until)
        return await admin.missed_calls(principal, filters, cursor, limit)

    @router.get("/waiting-calls", summary="Calls waiting or ringing, best first; an agent sees its groups' (AGENT-12)")
    async def waiting_calls(principal: CurrentPrincipal) -> list[WaitingCallRead]:
        return service.waiting_calls_for(principal)

    @router.post("/calls/{call_id}/pickup", status_code=204, summary="Take a call ringing at another agent (AGENT-13)")
    async def pickup(call_id: str, principal: CurrentPrincipal) -> None:
        service.pickup(principal, call_id)

    @router.get("/routable-agents", summary="The ACD's routable view of agents (supervisors)")
    async def routable_agents(principal: CurrentPrincipal) -> list[RoutableAgentRead]:
        if not (principal.sees_everyone or principal.has_role("manager", "team_lead")):
            raise ProblemError(403, "auth.forbidden", "Not allowed", detail="supervisors only")
        return service.routable_agents()

    @router.get("/queue-figures", summary="Per queue: waiting, ringing, longest wait, available agents (CORE-6)")
    async def queue_figures(_principal: CurrentPrincipal) -> list[QueueFigures]:
        return service.queue_figures()

    return router
