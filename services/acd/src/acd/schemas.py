from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from callcenter_common.contracts.acd import Direction


class ChannelRead(BaseModel):
    uniqueid: str
    name: str
    linkedid: str
    call_id: str | None
    kind: Literal["agent", "external", "local"]
    extension: str | None
    state: int
    caller_number: str
    caller_name: str
    connected_number: str
    connected_name: str
    context: str
    exten: str
    bridge_id: str | None
    on_hold: bool
    music_on_hold: bool
    recording: bool
    created_at: datetime


class CallRead(BaseModel):
    call_id: str
    direction: Direction
    status: Literal["waiting", "ringing", "talking", "held"]
    caller_number: str
    caller_name: str
    dnis: str
    started_at: datetime
    answered_at: datetime | None
    agent_extension: str | None
    agent_channel: str | None
    channels: list[str]
    variables: dict[str, str]


class CallPage(BaseModel):
    items: list[CallRead]
    next_cursor: str | None = None


class ChannelPage(BaseModel):
    items: list[ChannelRead]
    next_cursor: str | None = None


class AmiStatusRead(BaseModel):
    connected: bool
    host: str
    port: int
    version: str
    last_event_at: datetime | None
    reconnects: int
    last_error: str
    resyncs: int
    last_resync_at: datetime | None
    last_resync_error: str
    live_calls: int
    live_channels: int
    facts_waiting: int
    reading_paused: bool
