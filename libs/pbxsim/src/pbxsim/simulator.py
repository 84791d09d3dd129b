"""`PbxSimulator`: the AMI server, the call model and the controls tests and the embedded
runner use to play the outside world (callers on the trunk, agents' phones)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pbxsim.ami import AmiServer
from pbxsim.ami_actions import CallActions
from pbxsim.clock import Clock, RealClock, VirtualClock
from pbxsim.config import Answer, Behaviour, EndpointConfig, SimConfig
from pbxsim.events import Events
from pbxsim.model import STATE_DESC, Channel
from pbxsim.pbx import Pbx, dtmf_tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelInfo:
    """One channel as CoreShowChannels lists it."""

    name: str
    uniqueid: str
    linkedid: str
    state: str
    caller_num: str | None
    caller_name: str | None
    connected_num: str | None
    context: str
    exten: str
    priority: int
    application: str
    data: str
    bridge_id: str | None


@dataclass(frozen=True)
class BridgeInfo:
    uniqueid: str
    technology: str
    channels: tuple[str, ...]


def _info(ch: Channel) -> ChannelInfo:
    return ChannelInfo(
        name=ch.name,
        uniqueid=ch.uniqueid,
        linkedid=ch.linkedid,
        state=STATE_DESC[ch.state],
        caller_num=ch.caller_num,
        caller_name=ch.caller_name,
        connected_num=ch.connected_num,
        context=ch.context,
        exten=ch.exten,
        priority=ch.priority,
        application=ch.app,
        data=ch.app_data,
        bridge_id=ch.bridge.uniqueid if ch.bridge else None,
    )


class CallHandle:
    """A call from (or to) the trunk, seen from the caller's side."""

    def __init__(self, sim: PbxSimulator, channel: Channel | None) -> None:
        self._sim = sim
        self._channel = channel

    @property
    def rejected(self) -> bool:
        """True when every B-channel was busy and the call never got a channel (CORE-1)."""
        return self._channel is None

    @property
    def _ch(self) -> Channel:
        if self._channel is None:
            raise RuntimeError("the call was rejected: no channel")
        return self._channel

    @property
    def channel(self) -> str:
        return self._ch.name

    @property
    def uniqueid(self) -> str:
        return self._ch.uniqueid

    @property
    def linkedid(self) -> str:
        return self._ch.linkedid

    @property
    def hungup(self) -> bool:
        return self._channel is None or self._channel.hungup

    @property
    def in_ivr(self) -> bool:
        return not self.hungup and self._ch.agi is not None

    @property
    def agi_command(self) -> str | None:
        """The FastAGI command the channel is carrying out, if any."""
        agi = None if self._channel is None else self._channel.agi
        return None if agi is None else agi.current

    @property
    def waiting(self) -> bool:
        """In MusicOnHold in a waiting context, not bridged: ready for an agent."""
        ch = self._channel
        return ch is not None and not ch.hungup and ch.moh_class is not None and ch.bridge is None

    @property
    def bridged(self) -> bool:
        return not self.hungup and self._ch.bridge is not None

    @property
    def variables(self) -> dict[str, str]:
        return dict(self._ch.variables)

    def info(self) -> ChannelInfo:
        return _info(self._ch)

    def hangup(self) -> None:
        """The caller hangs up (BYE)."""
        if not self.hungup:
            self._sim.pbx.far_end_hangup(self._ch)

    def press(self, digits: str) -> None:
        """Digits the caller will press when the IVR next reads input (',' = a pause)."""
        self._ch.dtmf.extend(dtmf_tokens(digits))

    async def wait_until(self, predicate: Callable[[CallHandle], bool], max_seconds: float = 3600.0) -> None:
        await self._sim.run_until(lambda: predicate(self), max_seconds)


class Endpoint:
    """An agent's phone: answer, reject, hold, hang up its current call."""

    def __init__(self, sim: PbxSimulator, ext: str) -> None:
        self._sim = sim
        self.ext = ext

    @property
    def channel(self) -> Channel | None:
        live = self._sim.pbx.channels_of(self.ext)
        return live[-1] if live else None

    def _ringing(self) -> Channel:
        for ch in reversed(self._sim.pbx.channels_of(self.ext)):
            if ch.outgoing is not None:
                return ch
        raise RuntimeError(f"PJSIP/{self.ext} is not ringing")

    def _current(self) -> Channel:
        ch = self.channel
        if ch is None:
            raise RuntimeError(f"PJSIP/{self.ext} has no call")
        return ch

    def answer(self) -> None:
        self._sim.pbx.outgoing_answered(self._ringing())

    def reject(self, cause: int = 17) -> None:
        """17 sends 486 Busy Here, 21 sends 603 Decline."""
        self._sim.pbx.outgoing_failed(self._ringing(), cause)

    def hold(self, music_class: str = "default") -> None:
        self._sim.pbx.hold(self._current(), music_class)

    def unhold(self) -> None:
        self._sim.pbx.unhold(self._current())

    def hangup(self) -> None:
        self._sim.pbx.far_end_hangup(self._current())


