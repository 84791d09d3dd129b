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

import httpx
from panoramisk.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from acd.agents import AgentView
from acd.ami import AmiActionFailed, AmiClient, AmiConfig, AmiUnavailable
from acd.calls import STATE_RINGING, Call, CallModel, Channel, SnapshotChannel, as_int, clean, parse_duration
from acd.config import AcdSettings
from acd.notifier import AgentOf, CallNotifier, FactQueue, OutboxWriter, RoutingNotifier
from acd.regions import RegionLookup
from acd.repository import CallRepository
from acd.router import Offer, Router, WaitingCall
from acd.routing import RoutingAdmin, RoutingCopies, load_config
from acd.rules import RoutingConfig, RoutingRules
from acd.schemas import QueueFigures, RoutableAgentRead, WaitingCallRead
from callcenter_common.auth import Principal
from callcenter_common.bus import BusUnavailable
from callcenter_common.clock import Clock, SystemClock
from callcenter_common.contracts.acd import QueueFigures as ContractQueueFigures
from callcenter_common.contracts.acd import QueueFiguresUpdated
from callcenter_common.contracts.agent_state import AgentStateChanged
from callcenter_common.contracts.patient import PatientOwnerChanged
from callcenter_common.events import Audience, Envelope
from callcenter_common.problems import ProblemError
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


def route_if_waiting(model: CallModel, router: Router, ch: Channel | None, at: datetime) -> None:
    """An inbound caller on music on hold outside a bridge sits in `[waiting]`: route it."""
    if ch is None or ch.bridge_id is not None or ch.call_id is None:
        return
    call = model.calls.get(ch.call_id)
    if call is None or call.direction != "inbound" or call.main_uniqueid != ch.uniqueid or call.answered_at:
        return
    router.call_waiting(call, ch.name, at)


class RoutedCallNotifier(CallNotifier):
    """The call facts; an answer and an end go to the router too (answered, or abandoned while queued or ringing)."""

    def __init__(self, queue: FactQueue, agent_of: AgentOf) -> None:
        super().__init__(queue, agent_of)
        self.router: Router | None = None

    def call_answered(self, call: Call, leg: Channel, at: datetime, *, first: bool) -> None:
        super().call_answered(call, leg, at, first=first)
        if self.router is not None:  # bridged: answered, even if the OriginateResponse is still on its way
            self.router.offer_answered(call.call_id, at, leg.extension)

    def call_ended(self, call: Call, at: datetime, *, by_resync: bool) -> None:
        super().call_ended(call, at, by_resync=by_resync)
        self.lost_call(call, at)
        if self.router is not None:
            self.router.call_ended(call.call_id, at)


