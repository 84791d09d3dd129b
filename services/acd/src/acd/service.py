"""The ACD's telephony core: AMI events into the live model, facts into the outbox, resyncs.

Resync (after every AMI login, and every `resync_interval_seconds`): the model marks what
live events change from now on, asks `CoreShowChannels` (and, when it lists channels the
model does not know, `Status` with the variables that tie a leg to its call and give the
DNIS), then `CallModel.apply_snapshot` makes the model equal to the list: channels that
vanished are hung up (their calls publish `call.ended`, `seen_by_resync`), channels that
appeared are added (their calls publish `call.started` / `call.answered` unless the
database says they were announced before a restart), and live events that arrived while
the list was on its way win over it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from panoramisk.message import Message

from acd.ami import AmiActionFailed, AmiClient, AmiConfig, AmiUnavailable
from acd.calls import STATE_RINGING, Call, CallModel, Channel, SnapshotChannel, as_int, clean, parse_duration
from acd.config import AcdSettings
from acd.notifier import CallNotifier, FactQueue, OutboxWriter
from acd.repository import CallRepository
from callcenter_common.clock import Clock, SystemClock
from callcenter_common.service import ServiceRuntime

log = logging.getLogger("acd.service")


@dataclass(slots=True)
class ResyncState:
    count: int = 0
    last_at: datetime | None = None
    last_added: int = 0
    last_removed: int = 0
    last_ended_calls: int = 0
    last_error: str = ""


def snapshot_rows(items: list[Message], status: list[Message] | None = None) -> list[SnapshotChannel]:
    """CoreShowChannel items (+ Status items, by Uniqueid) as snapshot rows; items without an id are skipped."""
    details: dict[str, Message] = {}
    for item in status or ():
        if item.get("Event") == "Status" and item.get("Uniqueid"):
            details[item["Uniqueid"]] = item
    rows: list[SnapshotChannel] = []
    for item in items:
        if item.get("Event") != "CoreShowChannel" or not item.get("Uniqueid") or not item.get("Channel"):
            continue
        uniqueid = item["Uniqueid"]
        row = SnapshotChannel(
            uniqueid=uniqueid,
            name=item["Channel"],
            linkedid=item.get("Linkedid") or uniqueid,
            state=as_int(item.get("ChannelState")),
            caller_number=item.get("CallerIDNum", ""),
            caller_name=item.get("CallerIDName", ""),
            connected_number=item.get("ConnectedLineNum", ""),
            connected_name=item.get("ConnectedLineName", ""),
            context=item.get("Context", ""),
            exten=item.get("Exten", ""),
            application=item.get("Application", ""),
            application_data=item.get("ApplicationData", ""),
            bridge_id=item.get("BridgeId", ""),
            duration_seconds=parse_duration(item.get("Duration", "")),
        )
        detail = details.get(uniqueid)
        if detail is not None:
            row.dnid = clean(detail.get("DNID"))
            values = detail.get("Variable") or []
            for pair in [values] if isinstance(values, str) else values:
                name, sep, value = str(pair).partition("=")
                if sep:
                    row.variables[name] = value
        rows.append(row)
    return rows


class AcdService:
    def __init__(self, settings: AcdSettings, runtime: ServiceRuntime, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.runtime = runtime
        self.clock: Clock = clock or SystemClock()
        self.queue = FactQueue(settings.fact_queue_limit)
        self.notifier = CallNotifier(self.queue)
        self.model = CallModel(
            self.notifier,
            clock=self.clock,
            agent_pattern=settings.agent_channel_pattern,
            tracked_variables=settings.tracked_variable_list(),
        )
        self.repository = CallRepository(runtime.db)
        self.writer = OutboxWriter(
            runtime,
            self.queue,
            self.repository,
            batch_size=settings.fact_batch_size,
            linger_seconds=settings.fact_linger_seconds,
        )
        self.ami = AmiClient(
            AmiConfig(
                host=settings.ami_host,
                port=settings.ami_port,
                username=settings.ami_username,
                secret=settings.ami_secret,
                reconnect_initial_seconds=settings.ami_reconnect_initial_seconds,
                reconnect_max_seconds=settings.ami_reconnect_max_seconds,
                ping_seconds=settings.ami_ping_seconds,
                idle_timeout_seconds=settings.ami_idle_timeout_seconds,
                action_timeout_seconds=settings.ami_action_timeout_seconds,
                max_frame_bytes=settings.ami_max_frame_bytes,
            ),
            wanted=self.model.handled_events,
            tracks_variable=self.model.tracks_variable,
            on_event=self.model.apply,
            on_booted=self._on_booted,
            on_lost=self._on_lost,
        )
        self.queue.on_full = self.ami.pause_reading
        self.queue.on_drained = self.ami.resume_reading
        self.resync_state = ResyncState()
        self._resync_task: asyncio.Task[None] | None = None
        self._periodic: asyncio.Task[None] | None = None
        self._resynced = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Recall the calls announced before a restart, then connect to the AMI in the background."""
        announced = await self.repository.announced()
        if announced:
            log.info("%d calls were in progress before this start; the first resync settles them", len(announced))
        self.model.restore(announced)
        self.writer.start()
        await self.ami.start()
        if self.settings.resync_interval_seconds > 0:
            self._periodic = asyncio.create_task(self._resync_periodically(), name="acd-periodic-resync")

    async def stop(self) -> None:
        """Stop resyncing and reading, then write the facts still queued."""
        for task in (self._periodic, self._resync_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._periodic = self._resync_task = None
        await self.ami.stop()
        await self.writer.stop()

    async def ami_ready(self) -> bool:
        """Readiness: logged in to the AMI."""
        return self.ami.connected

    # -- resync -------------------------------------------------------------------------------------
    def _on_booted(self) -> None:
        self._start_resync()

    def _on_lost(self) -> None:
        self.model.abort_resync()

    def _start_resync(self) -> None:
        if self._resync_task is not None and not self._resync_task.done():
            self._resync_task.cancel()  # a newer one supersedes it (its token no longer counts)
        self._resynced.clear()
        self._resync_task = asyncio.create_task(self.resync(), name="acd-resync")

    async def wait_resynced(self) -> None:
        """Until the resync after the latest login has been applied."""
        await self._resynced.wait()

    async def resync(self) -> None:
        """Make the model equal to the PBX's channels now."""
        token = self.model.begin_resync()
        try:
            listing = await self.ami.send({"Action": "CoreShowChannels"})
            items = listing if isinstance(listing, list) else [listing]
            known = self.model.channels
            status: list[Message] | None = None
            if any(i.get("Uniqueid") and i.get("Uniqueid") not in known for i in items[1:]):
                answer = await self.ami.send(
                    {"Action": "Status", "Variables": ",".join(self.settings.resync_variable_list())}
                )
                status = answer if isinstance(answer, list) else [answer]
            report = self.model.apply_snapshot(snapshot_rows(items, status), token)
        except (AmiUnavailable, AmiActionFailed, TimeoutError) as exc:
            self.model.abort_resync(token)
            self.resync_state.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("resync failed (%s); the next login or interval retries it", exc)
            return
        except asyncio.CancelledError:
            self.model.abort_resync(token)
            raise
        if report is None:
            return
        state = self.resync_state
        state.count += 1
        state.last_at = self.clock.now()
        state.last_added, state.last_removed, state.last_ended_calls = report.added, report.removed, report.ended_calls
        state.last_error = ""
        self._resynced.set()
        log.info(
            "resynced with the PBX: %d channels, %d added, %d gone, %d calls ended meanwhile",
            len(self.model.channels),
            report.added,
            report.removed,
            report.ended_calls,
        )

    async def _resync_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval_seconds)
            if self.ami.connected and (self._resync_task is None or self._resync_task.done()):
                self._start_resync()

    # -- queries ------------------------------------------------------------------------------------
    def live_calls(self) -> list[Call]:
        """Calls in progress, oldest first."""
        return sorted(self.model.calls.values(), key=lambda c: (c.started_at, c.call_id))

    def live_channels(self) -> list[Channel]:
        """Channels Asterisk has now, oldest first."""
        return sorted(self.model.channels.values(), key=lambda c: (c.created_at, c.uniqueid))

    def channel_names(self, call: Call) -> list[str]:
        """The names of the call's channels."""
        return [ch.name for u in sorted(call.channels) if (ch := self.model.channels.get(u)) is not None]

    def call_extensions(self, call: Call) -> set[str | None]:
        """Agents on the call now, and the one who answered it last."""
        legs = (self.model.channels.get(u) for u in call.channels)
        return {call.agent_extension} | {ch.extension for ch in legs if ch is not None and ch.extension}

    def call_status(self, call: Call) -> str:
        """waiting, ringing (an agent leg rings), talking or held."""
        if call.held:
            return "held"
        if call.answered_at is not None:
            return "talking"
        legs = (self.model.channels.get(u) for u in call.channels)
        if any(ch is not None and ch.kind == "agent" and ch.state == STATE_RINGING for ch in legs):
            return "ringing"
        return "waiting"

    def ami_status(self) -> dict[str, Any]:
        """The AMI link and the last resync, for `/ami/status`."""
        return {
            "connected": self.ami.connected,
            "host": self.settings.ami_host,
            "port": self.settings.ami_port,
            "version": self.ami.version,
            "last_event_at": self.ami.last_event_at,
            "reconnects": self.ami.reconnects,
            "last_error": self.ami.last_error,
            "resyncs": self.resync_state.count,
            "last_resync_at": self.resync_state.last_at,
            "last_resync_error": self.resync_state.last_error,
            "live_calls": len(self.model.calls),
            "live_channels": len(self.model.channels),
            "facts_waiting": len(self.queue),
            "reading_paused": self.queue.full,
        }