class PbxSimulator:
    def __init__(self, config: SimConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or SimConfig()
        self.clock = clock or RealClock()
        self.errors: list[BaseException] = []
        self.clock.on_error = self._timer_failed
        self.ami = AmiServer(self.config, self.clock.wall)
        self.ami.on_error = self._timer_failed
        self.pbx = Pbx(self.config, self.clock, Events(self.ami))
        self.pbx.events.activity = self.pbx.activity
        CallActions(self.ami, self.pbx, self.clock)
        self.ami_port: int | None = None

    def _timer_failed(self, exc: BaseException) -> None:
        """A bug in the simulator surfaced in a timer or an action; kept for tests to check."""
        log.error("simulator error", exc_info=exc)
        self.errors.append(exc)

    # -- life cycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self.ami_port = await self.ami.start()

    async def stop(self) -> None:
        self.pbx.closed = True
        await self.ami.stop()
        for task in list(self.pbx.tasks):
            task.cancel()
        if self.pbx.tasks:
            await asyncio.wait(list(self.pbx.tasks), timeout=5)
        if isinstance(self.clock, RealClock):
            self.clock.close()

    async def __aenter__(self) -> PbxSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- the outside world -------------------------------------------------------------------------
    async def inbound_call(
        self, caller: str = "13800138000", dnis: str = "4008001234", *, caller_name: str | None = None, dtmf: str = ""
    ) -> CallHandle:
        """A call arrives on the trunk and enters the trunk context (01)."""
        return CallHandle(self, self.pbx.inbound_call(caller, dnis, caller_name, dtmf))

    def endpoint(self, ext: str) -> Endpoint:
        return Endpoint(self, ext)

    def register_endpoint(
        self,
        ext: str,
        behaviour: Behaviour = Answer(),
        callerid_name: str | None = None,
        callerid_num: str | None = None,
    ) -> Endpoint:
        """Add (or change) an agent phone PJSIP/<ext> and how it answers."""
        self.config.endpoints[ext] = EndpointConfig(behaviour, callerid_name, callerid_num)
        return Endpoint(self, ext)

    def far_end_hangup(self, channel: str) -> None:
        """The far end of any channel hangs up (e.g. the called party of an outbound leg)."""
        ch = self.pbx.find(channel)
        if ch is None:
            raise KeyError(channel)
        self.pbx.far_end_hangup(ch)

    # -- what the PBX holds ------------------------------------------------------------------------
    def channels(self) -> list[ChannelInfo]:
        return [_info(c) for c in sorted(self.pbx.channels.values(), key=lambda c: c.order) if not c.hungup]

    def bridges(self) -> list[BridgeInfo]:
        return [
            BridgeInfo(b.uniqueid, b.technology, tuple(c.name for c in b.channels))
            for b in sorted(self.pbx.bridges.values(), key=lambda b: b.created)
        ]

    def recordings(self) -> list[Path]:
        """Files MixMonitor finished writing."""
        return list(self.pbx.completed_recordings)

    @property
    def trunk_in_use(self) -> int:
        return self.pbx.trunk_in_use

    @property
    def rejected_calls(self) -> int:
        return self.pbx.rejected_calls

    # -- robustness hooks --------------------------------------------------------------------------
    def emit_raw(self, data: bytes) -> None:
        """Send bytes as they are to every logged-in AMI client (garbage, malformed frames)."""
        self.ami.send_raw(data)

    async def drop_ami_clients(self) -> None:
        await self.ami.drop_clients()

    # -- virtual time ------------------------------------------------------------------------------
    def _virtual(self) -> VirtualClock:
        if not isinstance(self.clock, VirtualClock):
            raise RuntimeError("advance() and run_until() need a VirtualClock")
        return self.clock

    async def settle(self) -> None:
        """Let the event loop run until no FastAGI server owes the simulator an answer."""
        while True:
            for _ in range(5):
                await asyncio.sleep(0)
            if self.pbx.external_waits == 0:
                return
            self.pbx.activity.clear()
            if self.pbx.external_waits == 0:
                continue
            try:
                await asyncio.wait_for(self.pbx.activity.wait(), self.config.settle_timeout)
            except TimeoutError:
                raise TimeoutError(f"a FastAGI server did not answer within {self.config.settle_timeout} s") from None

    async def advance(self, seconds: float) -> None:
        """Move virtual time forward, running what falls due in order. Before each step it waits
        for FastAGI servers, so a script's commands happen at the time they would in Asterisk."""
        clock = self._virtual()
        target = clock.now() + seconds
        await self.settle()
        while clock.run_next(target):
            await self.settle()
        clock.move_to(target)
        await self.settle()

    async def step(self) -> bool:
        """Run the next timer on virtual time; False when nothing is scheduled."""
        clock = self._virtual()
        await self.settle()
        due = clock.next_due()
        if due is None:
            return False
        clock.run_next(due)
        await self.settle()
        return True

    async def run_until(self, predicate: Callable[[], bool], max_seconds: float = 3600.0) -> float:
        """Advance virtual time until `predicate()` holds; returns the virtual seconds it took.
        On a real clock it waits for activity instead."""
        start = self.clock.now()
        if not isinstance(self.clock, VirtualClock):
            deadline = asyncio.get_running_loop().time() + max_seconds
            while not predicate():
                self.pbx.activity.clear()
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise TimeoutError("condition not reached")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.pbx.activity.wait(), min(remaining, 0.5))
            return self.clock.now() - start
        clock = self.clock
        deadline = start + max_seconds
        await self.settle()
        while not predicate():
            if not clock.run_next(deadline):
                raise TimeoutError(f"condition not reached within {max_seconds} virtual seconds")
            await self.settle()
        return clock.now() - start