class AmiRoutingActions:
    """The router's actions as AMI actions (trace 01): Originate to the agent, then MixMonitor on the caller."""

    def __init__(self, service: AcdService) -> None:
        self.service = service
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def offer(self, offer: Offer) -> None:
        self._spawn(self._ring(offer), f"acd-offer-{offer.call_id}")

    async def _ring(self, offer: Offer) -> None:
        service = self.service
        action = {
            "Action": "Originate",
            "Channel": f"PJSIP/{offer.extension}",
            "Application": "Bridge",
            "Data": offer.caller_channel,
            "Timeout": str(offer.ring_timeout_ms),
            "CallerID": f'"{offer.caller_number}" <{offer.caller_number}>',
            "Async": "true",
            "Variable": f"ACD_CALLER={offer.caller_channel}",
        }
        try:
            answer = await service.ami.send(action)
        except (AmiUnavailable, AmiActionFailed, TimeoutError) as exc:
            log.warning("offer of %s to %s failed: %s", offer.call_id, offer.extension, exc)
            # Not the agent's fault; the call is offered again, after a pause so a PBX that is away
            # does not turn into a busy loop of offers.
            await asyncio.sleep(service.settings.ami_reconnect_initial_seconds)
            service.router.offer_failed(offer.call_id, service.clock.now(), agent_missed=False)
            return
        result = answer[-1] if isinstance(answer, list) else answer
        if result.get("Response") != "Success":
            # Reason 3: no answer within the ring timeout; 0: busy (486), trace 03.
            service.router.offer_failed(offer.call_id, service.clock.now(), agent_missed=True)
            return
        service.router.offer_answered(offer.call_id, service.clock.now(), offer.extension)
        await self._record(offer.caller_channel)

    async def _record(self, caller_channel: str) -> None:
        service = self.service
        caller = service.model.channels.get(service.model.by_name.get(caller_channel, ""))
        if caller is None or caller.recording:
            return  # gone already, or recorded by the dialplan
        path = service.settings.recording_path.format(uniqueid=caller.uniqueid)
        try:
            await service.ami.send({"Action": "MixMonitor", "Channel": caller_channel, "File": path, "Options": "b"})
        except (AmiUnavailable, AmiActionFailed, TimeoutError) as exc:
            log.error("recording %s could not start: %s", caller_channel, exc)

    def block(self, waiting: WaitingCall, blacklist_entry: int | None) -> None:
        self._spawn(self._send_away(waiting, self.service.settings.blocked_context), f"acd-block-{waiting.call_id}")
        if blacklist_entry is not None:
            self._spawn(self.service.admin.count_blocked(blacklist_entry), "acd-count-blocked")

    def call_back(self, waiting: WaitingCall) -> None:
        self._spawn(self._send_away(waiting, self.service.settings.callback_context), f"acd-callback-{waiting.call_id}")

    async def _send_away(self, waiting: WaitingCall, target: str) -> None:
        if target:
            context, exten, priority = ([*target.split(","), "s", "1"])[:3]
            action = {"Action": "Redirect", "Channel": waiting.caller_channel, "Context": context}
            action.update(Exten=exten, Priority=priority)
        else:
            action = {"Action": "Hangup", "Channel": waiting.caller_channel, "Cause": "21"}
        await self._send(action)

    def cancel_offer(self, waiting: WaitingCall) -> None:
        """The caller left while an agent rings: stop the ringing (its OriginateResponse then frees the agent)."""
        model = self.service.model
        for channel in list(model.channels.values()):
            ringing = channel.kind == "agent" and channel.bridge_id is None
            if ringing and channel.variables.get("ACD_CALLER") == waiting.caller_channel:
                self._spawn(self._hang_up(channel.name), f"acd-cancel-{waiting.call_id}")

    def pick_up(self, waiting: WaitingCall, extension: str) -> None:
        """The caller leaves music on hold for the dialplan that dials the picking agent (08b)."""
        context = self.service.settings.pickup_context
        action = {"Action": "Redirect", "Channel": waiting.caller_channel, "Context": context}
        action.update(Exten=extension, Priority="1")
        self._spawn(self._send(action), f"acd-pickup-{waiting.call_id}")

    async def _send(self, action: dict[str, str]) -> None:
        try:
            await self.service.ami.send(action)
        except (AmiUnavailable, AmiActionFailed, TimeoutError) as exc:
            log.warning("%s of %s failed: %s", action["Action"], action.get("Channel"), exc)

    async def _hang_up(self, channel: str) -> None:
        try:
            await self.service.ami.send({"Action": "Hangup", "Channel": channel, "Cause": "26"})
        except (AmiUnavailable, AmiActionFailed, TimeoutError) as exc:
            log.info("hang-up of %s: %s", channel, exc)


