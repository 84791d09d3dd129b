"""The call model: channels, the dialplan, Originate, Dial, bridges, transfers, ChanSpy.

Everything here is synchronous: an operation emits its AMI events in order and schedules
what happens later on the `Clock`. Event orders follow shared/asterisk-traces; the comments
name the trace each sequence comes from. Where two traces of the same situation disagree
(Asterisk publishes from several threads) the first trace's order is used.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbxsim.agi import AgiSession
from pbxsim.clock import Clock
from pbxsim.config import Answer, Behaviour, Busy, Manual, NoAnswer, SimConfig
from pbxsim.dialplan import PbxRun, Step, bare_name, build_steps, expand, lookup
from pbxsim.events import Events
from pbxsim.model import (
    CAUSE_TO_SIP,
    UNKNOWN,
    Bridge,
    BridgeRole,
    Channel,
    ChannelState,
    Outgoing,
)
from pbxsim.recording import Recording, resolve_path, write_wav
from pbxsim.sounds import Sounds

log = logging.getLogger(__name__)

# Reason codes of OriginateResponse (AST_CONTROL_*): 02 gives 3 on timeout, 03 gives 0 for 486.
REASON_FAILED = 0
REASON_HANGUP = 1
REASON_NO_ANSWER = 3
REASON_ANSWERED = 4
REASON_CONGESTION = 8

# Soft-hangup flags printed as "Cause" in SoftHangupRequest.
SOFTHANGUP_APPUNLOAD = 16
SOFTHANGUP_EXPLICIT = 32


class PbxError(Exception):
    """An action that cannot be carried out; the message is what the AMI response says."""


@dataclass
class OriginateRequest:
    channel: str
    application: str | None = None
    data: str = ""
    context: str | None = None
    exten: str | None = None
    priority: int = 1
    timeout: float = 30.0
    callerid: tuple[str | None, str | None] | None = None
    variables: list[tuple[str, str]] = field(default_factory=list)
    action_id: str | None = None
    account: str = ""
    channel_id: str | None = None


@dataclass
class Target:
    """What a dial string (PJSIP/1001, PJSIP/139…@carrier) resolves to."""

    endpoint: str
    dial_string: str  # as DialBegin prints it: "1001", "13900139000@carrier"
    behaviour: Behaviour
    callerid: tuple[str | None, str | None]
    context: str
    trunk: bool


class Pbx:
    def __init__(self, config: SimConfig, clock: Clock, events: Events) -> None:
        self.config = config
        self.clock = clock
        self.events = events
        self.sounds = Sounds(config.sounds_dir, config.default_prompt_seconds)
        self.channels: dict[str, Channel] = {}
        self.by_uniqueid: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.globals: dict[str, str] = {}
        self.trunk_in_use = 0
        self.rejected_calls = 0
        self.completed_recordings: list[Path] = []
        self.external_waits = 0  # FastAGI sessions waiting for their server (see PbxSimulator.advance)
        self.activity = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self._channel_seq = 0
        self._uniqueid_seq = 0
        self._local_seq = 0
        self._order = 0
        self._defer: list[Channel] | None = None
        self.booted_at = clock.wall()
        self.closed = False  # the simulator stopped: late AGI endings change nothing

    # == channels ==================================================================================
    def _new_channel(
        self,
        *,
        endpoint: str,
        state: ChannelState,
        callerid: tuple[str | None, str | None],
        context: str,
        exten: str,
        linked: Channel | None = None,
        uniqueid: str | None = None,
        tech: str = "PJSIP",
        name: str | None = None,
    ) -> Channel:
        if name is None:
            name = f"{tech}/{endpoint}-{self._channel_seq:08x}"
            self._channel_seq += 1
        self._uniqueid_seq += 1
        self._order += 1
        ch = Channel(
            name=name,
            tech=tech,
            endpoint=endpoint,
            uniqueid=uniqueid or f"{int(self.clock.wall())}.{self._uniqueid_seq}",
            order=self._order,
            created=self.clock.now(),
            state=state,
            caller_num=callerid[0],
            caller_name=callerid[1],
            context=context,
            exten=exten,
            linkedid=linked.linkedid if linked else None,
            linked_order=linked.linked_order if linked else None,
            language=self.config.language,
        )
        self.channels[ch.name] = ch
        self.by_uniqueid[ch.uniqueid] = ch
        return ch

    def find(self, name: str) -> Channel | None:
        return self.channels.get(name) or self.by_uniqueid.get(name)

    def set_var(self, ch: Channel | None, name: str, value: str) -> None:
        if ch is None:
            self.globals[bare_name(name)] = value
        else:
            ch.variables[bare_name(name)] = value
            inherit = len(name) - len(name.lstrip("_"))
            if inherit:
                ch.inherit[bare_name(name)] = min(inherit, 2)
        self.events.varset(ch, name, value)

    def get_var(self, ch: Channel | None, name: str) -> str | None:
        if ch is None:
            return self.globals.get(bare_name(name))
        value = lookup(ch, name)
        return value if value is not None else self.globals.get(bare_name(name))

    def _set_state(self, ch: Channel, state: ChannelState) -> None:
        if ch.state != state:
            ch.set_state(state)
            self.events.newstate(ch)

    def _update_connected(self, ch: Channel, num: str | None, name: str | None) -> None:
        if (ch.connected_num, ch.connected_name) != (num, name):
            ch.set_connected(num, name)
            self.events.newconnectedline(ch)

    def _set_timer(self, ch: Channel, delay: float, fn: Callable[[], None]) -> None:
        self._cancel_timer(ch)
        ch.app_timer = self.clock.call_later(delay, fn)

    @staticmethod
    def _cancel_timer(ch: Channel) -> None:
        if ch.app_timer is not None:
            ch.app_timer.cancel()
            ch.app_timer = None

    # == endpoints and trunks ======================================================================
    def resolve(self, dial: str) -> Target | None:
        tech, _, resource = dial.partition("/")
        if tech.upper() != "PJSIP" or not resource:
            return None
        number, _, trunk = resource.partition("@")
        if trunk:
            if trunk != self.config.carrier_endpoint:
                return None
            behaviour = self.config.carrier_numbers.get(number, self.config.carrier_behaviour)
            return Target(trunk, resource, behaviour, (None, None), self.config.trunk_context, trunk=True)
        endpoint = self.config.endpoints.get(number) or self.config.default_endpoint
        if endpoint is None or number in (self.config.trunk_endpoint, self.config.carrier_endpoint):
            return None
        callerid = (endpoint.callerid_num, endpoint.callerid_name)
        return Target(number, number, endpoint.behaviour, callerid, endpoint.context, trunk=False)

    def channels_of(self, endpoint: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.endpoint == endpoint and not c.hungup]

    def _take_trunk(self) -> bool:
        if self.trunk_in_use >= self.config.trunk_capacity:
            return False
        self.trunk_in_use += 1
        return True

    # == inbound calls =============================================================================
    def inbound_call(self, caller: str, dnis: str, caller_name: str | None, dtmf: str) -> Channel | None:
        """A call from the trunk enters [from-trunk] (01). None when all B-channels are busy:
        the PRI refuses the SETUP (cause 34) and Asterisk never creates a channel."""
        if not self._take_trunk():
            self.rejected_calls += 1
            return None
        ch = self._new_channel(
            endpoint=self.config.trunk_endpoint,
            state=ChannelState.RING,
            callerid=(caller, caller_name if caller_name is not None else caller),
            context=self.config.trunk_context,
            exten=dnis,
        )
        ch.trunk = True
        ch.dnid = dnis
        ch.dtmf.extend(dtmf_tokens(dtmf))
        self.events.newchannel(ch)
        self.run_dialplan(ch, self.config.trunk_context, dnis, 1)
        return ch

    # == dialplan ==================================================================================
    def run_dialplan(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        steps = build_steps(self.config, context, exten)
        if steps is None or priority > len(steps):
            # "sent to invalid extension": the PBX ends on the channel
            log.info("%s: no %s@%s priority %d", ch.name, exten, context, priority)
            self._end_pbx(ch)
            return
        ch.pbx = PbxRun(context, exten, steps, priority - 1)
        self._continue(ch)

    def _continue(self, ch: Channel) -> None:
        while ch.pbx is not None and not ch.hungup:
            run = ch.pbx
            if run.index >= len(run.steps):
                self._end_pbx(ch)
                return
            step = run.steps[run.index]
            if step.app == "Route":
                step = self._route(ch, step)
            ch.set_location(run.context, run.exten, run.priority)
            data = expand(step.data, ch)
            ch.app, ch.app_data = step.app, data
            self.events.newexten(ch, step.app, data)
            if self._exec(ch, step.app, data):
                return
            if ch.pbx is run:
                run.index += 1

    def _resume(self, ch: Channel) -> None:
        if ch.pbx is not None and not ch.hungup:
            ch.pbx.index += 1
            self._continue(ch)

    def _route(self, ch: Channel, step: Step) -> Step:
        """After the IVR: the route variable says where the call goes (README: "Routing after the IVR")."""
        route = (self.get_var(ch, self.config.route_variable) or "").strip()
        if route.lower() == "hangup":
            return Step("Hangup")
        if route:
            parts = route.split(",")
            target = [parts[0], parts[1] if len(parts) > 1 else "s", parts[2] if len(parts) > 2 else "1"]
            return Step("Goto", ",".join(target))
        return Step("Goto", step.data)

    def _exec(self, ch: Channel, app: str, data: str) -> bool:
        """Run one dialplan application; True when it blocks (it resumes the channel itself)."""
        if app == "NoOp":
            return False
        if app == "Answer":
            if ch.is_up:
                return False
            self._set_state(ch, ChannelState.UP)
            self._set_timer(ch, self.config.answer_seconds, lambda: self._resume(ch))
            return True
        if app == "Set":
            name, _, value = data.partition("=")
            self.set_var(ch, name, value)
            return False
        if app == "Goto":
            parts = data.split(",")
            context, exten, priority = (
                parts[0],
                parts[1] if len(parts) > 1 else "s",
                parts[2] if len(parts) > 2 else "1",
            )
            self.run_dialplan(ch, context, exten, int(priority) if priority.isdigit() else 1)
            return True
        if app == "MusicOnHold":
            ch.moh_class = data or "default"
            self.events.moh_start(ch, ch.moh_class)
            return True
        if app == "AGI":
            self._start_agi(ch, data)
            return True
        if app == "Dial":
            self._start_dial(ch, data)
            return True
        if app == "Wait":
            self._set_timer(ch, _seconds(data), lambda: self._resume(ch))
            return True
        if app == "Playback":
            self._playback(ch, data, lambda: self._resume(ch))
            return True
        if app == "Hangup":
            if data.strip().isdigit():
                ch.hangupcause = int(data)
            if ch.hangupcause == 0:
                ch.hangupcause = 16
            self._end_pbx(ch)
            return True
        log.warning("%s: application %s is not simulated; hanging up", ch.name, app)
        self._end_pbx(ch)
        return True

    def _playback(self, ch: Channel, data: str, done: Callable[[], None]) -> None:
        files = [f for f in data.split(",")[0].split("&") if f]
        durations = [self.sounds.duration(f, ch.language) for f in files]
        status = "SUCCESS" if durations and all(d is not None for d in durations) else "FAILED"
        total = sum(d for d in durations if d is not None)

        def finished() -> None:
            self.set_var(ch, "PLAYBACKSTATUS", status)
            done()

        self._set_timer(ch, total, finished)

    def _end_pbx(self, ch: Channel) -> None:
        """The dialplan is over: SoftHangupRequest (AST_SOFTHANGUP_APPUNLOAD), then Hangup (02, 08a, 09)."""
        if ch.hungup:
            return
        ch.pbx = None
        self._cancel_timer(ch)
        self.events.soft_hangup_request(ch, SOFTHANGUP_APPUNLOAD)
        self._destroy(ch)

    # == FastAGI ===================================================================================
    def _start_agi(self, ch: Channel, url: str) -> None:
        session = AgiSession(self, ch, url)
        ch.agi = session
        self.spawn(session.run())

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def agi_finished(self, session: AgiSession) -> None:
        """The FastAGI server closed the socket: AGISTATUS, then the dialplan goes on (01) or,
        on a dead channel, the PBX ends (fastagi-commands-ami: SoftHangupRequest 16, Hangup 0).
        SET CONTEXT / EXTENSION / PRIORITY move where it goes on, as in Asterisk."""
        ch = session.ch
        if ch.agi is not session or self.closed:
            return  # the channel was taken elsewhere (Bridge, Redirect) while the script ran
        ch.agi = None
        if ch.hungup:
            return
        self.set_var(ch, "AGISTATUS", session.status)
        if ch.soft_hangup_pending:
            self._end_pbx(ch)
            return
        if ch.pbx is None:
            self._destroy(ch)  # an originated channel running AGI as its application
            return
        context, exten, priority = session.goto
        if context is not None or exten is not None or priority is not None:
            run = ch.pbx
            target_priority = int(priority) if priority is not None else run.priority + 1
            self.run_dialplan(ch, str(context or run.context), str(exten or run.exten), target_priority)
            return
        self._resume(ch)

    def answer(self, ch: Channel) -> None:
        self._set_state(ch, ChannelState.UP)

    def agi_hangup_self(self, ch: Channel) -> None:
        """AGI HANGUP on the AGI channel: SoftHangupRequest with AST_SOFTHANGUP_EXPLICIT (32)."""
        ch.soft_hangup_pending = True
        self.events.soft_hangup_request(ch, SOFTHANGUP_EXPLICIT)

    # == hanging up ================================================================================
    def far_end_hangup(self, ch: Channel) -> None:
        """The far end hangs up (SIP BYE / ISDN DISCONNECT)."""
        if ch.hungup:
            return
        if ch.outgoing is not None:
            self.outgoing_failed(ch, 21)
            return
        self.events.hangup_request(ch)
        self._hangup(ch, remote=True)

    def request_hangup(self, ch: Channel, cause: int = 0) -> None:
        """AMI Hangup: no event for the target itself (08a), only what its hang-up causes."""
        if ch.hungup:
            return
        if cause > 0:
            ch.hangupcause = cause
        if ch.outgoing is not None:
            self._cancel_outgoing(ch)
            return
        self._hangup(ch, remote=False)

    def _hangup(self, ch: Channel, *, remote: bool) -> None:
        ch.soft_hangup_pending = True
        if ch.atxfer is not None and self.complete_atxfer(ch):
            return
        if ch.spying_on is not None:
            if remote:
                self._end_spy(ch)
            # An AMI Hangup of a ChanSpy channel took effect only when the spied call ended (07).
            return
        if ch.bridge is not None:
            self._bridge_hangup(ch)
            return
        if ch.dialled is not None:
            self._cancel_dial(ch)
        if ch.agi is not None:
            ch.agi.channel_hung_up()
            return  # the AGI session ends the PBX when its server lets go
        if ch.moh_class is not None:
            ch.moh_class = None
            self.events.moh_stop(ch)
        self._cancel_timer(ch)
        if ch.pbx is not None:
            self._end_pbx(ch)
        else:
            self._destroy(ch)

    def _destroy(self, ch: Channel) -> None:
        if ch.hungup:
            return
        if self._defer is not None:
            if ch not in self._defer:
                self._defer.append(ch)
            return
        ch.hungup = True
        ch.pbx = None
        self._cancel_timer(ch)
        self._step_out(ch)
        if ch.outgoing is not None:
            for timer in ch.outgoing.timers:
                timer.cancel()
            ch.outgoing = None
        spies = list(ch.spies)
        for spy in spies:
            self.events.chanspy("ChanSpyStop", spy, ch)
        for recording in list(ch.recordings):
            self._finish_recording(ch, recording)
        if ch.agi is not None:
            ch.agi.channel_hung_up()
        if ch.spying_on is not None:
            spyee = ch.spying_on
            ch.spying_on = None
            if ch in spyee.spies:
                spyee.spies.remove(ch)
        self.events.hangup(ch)
        self.channels.pop(ch.name, None)
        self.by_uniqueid.pop(ch.uniqueid, None)
        if ch.trunk:
            self.trunk_in_use -= 1
        for spy in spies:
            spy.spying_on = None
            ch.spies.remove(spy)
            self._destroy(spy)
        other = ch.local_peer
        if other is not None:
            # one half of a Local pair is gone: the other is hung up as by its far end (06)
            ch.local_peer = other.local_peer = None
            if not other.hungup:
                other.hangupcause = other.hangupcause or 16
                self.events.hangup_request(other)
                self._hangup(other, remote=True)

    @contextmanager
    def _deferring(self) -> Iterator[list[Channel]]:
        """Hold back Hangup events until the channel that caused them has hung up itself: 01 shows
        Hangup(caller) before Hangup(agent), 08a SoftHangupRequest(caller), Hangup(agent), Hangup(caller)."""
        outer: list[Channel] | None = self._defer
        mine: list[Channel] = []
        self._defer = mine
        try:
            yield mine
        finally:
            self._defer = outer

    # == bridges ===================================================================================
    def _bridge_create(self) -> Bridge:
        bridge = Bridge(str(uuid.uuid4()), self.clock.now())
        self.bridges[bridge.uniqueid] = bridge
        self.events.bridge_create(bridge)
        return bridge

    def _bridge_enter(self, bridge: Bridge, ch: Channel, role: BridgeRole) -> None:
        if ch.hungup or ch.bridge is not None:
            raise RuntimeError(f"{ch.name} cannot enter a bridge: hung up or already bridged")
        oldest = min([*bridge.channels, ch], key=lambda c: c.linked_order)
        for member in (*bridge.channels, ch):
            if member.linkedid != oldest.linkedid:
                member.set_linkedid(oldest.linkedid, oldest.linked_order)
        bridge.channels.append(ch)
        ch.bridge, ch.bridge_role = bridge, role
        for recording in ch.recordings:
            if recording.bridged_at is None:
                recording.bridged_at = self.clock.now()
        self.events.bridge_enter(bridge, ch)
        if len(bridge.channels) == 2:
            first, second = bridge.channels
            self.set_var(second, "BRIDGEPEER", first.name)
            self.set_var(first, "BRIDGEPEER", second.name)
            bridge.choose_technology()

    def _bridge_leave(self, bridge: Bridge, ch: Channel) -> None:
        if ch in bridge.channels:
            bridge.channels.remove(ch)
        ch.bridge, ch.bridge_role = None, None
        self.set_var(ch, "BRIDGEPEER", "")
        self.events.bridge_leave(bridge, ch)

    def _step_out(self, ch: Channel) -> None:
        """Leave the bridge without breaking it up; an emptied bridge goes away."""
        bridge = ch.bridge
        if bridge is not None:
            self._bridge_leave(bridge, ch)
            if not bridge.channels:
                self._bridge_destroy(bridge)

    def _bridge_destroy(self, bridge: Bridge) -> None:
        if bridge.destroyed:
            return
        bridge.destroyed = True
        self.bridges.pop(bridge.uniqueid, None)
        self.events.bridge_destroy(bridge)

    def _bridge_pair(self, first: tuple[Channel, BridgeRole], second: tuple[Channel, BridgeRole]) -> Bridge:
        bridge = self._bridge_create()
        self._bridge_enter(bridge, *first)
        self._bridge_enter(bridge, *second)
        a, b = first[0], second[0]
        self._update_connected(a, b.caller_num, b.caller_name)
        self._update_connected(b, a.caller_num, a.caller_name)
        return bridge

    def _bridge_hangup(self, x: Channel) -> None:
        """`x` hangs up while bridged; the basic bridge dissolves (AST_BRIDGE_FLAG_DISSOLVE_HANGUP)."""
        bridge = x.bridge
        assert bridge is not None
        if x.hangupcause == 0:
            x.hangupcause = 16
        peers = bridge.peers(x)
        if x.bridge_role is BridgeRole.DIAL_CALLER:
            x.dialled = None
            x.pbx = None
            self._bridge_leave(bridge, x)
            if x.tech == "Local":
                # 06: the ;2 leg goes because its ;1 half went
                for peer in peers:
                    self._bridge_leave(bridge, peer)
                self.events.soft_hangup_request(x, SOFTHANGUP_APPUNLOAD)
                self._bridge_destroy(bridge)
                self._destroy(x)
            else:
                # 05/08b: the caller running Dial() hangs up
                self.events.soft_hangup_request(x, SOFTHANGUP_APPUNLOAD)
                self._destroy(x)
                for peer in peers:
                    self._bridge_leave(bridge, peer)
                self._bridge_destroy(bridge)
            for peer in peers:
                self._after_bridge(peer)
            return
        if len(peers) == 1 and peers[0].bridge_role is BridgeRole.DIAL_CALLER:
            # 09: the dialled party hangs up; Dial() returns -1 and the caller's PBX ends
            caller = peers[0]
            self._bridge_leave(bridge, x)
            self._bridge_leave(bridge, caller)
            caller.dialled = None
            caller.pbx = None
            self.events.soft_hangup_request(caller, SOFTHANGUP_APPUNLOAD)
            self._destroy(x)
            self._bridge_destroy(bridge)
            self._destroy(caller)
            return
        # 01/08a/10/13: a bridge made by Bridge()
        self._bridge_leave(bridge, x)
        for peer in peers:
            self._bridge_leave(bridge, peer)
        self._bridge_destroy(bridge)
        with self._deferring() as deferred:
            for peer in peers:
                self._after_bridge(peer)
        self._destroy(x)
        for ch in deferred:
            self._destroy(ch)

    def _after_bridge(self, ch: Channel) -> None:
        """Where a channel goes once its bridge broke up under it."""
        if ch.hungup:
            return
        if ch.atxfer is not None:
            self._atxfer_failed(ch)
            return
        if ch.hangupcause == 0:
            ch.hangupcause = 16
        if ch.after_bridge is not None:
            context, exten, priority = ch.after_bridge
            ch.after_bridge = None
            self.run_dialplan(ch, context, exten, priority)
        elif ch.dialled is not None:
            ch.dialled = None
            self._end_pbx(ch)
        else:
            self._destroy(ch)

    # == originate =================================================================================
    def originate(self, req: OriginateRequest, on_result: Callable[[bool], None] | None = None) -> None:
        """The part of Originate after "Originate successfully queued" (01, 02, 03, 07, 09).
        With `on_result` (an Originate without Async) the outcome goes there, not to OriginateResponse."""
        target = self.resolve(req.channel)
        callerid = req.callerid
        cid_num = callerid[0] if callerid and callerid[0] is not None else UNKNOWN
        cid_name = callerid[1] if callerid and callerid[1] is not None else UNKNOWN
        if req.application:
            target_headers = [("Application", req.application), ("Data", req.data)]
        else:
            target_headers = [("Context", req.context or ""), ("Exten", req.exten or "")]

        def respond(success: bool, reason: int, ch: Channel | None) -> None:
            if on_result is not None:
                on_result(success)
                return
            self.events.originate_response(
                action_id=req.action_id,
                success=success,
                channel=ch.name if success and ch else req.channel,
                target=target_headers,
                reason=reason,
                uniqueid=ch.uniqueid if success and ch else UNKNOWN,
                caller_num=cid_num,
                caller_name=cid_name,
            )

        if target is None or (target.trunk and not self._take_trunk()):
            respond(False, REASON_FAILED if target is None else REASON_CONGESTION, None)
            return
        ch = self._new_channel(
            endpoint=target.endpoint,
            state=ChannelState.DOWN,
            callerid=target.callerid,
            context=target.context,
            exten="s",
            uniqueid=req.channel_id,
        )
        ch.trunk = target.trunk
        ch.accountcode = req.account
        self.events.newchannel(ch)
        ch.app, ch.app_data = "AppDial2", "(Outgoing Line)"
        self.events.newexten(ch, ch.app, ch.app_data)
        for name, value in req.variables:
            self.set_var(ch, name, value)
        if callerid is not None:
            if (ch.caller_num, ch.caller_name) != callerid:
                ch.set_caller(*callerid)
                self.events.newcallerid(ch)
            self._update_connected(ch, *callerid)
        self.events.dial_begin(None, ch, target.dial_string)

        def answered(ch: Channel) -> None:
            if req.application:
                respond(True, REASON_ANSWERED, ch)  # 01: before Newstate Up
                self._set_state(ch, ChannelState.UP)
                self.events.dial_end(None, ch, "ANSWER")
                self._run_application(ch, req.application, req.data)
            else:
                self._set_state(ch, ChannelState.UP)
                self.events.dial_end(None, ch, "ANSWER")
                respond(True, REASON_ANSWERED, ch)  # 09: after DialEnd
                self.run_dialplan(ch, req.context or "", req.exten or "s", req.priority)

        def failed(ch: Channel, cause: int) -> None:
            if cause == 19:
                respond(False, REASON_NO_ANSWER, ch)  # 02: no DialEnd, no HangupRequest
            elif cause == 0:
                respond(False, REASON_HANGUP, ch)  # cancelled by an AMI Hangup
            else:
                self.events.hangup_request(ch)  # 03: HangupRequest, DialEnd BUSY, OriginateResponse
                self.events.dial_end(None, ch, _dial_status(cause))
                respond(False, REASON_FAILED, ch)
            self._destroy(ch)

        self._ring(Outgoing(ch, req.timeout, answered, failed), target.behaviour, None)

    def _ring(self, out: Outgoing, behaviour: Behaviour, caller: Channel | None) -> None:
        ch = out.channel
        ch.outgoing = out
        if isinstance(behaviour, Busy):
            out.timers.append(self.clock.call_later(behaviour.after, lambda: self.outgoing_failed(ch, 17)))
        else:
            self._set_state(ch, ChannelState.RINGING)
            one = caller.local_peer if caller is not None and caller.tech == "Local" else None
            if one is not None:
                # the ;1 half rings and takes the callee's caller ID; 06 shows both in its Newstate
                one.set_caller(ch.caller_num, ch.caller_name)
                self._set_state(one, ChannelState.RINGING)
                self.events.newcallerid(one)
            if caller is not None:
                self.set_var(caller, "RINGTIME", "0")
            self.events.dial_state(caller, ch, "RINGING")
            if one is not None:
                self.events.dial_state(None, one, "RINGING")
            if isinstance(behaviour, Answer):
                out.timers.append(self.clock.call_later(behaviour.after, lambda: self.outgoing_answered(ch)))
            elif not isinstance(behaviour, NoAnswer | Manual):
                raise TypeError(f"unknown behaviour {behaviour!r}")
        if out.timeout is not None and out.timeout > 0:
            out.timers.append(self.clock.call_later(out.timeout, lambda: self.outgoing_failed(ch, 19)))
        if isinstance(behaviour, Answer) and behaviour.hangup_after is not None:
            ch.far_hangup_after = behaviour.hangup_after

    def outgoing_answered(self, ch: Channel) -> None:
        out = ch.outgoing
        if out is None or ch.hungup:
            return
        for timer in out.timers:
            timer.cancel()
        ch.outgoing = None
        if ch.far_hangup_after is not None:
            self.clock.call_later(ch.far_hangup_after, lambda: self.far_end_hangup(ch))
        out.on_answer(ch)

    def outgoing_failed(self, ch: Channel, cause: int) -> None:
        """The far end refused (17 busy/486, 21 rejected/603) or the ringing timed out (19/480)."""
        out = ch.outgoing
        if out is None or ch.hungup:
            return
        for timer in out.timers:
            timer.cancel()
        ch.outgoing = None
        ch.hangupcause = cause
        ch.techcause = CAUSE_TO_SIP.get(cause)
        out.on_fail(ch, cause)

    def _cancel_outgoing(self, ch: Channel) -> None:
        out = ch.outgoing
        if out is None:
            return
        for timer in out.timers:
            timer.cancel()
        ch.outgoing = None
        if ch.hangupcause == 0:
            ch.hangupcause = 16
        out.on_fail(ch, 0)

    def _run_application(self, ch: Channel, app: str, data: str) -> None:
        """The application of an Originate runs on the answered channel (no dialplan: it hangs up after)."""
        ch.app, ch.app_data = app, data
        name = app.lower()
        if name == "bridge":
            self._bridge_app(ch, data)
        elif name == "chanspy":
            self.clock.call_later(self.config.chanspy_delay, lambda: self._chanspy(ch, data))
        elif name == "musiconhold":
            ch.moh_class = data.split(",")[0] or "default"
            self.events.moh_start(ch, ch.moh_class)
        elif name == "agi":
            self._start_agi(ch, data)
        elif name == "playback":
            self._playback(ch, data, lambda: self._app_done(ch))
        elif name == "wait":
            self._set_timer(ch, _seconds(data), lambda: self._app_done(ch))
        elif name == "echo":
            pass  # until someone hangs up
        else:
            log.warning("%s: application %s is not simulated; hanging up", ch.name, app)
            self._app_done(ch)

    def _app_done(self, ch: Channel) -> None:
        if ch.hangupcause == 0:
            ch.hangupcause = 16
        self._destroy(ch)

    # == Bridge() ==================================================================================
    def _bridge_app(self, agent: Channel, data: str) -> None:
        """Bridge(<caller>[,options]) on the originated agent channel pulls the waiting caller out
        of MusicOnHold into a new basic bridge, keeping its name and Uniqueid (01)."""
        name, _, options = data.partition(",")
        caller = self.find(name.strip())
        if caller is None or caller is agent or caller.hungup:
            self.set_var(agent, "BRIDGERESULT", "NONEXISTENT")
            self._app_done(agent)
            return
        if caller.bridge is not None or caller.dialled is not None or caller.outgoing is not None or not caller.is_up:
            self.set_var(agent, "BRIDGERESULT", "FAILURE")
            self._app_done(agent)
            return
        agent.dtmf_transfer = "T" in options
        caller.dtmf_transfer = caller.dtmf_transfer or "t" in options
        bridge = self._bridge_create()
        self._leave_activity(caller)
        self._bridge_enter(bridge, caller, BridgeRole.APP_PEER)
        self._bridge_enter(bridge, agent, BridgeRole.APP_OWNER)
        self._update_connected(caller, agent.caller_num, agent.caller_name)
        self._update_connected(agent, caller.caller_num, caller.caller_name)

    def _leave_activity(self, ch: Channel) -> None:
        """Take a channel out of what it is doing in the dialplan (MOH, AGI, Wait) so it can be
        bridged; the dialplan continues at the next priority after the bridge (01: Priority 2 -> 3)."""
        if ch.moh_class is not None:
            ch.moh_class = None
            self.events.moh_stop(ch)
        if ch.agi is not None:
            ch.agi.channel_hung_up()
            ch.agi = None
        self._cancel_dial(ch)
        self._cancel_timer(ch)
        spyee = ch.spying_on
        if spyee is not None:
            self.events.chanspy("ChanSpyStop", ch, spyee)
            spyee.spies.remove(ch)
            ch.spying_on = None
        if ch.pbx is not None:
            run = ch.pbx
            ch.pbx = None
            ch.after_bridge = (run.context, run.exten, run.priority + 1)
            ch.set_location(run.context, run.exten, run.priority + 1)
        ch.app, ch.app_data = "", ""

    def bridge_channels(self, first: Channel, second: Channel) -> None:
        """AMI Bridge: both channels leave what they do and meet in a new basic bridge."""
        for ch in (first, second):
            self._step_out(ch)
            self._leave_activity(ch)
            if ch.state != ChannelState.UP:
                self._set_state(ch, ChannelState.UP)
        self._bridge_pair((first, BridgeRole.APP_PEER), (second, BridgeRole.APP_PEER))

    # == Dial() ====================================================================================
    def _start_dial(self, caller: Channel, data: str) -> None:
        args = data.split(",")
        target = self.resolve(args[0])
        timeout = _seconds(args[1]) if len(args) > 1 and args[1] else None
        options = args[2] if len(args) > 2 else ""
        if target is None or (target.trunk and not self._take_trunk()):
            self.set_var(caller, "DIALSTATUS", "CHANUNAVAIL" if target is None else "CONGESTION")
            self._resume(caller)
            return
        callee = self._new_channel(
            endpoint=target.endpoint,
            state=ChannelState.DOWN,
            callerid=target.callerid,
            context=target.context,
            exten="s",
            linked=caller,
        )
        callee.trunk = target.trunk
        self.events.newchannel(callee)
        self.set_var(callee, "DIALEDPEERNUMBER", target.dial_string)
        for name, value in caller.variables.items():
            level = caller.inherit.get(name, 0)
            if level:
                self.set_var(callee, "__" + name if level == 2 else name, value)
        callee.set_location(callee.context, caller.exten, 1)
        if callee.caller_num is None:
            # app_dial gives a leg without caller ID the dialled number and the caller's name (09)
            callee.set_caller(caller.exten, caller.caller_name)
            callee.set_connected(caller.caller_num, caller.caller_name)
            self.events.newcallerid(callee)
            self.events.newconnectedline(callee)
        else:
            self._update_connected(callee, caller.caller_num, caller.caller_name)
        callee.app, callee.app_data = "AppDial", "(Outgoing Line)"
        self.events.newexten(callee, callee.app, callee.app_data)
        callee.dtmf_transfer = "t" in options
        caller.dtmf_transfer = caller.dtmf_transfer or "T" in options
        caller.dialled = callee
        # A Local ;2 leg (attended transfer, 06) passes connected-line updates through ;1 to the transferer.
        one = caller.local_peer if caller.tech == "Local" else None
        beyond = one.bridge.peers(one) if one is not None and one.bridge is not None else []
        if one is not None:
            for peer in beyond:
                self._update_connected(peer, one.caller_num, one.caller_name)
        self.events.dial_begin(caller, callee, target.dial_string)
        self._update_connected(caller, callee.caller_num, callee.caller_name)
        for peer in beyond:
            self._update_connected(peer, callee.caller_num, callee.caller_name)

        def answered(callee: Channel) -> None:
            if caller.hungup or caller.dialled is not callee:
                self._app_done(callee)  # the Dial() this leg belonged to is over
                return
            self._set_state(callee, ChannelState.UP)
            self.set_var(caller, "DIALSTATUS", "ANSWER")
            self.set_var(caller, "DIALEDPEERNAME", callee.name)
            self.set_var(caller, "DIALEDPEERNUMBER", target.dial_string)
            callee.set_location(callee.context, "", 1)
            self.events.dial_end(caller, callee, "ANSWER")
            # Both ends now carry Normal Clearing: a later BYE shows it in HangupRequest (05, 09).
            caller.hangupcause = callee.hangupcause = 16
            if one is not None:
                self._set_state(caller, ChannelState.UP)
            bridge = self._bridge_create()
            self._bridge_enter(bridge, callee, BridgeRole.DIAL_CALLEE)
            if one is not None and not one.hungup:
                self._set_state(one, ChannelState.UP)
                self.events.dial_end(None, one, "ANSWER")
            self._bridge_enter(bridge, caller, BridgeRole.DIAL_CALLER)
            self._update_connected(caller, callee.caller_num, callee.caller_name)
            self._update_connected(callee, caller.caller_num, caller.caller_name)

        def failed(callee: Channel, cause: int) -> None:
            status = "NOANSWER" if cause == 19 else ("CANCEL" if cause == 0 else _dial_status(cause))
            if cause not in (0, 19):
                self.events.hangup_request(callee)
            self.events.dial_end(caller, callee, status)
            self._destroy(callee)
            caller.dialled = None
            if not caller.hungup and cause != 0:
                self.set_var(caller, "DIALSTATUS", status)
                self._resume(caller)

        self._ring(Outgoing(callee, timeout, answered, failed), target.behaviour, caller)

    def _cancel_dial(self, caller: Channel) -> None:
        callee, caller.dialled = caller.dialled, None
        if callee is not None and callee.outgoing is not None:
            self._cancel_outgoing(callee)

    # == redirect and transfers ====================================================================
    def redirect(self, ch: Channel, context: str, exten: str, priority: int) -> None:
        """AMI Redirect (08b). A bridged channel leaves its bridge and the other party stays in it,
        which is why Redirect has ExtraChannel."""
        self._step_out(ch)
        self._leave_activity(ch)
        ch.after_bridge = None
        self.run_dialplan(ch, context, exten, priority)

    def blind_transfer(self, transferer: Channel, context: str, exten: str) -> None:
        """AMI BlindTransfer (05): the transferer is hung up, its peer runs context/exten."""
        bridge = transferer.bridge
        if bridge is None or len(bridge.channels) != 2:
            raise PbxError("Transfer failed")
        transferee = bridge.peers(transferer)[0]
        self.events.unhold(transferer)
        self.set_var(transferee, "BLINDTRANSFER", transferer.name)
        self.set_var(transferer, "BLINDTRANSFER", transferee.name)
        self.events.blind_transfer(transferer, transferee, bridge, context, exten)
        transferee.set_location(context, exten, 1)
        self._bridge_leave(bridge, transferee)
        self._bridge_leave(bridge, transferer)
        self._bridge_destroy(bridge)
        self.set_var(transferer, "BRIDGERESULT", "SUCCESS")
        transferer.hangupcause = transferer.hangupcause or 16
        self._destroy(transferer)
        transferee.after_bridge = None
        transferee.dialled = None
        self.run_dialplan(transferee, context, exten, 1)

    def atxfer(self, transferer: Channel, context: str, exten: str) -> None:
        """AMI Atxfer feeds the atxfer feature code and the number as DTMF to the transferer (06)."""
        bridge = transferer.bridge
        if bridge is None or len(bridge.channels) != 2:
            raise PbxError("Channel specified is not in a bridge")
        code = self.config.atxfer_code
        when = 0.0
        # 06: "*" then "2" 160 ms later, Hold and MOH 100 ms after that, then a digit every 60 ms
        for i, digit in enumerate(code):
            self.clock.call_later(when, functools.partial(self._feature_digit, transferer, digit))
            when += 0.16 if i < len(code) - 1 else 0.1
        self.clock.call_later(when, lambda: self._atxfer_hold(transferer))
        when += 0.06
        for digit in exten:
            self.clock.call_later(when, functools.partial(self._feature_digit, transferer, digit))
            when += 0.06
        self.clock.call_later(when - 0.06, lambda: self._atxfer_dial(transferer, context, exten))

    def _feature_digit(self, ch: Channel, digit: str) -> None:
        if not ch.hungup:
            self.events.dtmf_end(ch, digit, 0)

    def _atxfer_hold(self, transferer: Channel) -> None:
        bridge = transferer.bridge
        if transferer.hungup or bridge is None:
            return
        self.events.hold(transferer, None)
        for peer in bridge.peers(transferer):
            peer.moh_class = "default"
            self.events.moh_start(peer, "default")

    def _atxfer_dial(self, transferer: Channel, context: str, exten: str) -> None:
        """The consultation leg is a Local channel pair; ;2 runs the dialplan (06)."""
        orig = transferer.bridge
        if transferer.hungup or orig is None:
            return
        base = f"Local/{exten}@{context}-{self._local_seq:08x}"
        self._local_seq += 1
        one, two = (
            self._new_channel(
                endpoint=f"{exten}@{context}",
                state=state,
                callerid=(None, None),
                context=context,
                exten=exten,
                linked=transferer,
                tech="Local",
                name=f"{base};{half}",
            )
            for half, state in ((1, ChannelState.DOWN), (2, ChannelState.RING))
        )
        one.local_peer, two.local_peer = two, one
        self.events.newchannel(one)
        self.events.newchannel(two)
        consult = self._bridge_create()
        two.set_caller(transferer.caller_num, transferer.caller_name)
        self.events.newcallerid(two)
        self.events.local_bridge(one, two, context, exten)
        self._update_connected(one, transferer.caller_num, transferer.caller_name)
        self._bridge_enter(consult, one, BridgeRole.LOCAL)
        self._bridge_leave(orig, transferer)
        self._bridge_enter(consult, transferer, BridgeRole.APP_OWNER)
        transferer.atxfer = (orig, consult)

        self.run_dialplan(two, context, exten, 1)

    def complete_atxfer(self, transferer: Channel) -> bool:
        """The transferer hangs up while consulting: the consultation bridge merges into the
        caller's bridge (06: BridgeMerge + AttendedTransfer, DestType Bridge)."""
        if transferer.atxfer is None:
            return False
        orig, consult = transferer.atxfer
        transferer.atxfer = None
        if orig.destroyed or consult.destroyed or transferer.bridge is not consult:
            return False
        if transferer.hangupcause == 0:
            transferer.hangupcause = 16
        self._bridge_leave(consult, transferer)
        self.events.bridge_merge(orig, consult)
        moving = list(consult.channels)
        for ch in moving:
            self._bridge_leave(consult, ch)
        for peer in orig.channels:
            if peer.moh_class is not None:
                peer.moh_class = None
                self.events.moh_stop(peer)
        for ch in moving:
            self._bridge_enter(orig, ch, BridgeRole.LOCAL)
        transferee = next((c for c in orig.channels if c not in moving), None)
        if transferee is not None:
            self.events.attended_transfer(transferer, orig, consult, transferee)
        self._bridge_destroy(consult)
        if transferee is not None and moving:
            self._update_connected(transferee, moving[0].caller_num, moving[0].caller_name)
        self._destroy(transferer)
        return True

    def _atxfer_failed(self, transferer: Channel) -> None:
        """The consultation leg went away before the transfer completed: back to the caller."""
        if transferer.atxfer is None or transferer.hungup:
            return
        orig, consult = transferer.atxfer
        transferer.atxfer = None
        if transferer.bridge is consult:
            self._bridge_leave(consult, transferer)
            if not consult.channels:
                self._bridge_destroy(consult)
        if orig.destroyed:
            self._destroy(transferer)
            return
        self._bridge_enter(orig, transferer, BridgeRole.APP_OWNER)
        self.events.unhold(transferer)
        for peer in orig.peers(transferer):
            if peer.moh_class is not None:
                peer.moh_class = None
                self.events.moh_stop(peer)

    # == ChanSpy ===================================================================================
    def _chanspy(self, spyer: Channel, data: str) -> None:
        if spyer.hungup:
            return
        prefix = data.split(",")[0].strip()
        spyee = next(
            (c for c in self.channels.values() if c is not spyer and c.name.startswith(prefix) and not c.hungup), None
        )
        if spyee is None:
            # ChanSpy keeps scanning for a channel to spy on
            self._set_timer(spyer, 1.0, lambda: self._chanspy(spyer, data))
            return
        spyer.spying_on = spyee
        spyee.spies.append(spyer)
        if spyee.bridge is not None:
            spyee.bridge.choose_technology()
        self.events.chanspy("ChanSpyStart", spyer, spyee)

    def _end_spy(self, spyer: Channel) -> None:
        spyee = spyer.spying_on
        if spyee is not None:
            self.events.chanspy("ChanSpyStop", spyer, spyee)
            spyee.spies.remove(spyer)
            spyer.spying_on = None
        self._destroy(spyer)

    # == hold ======================================================================================
    def hold(self, ch: Channel, music_class: str = "default") -> None:
        """A phone puts the call on hold with a re-INVITE (13): Hold, then MOH to the other party."""
        ch.held = True
        self.events.hold(ch, music_class)
        for peer in ch.bridge.peers(ch) if ch.bridge else []:
            peer.moh_class = music_class
            self.events.moh_start(peer, music_class)

    def unhold(self, ch: Channel) -> None:
        ch.held = False
        self.events.unhold(ch)
        for peer in ch.bridge.peers(ch) if ch.bridge else []:
            if peer.moh_class is not None:
                peer.moh_class = None
                self.events.moh_stop(peer)

    # == MixMonitor ================================================================================
    def start_mixmonitor(self, ch: Channel, file: str, options: str) -> Recording:
        path = resolve_path(file, self.config.recordings_dir, self.config.monitor_dir)
        recording = Recording(requested=file, path=path, started=self.clock.now(), bridged_only="b" in options)
        if ch.bridge is not None:
            recording.bridged_at = self.clock.now()
        ch.recordings.append(recording)
        self.set_var(ch, "MIXMONITOR_FILENAME", file)
        self.events.mixmonitor_start(ch)
        if ch.bridge is not None:
            ch.bridge.choose_technology()
        return recording

    def stop_mixmonitor(self, ch: Channel) -> bool:
        if not ch.recordings:
            return False
        for recording in list(ch.recordings):
            self._finish_recording(ch, recording)
        self.events.mixmonitor_stop(ch)
        return True

    def _finish_recording(self, ch: Channel, recording: Recording) -> None:
        ch.recordings.remove(recording)
        recording.stopped = self.clock.now()
        try:
            write_wav(recording.path, recording.seconds(), self.config.recording_tone_hz)
        except OSError:
            log.exception("cannot write %s", recording.path)
            return
        self.completed_recordings.append(recording.path)

    # == DTMF ======================================================================================
    def next_digit(self, ch: Channel) -> str | None:
        """The next scripted caller digit, or None when the caller presses nothing more for now.
        A ',' in the script is a pause long enough for the current input to time out."""
        if ch.dtmf and ch.dtmf[0] == ",":
            return None
        return ch.dtmf[0] if ch.dtmf else None

    def take_digit(self, ch: Channel) -> str:
        digit = ch.dtmf.popleft()
        self.events.dtmf_end(ch, digit, 160)
        return digit

    def end_input(self, ch: Channel) -> None:
        if ch.dtmf and ch.dtmf[0] == ",":
            ch.dtmf.popleft()


def dtmf_tokens(script: str) -> deque[str]:
    return deque(c for c in script if c in "0123456789*#ABCD,")


def _dial_status(cause: int) -> str:
    return {17: "BUSY", 19: "NOANSWER", 21: "BUSY", 34: "CONGESTION"}.get(cause, "CHANUNAVAIL")


def _seconds(value: str) -> float:
    try:
        return max(0.0, float(value.split(",")[0]))
    except ValueError:
        return 0.0