class AcdService:
    def __init__(self, settings: AcdSettings, runtime: ServiceRuntime, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.runtime = runtime
        self.clock: Clock = clock or SystemClock()
        self.queue = FactQueue(settings.fact_queue_limit)
        self.agents = AgentView()
        self.notifier = RoutedCallNotifier(self.queue, self.agents.identity_of)
        self.owners: dict[str, str] = {}
        self.regions = RegionLookup()
        self.actions = AmiRoutingActions(self)
        self.router = Router(
            RoutingConfig(default_queue_id=settings.default_queue or None),
            self.agents,
            RoutingRules(self.agents, self.regions, self.owners),
            self.actions,
            RoutingNotifier(self.queue),
        )
        self.notifier.router = self.router
        self.copies = RoutingCopies(self.agents, self.owners, lambda: self.router.agent_changed(self.clock.now()))
        self.admin = RoutingAdmin(runtime.db, self.clock, self.reload_routing)
        runtime.consume("routing", [AgentStateChanged.name, PatientOwnerChanged.name], self._on_routing_event)
        self._ticker: asyncio.Task[None] | None = None
        self._figures: asyncio.Task[None] | None = None
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
            on_event=self._on_ami_event,
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
        await self.reload_routing()
        self.regions.region_of("13800138000")  # loads `phone`'s prefix file now, not on the first call
        self.writer.start()
        self._ticker = asyncio.create_task(self._tick_routing(), name="acd-routing-timers")
        if self.settings.figures_seconds > 0:
            self._figures = asyncio.create_task(self._push_figures(), name="acd-live-figures")
        if self.settings.agent_state_url or self.settings.patient_url:
            try:
                await self.copies.load(
                    self.settings.agent_state_url, self.settings.patient_url, self.settings.agent_state_token
                )
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                log.error("start-up copies not loaded (%s); events fill them as they come", exc)
        await self.ami.start()
        if self.settings.resync_interval_seconds > 0:
            self._periodic = asyncio.create_task(self._resync_periodically(), name="acd-periodic-resync")

    async def stop(self) -> None:
        """Stop resyncing and reading, then write the facts still queued."""
        for task in (self._periodic, self._resync_task, self._ticker, self._figures):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._periodic = self._resync_task = self._ticker = self._figures = None
        await self.ami.stop()
        for pending in list(self.actions.tasks):
            pending.cancel()
        await asyncio.gather(*self.actions.tasks, return_exceptions=True)
        await self.writer.stop()

    async def ami_ready(self) -> bool:
        """Readiness: logged in to the AMI."""
        return self.ami.connected

    # -- routing ------------------------------------------------------------------------------------
    def _on_ami_event(self, name: str, event: dict[str, str]) -> bool:
        handled = self.model.apply(name, event)
        if name == "MusicOnHoldStart":
            self._caller_waiting(self.model.channels.get(event.get("Uniqueid", "")))
        return handled

    def _caller_waiting(self, ch: Channel | None) -> None:
        route_if_waiting(self.model, self.router, ch, self.clock.now())

    async def _on_routing_event(self, session: AsyncSession, envelope: Envelope) -> None:
        if envelope.name == AgentStateChanged.name:
            await self.copies.on_agent_state(session, envelope)
        elif envelope.name == PatientOwnerChanged.name:
            await self.copies.on_owner_changed(session, envelope)

    async def reload_routing(self) -> None:
        """Queues and rules as the database has them now, for the next decision."""
        self.router.reconfigure(await load_config(self.runtime.db, self.settings.default_queue or None))
        self._route_waiting_callers()

    def _route_waiting_callers(self) -> None:
        """Callers on music on hold the router does not have yet (seen by a resync, or a number bound just now)."""
        now = self.clock.now()
        for ch in list(self.model.channels.values()):
            if (ch.music_on_hold or ch.application == "MusicOnHold") and ch.call_id not in self.router.calls:
                route_if_waiting(self.model, self.router, ch, now)

    async def _tick_routing(self) -> None:
        while True:
            await asyncio.sleep(self.settings.routing_tick_seconds)
            try:
                self.router.tick(self.clock.now())
            except Exception:
                log.exception("routing timers failed")

    async def _push_figures(self) -> None:
        # Straight to the bus, not through the outbox: a snapshot that changes no state, replaced a second later.
        audience = Audience(group_ids=(self.settings.figures_group,))
        while True:
            await asyncio.sleep(self.settings.figures_seconds)
            event = QueueFiguresUpdated(
                queues=[ContractQueueFigures(**f.model_dump()) for f in self.queue_figures()],
                agents_by_state=self.agents_by_state(),
                at=self.clock.now(),
            )
            try:
                await self.runtime.bus.publish(event.envelope(self.runtime.name, audience=audience))
            except (BusUnavailable, OSError) as exc:  # the bus away: the next snapshot tries again
                log.debug("live figures not pushed: %s", exc)

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
        self._route_waiting_callers()
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

    def waiting_calls_for(self, principal: Principal) -> list[WaitingCallRead]:
        """Waiting and ringing calls, best first; an agent sees those its groups or itself could take (AGENT-12)."""
        now = self.clock.now()
        everyone = principal.sees_everyone or principal.has_role("manager", "team_lead")
        rows: list[WaitingCallRead] = []
        for waiting in self.router.waiting_calls():
            personal = waiting.wait_for.work_number if waiting.wait_for else None
            if not everyone and personal != principal.work_number and not principal.groups & set(waiting.groups):
                continue
            region = self.regions.region_of(waiting.call.caller_number)
            rows.append(
                WaitingCallRead(
                    call_id=waiting.call_id,
                    caller_number=waiting.call.caller_number,
                    dnis=waiting.call.dnis,
                    queue=waiting.queue.queue_id,
                    priority=waiting.priority,
                    status="offered" if waiting.state == "offered" else "waiting",
                    rule=waiting.rule,
                    groups=list(waiting.groups),
                    waiting_for_agent=personal,
                    offered_to=waiting.offered_to.work_number if waiting.offered_to else None,
                    waited_seconds=max((now - waiting.first_routed_at).total_seconds(), 0.0),
                    region=region.city if region else None,
                )
            )
        return rows

    def routable_agents(self) -> list[RoutableAgentRead]:
        """The routing view of agents, by work number."""
        return [
            RoutableAgentRead(
                work_number=a.work_number,
                extension=a.extension,
                state=a.state,
                groups=sorted(a.groups),
                available=a.available,
                reserved_for=a.reserved_for,
                held=a.held,
                idle_since=a.idle_since,
                calls_today=a.calls_today,
            )
            for a in sorted(self.agents.by_work_number.values(), key=lambda a: a.work_number)
        ]

    def pickup(self, principal: Principal, call_id: str) -> None:
        """The caller takes a call ringing at another agent of its groups (AGENT-13)."""
        picker = self.agents.by_work_number.get(principal.work_number)
        if picker is None:
            raise ProblemError(409, "agent.not_logged_in", "You are not logged in to take calls")
        refused = self.router.pickup(call_id, picker, self.clock.now())
        if refused is not None:
            status = 403 if refused == "call.not_your_group" else 409
            raise ProblemError(status, refused, "The call cannot be picked up", detail=refused)

    def agents_by_state(self) -> dict[str, int]:
        """Agents by agent-state's state, with the ACD's own marks (reserved, held) counted apart."""
        counts: dict[str, int] = {}
        for agent in self.agents.by_work_number.values():
            if agent.reserved_for is not None:
                state = "reserved"
            elif agent.held is not None and agent.state == "idle":
                state = agent.held
            else:
                state = agent.state
            counts[state] = counts.get(state, 0) + 1
        return dict(sorted(counts.items()))

    def queue_figures(self) -> list[QueueFigures]:
        """Per configured queue: calls waiting and offered, the longest wait, agents available in its groups."""
        now = self.clock.now()
        figures: dict[str, QueueFigures] = {}
        for queue_id, queue in sorted(self.router.config.queues.items()):
            available = {
                a.work_number
                for group in queue.groups
                for a in self.agents.by_work_number.values()
                if a.available and group in a.groups
            }
            figures[queue_id] = QueueFigures(
                queue_id=queue_id, waiting=0, offered=0, longest_wait_seconds=0.0, available_agents=len(available)
            )
        for waiting in self.router.calls.values():
            figure = figures.get(waiting.queue.queue_id)
            if figure is None:
                continue
            if waiting.state == "offered":
                figure.offered += 1
            else:
                figure.waiting += 1
            waited = max((now - waiting.first_routed_at).total_seconds(), 0.0)
            figure.longest_wait_seconds = max(figure.longest_wait_seconds, waited)
        return list(figures.values())

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
