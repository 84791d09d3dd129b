"""The live model: channels by Uniqueid, bridges, and calls by Linkedid, built from AMI events.

`CallModel.apply(name, headers)` is synchronous and cheap: the AMI reader calls it for
every event. It tells a `CallFacts` sink about each business fact exactly once per call
(the keys in `Call.facts`); the sink only queues, so the reader never waits.

The rules, from shared/asterisk-traces:
- A call is the Linkedid of its first channel (`main`): the trunk channel of an inbound
  call, the agent's channel of an outbound one. A channel born Down with its own
  Linkedid was originated; it stays unassigned until it is tied to a call (`ACD_CALLER`
  variable, `OriginateResponse` of `Bridge(<caller>)`, or a Linkedid that becomes the
  caller's once bridged, surprise 4) or starts a call of its own (it dials, or its
  Originate ran a dialplan extension).
- An agent is a channel whose name matches `agent_pattern` (`PJSIP/<extension>-…`).
- ringing: an agent leg of the call reaches Ringing. answered: an agent leg of the call
  is bridged with another channel. agent_missed: a leg that rang hangs up unanswered.
- held / resumed: Hold / Unhold of a channel of an answered call, or music on hold
  starting / stopping on a bridged channel of it (06: an attended transfer holds by MOH
  and never sends Unhold; 05: a blind transfer sends Unhold without Hold).
- ended: once no channel of the call is left, or only agent / Local legs that are not
  bridged with anyone once the main channel is gone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from prometheus_client import Gauge

from callcenter_common.clock import Clock
from callcenter_common.contracts.acd import Direction, HangupBy, MissedReason, Outcome

LIVE_CALLS = Gauge("acd_live_calls", "Calls the ACD sees in progress")

ChannelKind = Literal["agent", "external", "local"]

STATE_DOWN = 0
STATE_RING = 4
STATE_RINGING = 5
STATE_UP = 6

UNKNOWN_VALUES = frozenset({"<unknown>", "(null)"})

# What a channel that Originate created runs before it is tied to a call (CoreShowChannel `Application`).
ORIGINATED_APPLICATIONS = frozenset({"AppDial", "AppDial2", "Bridge", "ChanSpy"})

# Hangup causes (Q.850) that say why an agent leg was not answered.
CAUSE_BUSY = 17
CAUSE_NO_USER_RESPONSE = 18
CAUSE_NO_ANSWER = 19
CAUSE_REJECTED = 21
CAUSE_ANSWERED_ELSEWHERE = 26


def clean(value: str | None) -> str:
    """AMI sends unknown values as `<unknown>` (and `(null)` in Status)."""
    if value is None or value in UNKNOWN_VALUES:
        return ""
    return value


def as_int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


@dataclass(slots=True, eq=False)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    kind: ChannelKind
    extension: str | None
    state: int
    created_at: datetime
    caller_number: str = ""
    caller_name: str = ""
    connected_number: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    dnid: str = ""
    application: str = ""
    application_data: str = ""
    call_id: str | None = None
    bridge_id: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    on_hold: bool = False
    music_on_hold: bool = False
    recording: bool = False
    hangup_requested: bool = False
    dial_status: str = ""
    ringing_at: datetime | None = None
    answered_at: datetime | None = None


@dataclass(slots=True, eq=False)
class Call:
    call_id: str
    main_uniqueid: str
    main_channel: str
    direction: Direction
    started_at: datetime
    caller_number: str = ""
    caller_name: str = ""
    dnis: str = ""
    answered_at: datetime | None = None
    agent_extension: str | None = None
    agent_channel: str | None = None
    channels: set[str] = field(default_factory=set)
    facts: set[str] = field(default_factory=set)
    variables: dict[str, str] = field(default_factory=dict)
    held: bool = False
    hangup_by: HangupBy | None = None
    peer_left: HangupBy | None = None
    main_gone: bool = False
    cause: int = 0
    cause_text: str = ""
    ended_at: datetime | None = None
    restored: bool = False  # known from the database only, until a resync confirms it

    def count(self, prefix: str) -> int:
        return sum(1 for key in self.facts if key.startswith(prefix))

    @property
    def outcome(self) -> Outcome:
        if self.answered_at is not None:
            return "answered"
        if self.hangup_by == "caller" and self.direction == "inbound":
            return "abandoned"
        return "unanswered"

    @property
    def wait_seconds(self) -> float:
        until = self.answered_at or self.ended_at
        return max((until - self.started_at).total_seconds(), 0.0) if until else 0.0

    @property
    def talk_seconds(self) -> float:
        if self.answered_at is None or self.ended_at is None:
            return 0.0
        return max((self.ended_at - self.answered_at).total_seconds(), 0.0)


class CallFacts(Protocol):
    """Where the model reports facts; each method is called once per fact, synchronously."""

    def call_started(self, call: Call, at: datetime) -> None: ...

    def call_ringing(self, call: Call, leg: Channel, at: datetime) -> None: ...

    def call_answered(self, call: Call, leg: Channel, at: datetime, *, first: bool) -> None: ...

    def call_agent_missed(self, call: Call, leg: Channel, reason: MissedReason, cause: int, at: datetime) -> None: ...

    def call_held(self, call: Call, agent_extension: str | None, at: datetime) -> None: ...

    def call_resumed(self, call: Call, agent_extension: str | None, at: datetime) -> None: ...

    def call_transferred(
        self,
        call: Call,
        kind: Literal["blind", "attended"],
        target: str,
        agent_extension: str | None,
        at: datetime,
    ) -> None: ...

    def call_ended(self, call: Call, at: datetime, *, by_resync: bool) -> None: ...


@dataclass(slots=True)
class SnapshotChannel:
    """One channel as CoreShowChannels (+ Status) lists it during a resync."""

    uniqueid: str
    name: str
    linkedid: str
    state: int
    caller_number: str = ""
    caller_name: str = ""
    connected_number: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    application: str = ""
    application_data: str = ""
    bridge_id: str = ""
    duration_seconds: float = 0.0
    dnid: str = ""
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _ResyncMarks:
    """What live events changed while a snapshot was on its way: the snapshot loses to them."""

    created: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ResyncReport:
    added: int = 0
    removed: int = 0
    updated: int = 0
    ended_calls: int = 0


def parse_duration(value: str) -> float:
    """CoreShowChannel `Duration: 00:01:05` in seconds."""
    parts = value.split(":")
    try:
        total = 0.0
        for part in parts:
            total = total * 60 + float(part)
        return total
    except ValueError:
        return 0.0


class CallModel:
    def __init__(
        self,
        facts: CallFacts,
        *,
        clock: Clock,
        agent_pattern: str = r"PJSIP/(\d{2,8})",
        tracked_variables: Iterable[str] = ("DNIS", "ACD_*", "IVR_*"),
    ) -> None:
        self.facts = facts
        self.clock = clock
        self.channels: dict[str, Channel] = {}
        self.by_name: dict[str, str] = {}
        self.bridges: dict[str, set[str]] = {}
        self.calls: dict[str, Call] = {}
        self._agent = re.compile(agent_pattern)
        patterns = [p.strip().upper() for p in tracked_variables if p.strip()]
        self._tracked_exact = frozenset(p for p in patterns if not p.endswith("*"))
        self._tracked_prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
        self._marks: _ResyncMarks | None = None
        self.ended_calls = 0
        self._handlers: dict[str, Callable[[dict[str, str]], None]] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_newstate,
            "NewCallerid": self._on_newcallerid,
            "NewConnectedLine": self._on_newconnectedline,
            "VarSet": self._on_varset,
            "DialBegin": self._on_dialbegin,
            "DialState": self._on_dialstate,
            "DialEnd": self._on_dialend,
            "BridgeCreate": self._on_bridgecreate,
            "BridgeEnter": self._on_bridgeenter,
            "BridgeLeave": self._on_bridgeleave,
            "BridgeDestroy": self._on_bridgedestroy,
            "BridgeMerge": self._on_bridgemerge,
            "Hold": self._on_hold,
            "Unhold": self._on_unhold,
            "MusicOnHoldStart": self._on_moh_start,
            "MusicOnHoldStop": self._on_moh_stop,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "LocalBridge": self._on_localbridge,
            "HangupRequest": self._on_hangup_request,
            "SoftHangupRequest": self._on_soft_hangup_request,
            "Hangup": self._on_hangup,
            "MixMonitorStart": self._on_mixmonitor_start,
            "MixMonitorStop": self._on_mixmonitor_stop,
            "OriginateResponse": self._on_originate_response,
        }

    # -- public -----------------------------------------------------------------------------------
    @property
    def handled_events(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def apply(self, name: str, event: dict[str, str]) -> bool:
        """Apply one AMI event; False if the model has no use for it. Raises on a malformed one."""
        handler = self._handlers.get(name)
        if handler is None:
            return False
        handler(event)
        return True

    def tracks_variable(self, name: str) -> bool:
        bare = name.lstrip("_").upper()
        return bare in self._tracked_exact or bare.startswith(self._tracked_prefixes)

    def agent_extension(self, channel_name: str) -> str | None:
        match = self._agent.fullmatch(channel_name.rsplit("-", 1)[0])
        return match.group(1) if match else None

    def restore(self, calls: Iterable[Call]) -> None:
        """Calls announced before a restart; a resync confirms or ends them."""
        for call in calls:
            call.restored = True
            call.channels.clear()
            self.calls.setdefault(call.call_id, call)
        LIVE_CALLS.set(len(self.calls))

    # -- resync -------------------------------------------------------------------------------------
    def begin_resync(self) -> object:
        """Call right before the snapshot is asked for; events from now on win over it."""
        self._marks = _ResyncMarks()
        return self._marks

    def abort_resync(self, token: object | None = None) -> None:
        if token is None or token is self._marks:
            self._marks = None

    def apply_snapshot(self, rows: list[SnapshotChannel], token: object | None = None) -> ResyncReport | None:
        """Make the model equal to the PBX's channel list, publishing what changed meanwhile.

        None if a newer resync began since `token` (this snapshot is then stale)."""
        if token is not None and token is not self._marks:
            return None
        marks = self._marks or _ResyncMarks()
        self._marks = None
        report = ResyncReport()
        ended_before = self.ended_calls
        now = self.clock.now()
        listed = {row.uniqueid: row for row in rows if row.uniqueid not in marks.gone}
        for uniqueid in [u for u in self.channels if u not in listed and u not in marks.created]:
            self._channel_gone(self.channels[uniqueid], 0, "", now, by_resync=True)
            report.removed += 1
        # Bridges are rebuilt from the list, except where live events already told more.
        for members in self.bridges.values():
            members.difference_update(u for u in list(members) if u in listed and u not in marks.touched)
        # First channels of calls first, so that legs find their call.
        ordered = sorted(listed.values(), key=lambda r: (r.uniqueid != r.linkedid, r.uniqueid))
        fresh: list[Channel] = []
        for row in ordered:
            ch = self.channels.get(row.uniqueid)
            if ch is None:
                ch = self._channel_from_row(row, now)
                fresh.append(ch)
                report.added += 1
            elif row.uniqueid not in marks.touched:
                self._update_from_row(ch, row)
                report.updated += 1
            else:
                continue
            if row.bridge_id:
                ch.bridge_id = row.bridge_id
                self.bridges.setdefault(row.bridge_id, set()).add(ch.uniqueid)
            elif ch.bridge_id and row.uniqueid not in marks.touched:
                self.bridges.get(ch.bridge_id, set()).discard(ch.uniqueid)
                ch.bridge_id = None
        for ch in fresh:
            self._assign_from_snapshot(ch, listed[ch.uniqueid], now)
        for ch in list(self.channels.values()):
            if ch.call_id is None and ch.kind != "local" and ch.linkedid in self.calls:
                self._attach(ch, self.calls[ch.linkedid], now)
        for bridge_id in [b for b, members in self.bridges.items() if not members]:
            del self.bridges[bridge_id]
        for bridge_id in list(self.bridges):
            self._check_answered(bridge_id, now)
        for ch in list(self.channels.values()):
            if ch.state == STATE_RINGING:
                self._ringing(ch, now)
        for call in list(self.calls.values()):
            if not call.channels or self._finished(call):
                self._end(call, now, by_resync=True)
            else:
                call.restored = False
        report.ended_calls = self.ended_calls - ended_before
        LIVE_CALLS.set(len(self.calls))
        return report

    def _channel_from_row(self, row: SnapshotChannel, now: datetime) -> Channel:
        kind, extension = self._classify(row.name)
        ch = Channel(
            uniqueid=row.uniqueid,
            name=row.name,
            linkedid=row.linkedid or row.uniqueid,
            kind=kind,
            extension=extension,
            state=row.state,
            created_at=now - timedelta(seconds=row.duration_seconds),
        )
        self._update_from_row(ch, row)
        if ch.state == STATE_UP:
            ch.answered_at = now
        self.channels[ch.uniqueid] = ch
        self.by_name[ch.name] = ch.uniqueid
        return ch

    def _update_from_row(self, ch: Channel, row: SnapshotChannel) -> None:
        ch.state = row.state
        ch.linkedid = row.linkedid or ch.linkedid
        ch.caller_number = clean(row.caller_number)
        ch.caller_name = clean(row.caller_name)
        ch.connected_number = clean(row.connected_number)
        ch.connected_name = clean(row.connected_name)
        ch.context, ch.exten = row.context, row.exten
        ch.application, ch.application_data = clean(row.application), clean(row.application_data)
        if row.dnid:
            ch.dnid = clean(row.dnid)
        for name, value in row.variables.items():
            if value and self.tracks_variable(name):
                ch.variables[name.lstrip("_").upper()] = value

    def _assign_from_snapshot(self, ch: Channel, row: SnapshotChannel, now: datetime) -> None:
        if ch.kind == "local":
            if ch.linkedid in self.calls:
                self._attach(ch, self.calls[ch.linkedid], now)
            return
        if ch.linkedid != ch.uniqueid:
            if ch.linkedid in self.calls:
                self._attach(ch, self.calls[ch.linkedid], now)
            return
        caller = ch.variables.get("ACD_CALLER") or (
            ch.application_data.split(",", 1)[0] if ch.application == "Bridge" else ""
        )
        target = self.channels.get(self.by_name.get(caller, ""))
        if target is not None and target.call_id in self.calls:
            self._attach(ch, self.calls[target.call_id], now)
            return
        if ch.state in (STATE_DOWN, STATE_RINGING) or ch.application in ORIGINATED_APPLICATIONS:
            return  # an originated leg: wait for events to say whose it is
        self._start_call(ch, ch.created_at, dialled=ch.exten)

    # -- events -------------------------------------------------------------------------------------
    def _classify(self, name: str) -> tuple[ChannelKind, str | None]:
        if name.startswith("Local/"):
            return "local", None
        extension = self.agent_extension(name)
        return ("agent", extension) if extension else ("external", None)

    def _channel(self, event: dict[str, str], prefix: str = "") -> Channel | None:
        """The known channel an event is about; follows a Linkedid change (surprise 4)."""
        if prefix:
            uniqueid, linkedid = event[prefix + "Uniqueid"], event.get(prefix + "Linkedid")
        else:
            uniqueid, linkedid = event["Uniqueid"], event.get("Linkedid")
        ch = self.channels.get(uniqueid)
        if self._marks is not None:
            self._marks.touched.add(uniqueid)
        if ch is None:
            return None
        if linkedid and linkedid != ch.linkedid:
            ch.linkedid = linkedid
            if ch.call_id is None and linkedid in self.calls:
                self._attach(ch, self.calls[linkedid], self.clock.now())
        return ch

    def _on_newchannel(self, event: dict[str, str]) -> None:
        uniqueid, name = event["Uniqueid"], event["Channel"]
        if uniqueid in self.channels:
            return
        if self._marks is not None:
            self._marks.created.add(uniqueid)
            self._marks.touched.add(uniqueid)
        now = self.clock.now()
        kind, extension = self._classify(name)
        ch = Channel(
            uniqueid=uniqueid,
            name=name,
            linkedid=event.get("Linkedid") or uniqueid,
            kind=kind,
            extension=extension,
            state=as_int(event.get("ChannelState")),
            created_at=now,
            caller_number=clean(event.get("CallerIDNum")),
            caller_name=clean(event.get("CallerIDName")),
            connected_number=clean(event.get("ConnectedLineNum")),
            connected_name=clean(event.get("ConnectedLineName")),
            context=event.get("Context", ""),
            exten=event.get("Exten", ""),
        )
        self.channels[uniqueid] = ch
        self.by_name[name] = uniqueid
        if ch.linkedid != uniqueid or kind == "local":
            call = self.calls.get(ch.linkedid)
            if call is not None:
                self._attach(ch, call, now)
            return
        if ch.state == STATE_DOWN:
            return  # originated: unassigned until something ties it to a call
        self._start_call(ch, now, dialled=ch.exten)

    def _start_call(self, main: Channel, at: datetime, *, dialled: str) -> Call:
        if main.kind == "external":
            direction: Direction = "inbound"
            number, name = main.caller_number, main.caller_name
            dnis = main.variables.get("DNIS") or main.dnid or ("" if dialled in ("s", "") else dialled)
        else:
            direction = "internal" if dialled and self.agent_extension(f"PJSIP/{dialled}") else "outbound"
            number, name, dnis = ("" if dialled in ("s", "") else dialled), "", ""
        call = self.calls.get(main.linkedid)
        if call is None:
            call = Call(
                call_id=main.linkedid,
                main_uniqueid=main.uniqueid,
                main_channel=main.name,
                direction=direction,
                started_at=at,
                caller_number=number,
                caller_name=name,
                dnis=dnis,
            )
            self.calls[call.call_id] = call
            LIVE_CALLS.set(len(self.calls))
        else:
            call.main_uniqueid, call.main_channel = main.uniqueid, main.name
        call.variables.update(main.variables)
        self._attach(main, call, at)
        if main.kind == "agent":
            call.agent_extension, call.agent_channel = main.extension, main.name
        if "started" not in call.facts:
            call.facts.add("started")
            self.facts.call_started(call, at)
        for ch in list(self.channels.values()):
            if ch.call_id is None and ch.linkedid == call.call_id:
                self._attach(ch, call, at)
        return call

    def _attach(self, ch: Channel, call: Call, at: datetime) -> None:
        if ch.call_id == call.call_id:
            return
        ch.call_id = call.call_id
        call.channels.add(ch.uniqueid)
        if ch.state == STATE_RINGING:
            self._ringing(ch, at)
        if ch.bridge_id is not None:
            self._check_answered(ch.bridge_id, at)

    def _promote(self, ch: Channel, dialled: str) -> None:
        """An originated channel that turns out to be the start of a call of its own."""
        if ch.call_id is None and ch.linkedid == ch.uniqueid:
            self._start_call(ch, ch.created_at, dialled=dialled)

    def _on_newstate(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        if ch is None:
            return
        ch.state = as_int(event.get("ChannelState"), ch.state)
        if ch.state == STATE_RINGING:
            self._ringing(ch, self.clock.now())
        elif ch.state == STATE_UP and ch.answered_at is None:
            ch.answered_at = self.clock.now()

    def _on_newcallerid(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        if ch is not None:
            ch.caller_number = clean(event.get("CallerIDNum"))
            ch.caller_name = clean(event.get("CallerIDName"))

    def _on_newconnectedline(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        if ch is not None:
            ch.connected_number = clean(event.get("ConnectedLineNum"))
            ch.connected_name = clean(event.get("ConnectedLineName"))

    def _on_varset(self, event: dict[str, str]) -> None:
        variable = event["Variable"]
        if not self.tracks_variable(variable):
            return
        ch = self._channel(event)
        if ch is None:
            return
        name, value = variable.lstrip("_").upper(), event.get("Value", "")
        ch.variables[name] = value
        call = self.calls.get(ch.call_id or "")
        if call is not None and call.main_uniqueid == ch.uniqueid:
            call.variables[name] = value
            if name == "DNIS" and value and call.direction == "inbound":
                call.dnis = value
        if name == "ACD_CALLER" and ch.call_id is None:
            target = self.channels.get(self.by_name.get(value, ""))
            if target is not None and target.call_id in self.calls:
                self._attach(ch, self.calls[target.call_id], self.clock.now())

    def _on_dialbegin(self, event: dict[str, str]) -> None:
        dest = self._channel(event, "Dest")
        source = self._channel(event) if "Uniqueid" in event else None
        if source is not None and source.call_id is None:
            self._promote(source, event.get("Exten", source.exten))
        if dest is not None and dest.call_id is None and source is not None and source.call_id in self.calls:
            self._attach(dest, self.calls[source.call_id], self.clock.now())

    def _on_dialstate(self, event: dict[str, str]) -> None:
        dest = self._channel(event, "Dest")
        if dest is not None and event.get("DialStatus") == "RINGING":
            self._ringing(dest, self.clock.now())

    def _on_dialend(self, event: dict[str, str]) -> None:
        dest = self._channel(event, "Dest")
        if dest is not None:
            dest.dial_status = event.get("DialStatus", "")

    def _ringing(self, ch: Channel, at: datetime) -> None:
        if ch.kind != "agent" or ch.call_id is None:
            return
        call = self.calls.get(ch.call_id)
        if call is None or call.main_uniqueid == ch.uniqueid:
            return
        key = f"ringing:{ch.uniqueid}"
        if key in call.facts or f"answered:{ch.uniqueid}" in call.facts:
            return
        ch.ringing_at = at
        call.facts.add(key)
        self.facts.call_ringing(call, ch, at)

    def _on_bridgecreate(self, event: dict[str, str]) -> None:
        self.bridges.setdefault(event["BridgeUniqueid"], set())

    def _on_bridgeenter(self, event: dict[str, str]) -> None:
        bridge_id = event["BridgeUniqueid"]
        ch = self._channel(event)
        if ch is None:
            return
        if ch.bridge_id and ch.bridge_id != bridge_id:
            self.bridges.get(ch.bridge_id, set()).discard(ch.uniqueid)
        ch.bridge_id = bridge_id
        members = self.bridges.setdefault(bridge_id, set())
        members.add(ch.uniqueid)
        call = self.calls.get(ch.call_id or "")
        if call is not None and ch.kind == "agent":
            call.peer_left = None
        self._check_answered(bridge_id, self.clock.now())

    def _check_answered(self, bridge_id: str, at: datetime) -> None:
        members = self.bridges.get(bridge_id)
        if not members or len(members) < 2:
            return
        for uniqueid in members:
            ch = self.channels.get(uniqueid)
            if ch is None or ch.kind != "agent" or ch.call_id is None:
                continue
            call = self.calls.get(ch.call_id)
            key = f"answered:{uniqueid}"
            if call is None or key in call.facts:
                continue
            first = call.answered_at is None
            if first:
                call.answered_at = at
            call.agent_extension, call.agent_channel = ch.extension, ch.name
            call.facts.add(key)
            self.facts.call_answered(call, ch, at, first=first)

    def _on_bridgeleave(self, event: dict[str, str]) -> None:
        bridge_id = event["BridgeUniqueid"]
        ch = self._channel(event)
        if ch is None:
            return
        members = self.bridges.get(bridge_id)
        if members is not None:
            members.discard(ch.uniqueid)
        if ch.bridge_id == bridge_id:
            ch.bridge_id = None
        call = self.calls.get(ch.call_id or "")
        if call is not None and members and call.main_uniqueid in members and ch.kind == "agent":
            # The agent left the caller's bridge first: if the caller is hung up next, the agent did it (08a).
            call.peer_left = "agent"

    def _on_bridgedestroy(self, event: dict[str, str]) -> None:
        for uniqueid in self.bridges.pop(event["BridgeUniqueid"], set()):
            ch = self.channels.get(uniqueid)
            if ch is not None and ch.bridge_id == event["BridgeUniqueid"]:
                ch.bridge_id = None

    def _on_bridgemerge(self, event: dict[str, str]) -> None:
        target, source = event["ToBridgeUniqueid"], event["FromBridgeUniqueid"]
        moved = self.bridges.pop(source, set())
        self.bridges.setdefault(target, set()).update(moved)
        for uniqueid in moved:
            ch = self.channels.get(uniqueid)
            if ch is not None:
                ch.bridge_id = target
        self._check_answered(target, self.clock.now())

    def _call_of(self, ch: Channel | None) -> Call | None:
        if ch is None or ch.call_id is None:
            return None
        return self.calls.get(ch.call_id)

    def _hold(self, call: Call, agent_extension: str | None) -> None:
        if call.held or call.answered_at is None:
            return
        call.held = True
        key = f"held:{call.count('held:') + 1}"
        call.facts.add(key)
        self.facts.call_held(call, agent_extension or call.agent_extension, self.clock.now())

    def _resume(self, call: Call, agent_extension: str | None) -> None:
        if not call.held:
            return
        call.held = False
        key = f"resumed:{call.count('resumed:') + 1}"
        call.facts.add(key)
        self.facts.call_resumed(call, agent_extension or call.agent_extension, self.clock.now())

    def _on_hold(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        call = self._call_of(ch)
        if ch is None:
            return
        ch.on_hold = True
        if call is not None:
            self._hold(call, ch.extension)

    def _on_unhold(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        call = self._call_of(ch)
        if ch is None:
            return
        ch.on_hold = False
        if call is not None:
            self._resume(call, ch.extension)

    def _on_moh_start(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        call = self._call_of(ch)
        if ch is None:
            return
        ch.music_on_hold = True
        if call is not None and ch.bridge_id is not None:
            self._hold(call, None)

    def _on_moh_stop(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        call = self._call_of(ch)
        if ch is None:
            return
        ch.music_on_hold = False
        if call is not None:
            self._resume(call, None)

    def _transferred(
        self, call: Call | None, kind: Literal["blind", "attended"], target: str, transferer: Channel | None
    ) -> None:
        if call is None:
            return
        key = f"transferred:{call.count('transferred:') + 1}"
        call.facts.add(key)
        extension = transferer.extension if transferer is not None else call.agent_extension
        self.facts.call_transferred(call, kind, target, extension, self.clock.now())

    def _on_blind_transfer(self, event: dict[str, str]) -> None:
        if event.get("Result") != "Success":
            return
        transferer = self._channel(event, "Transferer")
        transferee = self._channel(event, "Transferee") if "TransfereeUniqueid" in event else None
        call = self._call_of(transferee) or self._call_of(transferer)
        self._transferred(call, "blind", event.get("Extension", ""), transferer)

    def _on_attended_transfer(self, event: dict[str, str]) -> None:
        if event.get("Result") != "Success":
            return
        transferer = self._channel(event, "OrigTransferer")
        transferee = self._channel(event, "Transferee") if "TransfereeUniqueid" in event else None
        call = self._call_of(transferee) or self._call_of(transferer)
        target = ""
        bridge_id = event.get("DestBridgeUniqueid", "")
        if bridge_id:
            exclude = {c.uniqueid for c in (transferer, transferee) if c is not None}
            target = self._agent_behind(bridge_id, exclude)
        if not target:
            target = event.get("TransferTargetExten", "") or event.get("DestApp", "")
        self._transferred(call, "attended", target, transferer)

    def _agent_behind(self, bridge_id: str, exclude: set[str]) -> str:
        """The agent a bridge leads to, following Local channel pairs (06: caller ↔ Local;1 = Local;2 ↔ 1002)."""
        seen: set[str] = set(exclude)
        frontier = [bridge_id]
        local_name = ""
        while frontier:
            members = self.bridges.get(frontier.pop(), set())
            for uniqueid in members:
                if uniqueid in seen:
                    continue
                seen.add(uniqueid)
                ch = self.channels.get(uniqueid)
                if ch is None:
                    continue
                if ch.kind == "agent" and ch.extension:
                    return ch.extension
                if ch.kind == "local":
                    local_name = local_name or ch.name
                    other = self.channels.get(self.by_name.get(_local_peer(ch.name), ""))
                    if other is not None and other.uniqueid not in seen:
                        seen.add(other.uniqueid)
                        if other.bridge_id:
                            frontier.append(other.bridge_id)
        if local_name:  # Local/1002@agents-dial-00000000;1
            return local_name.split("/", 1)[1].split("@", 1)[0]
        return ""

    def _on_localbridge(self, event: dict[str, str]) -> None:
        for prefix in ("LocalOne", "LocalTwo"):
            ch = self._channel(event, prefix)
            if ch is not None and ch.call_id is None and ch.linkedid in self.calls:
                self._attach(ch, self.calls[ch.linkedid], self.clock.now())

    def _on_hangup_request(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        if ch is None:
            return
        ch.hangup_requested = True
        call = self._call_of(ch)
        if call is None or call.hangup_by is not None or ch.kind == "local":
            return
        bridged = ch.bridge_id is not None and len(self.bridges.get(ch.bridge_id, ())) > 1
        if ch.uniqueid == call.main_uniqueid or bridged:
            call.hangup_by = "agent" if ch.kind == "agent" else "caller"

    def _on_soft_hangup_request(self, event: dict[str, str]) -> None:
        self._channel(event)

    def _on_hangup(self, event: dict[str, str]) -> None:
        uniqueid = event["Uniqueid"]
        if self._marks is not None:
            self._marks.gone.add(uniqueid)
            self._marks.touched.add(uniqueid)
        ch = self.channels.get(uniqueid)
        if ch is None:
            return
        self._channel_gone(
            ch, as_int(event.get("Cause")), event.get("Cause-txt", ""), self.clock.now(), by_resync=False
        )

    def _channel_gone(self, ch: Channel, cause: int, cause_text: str, at: datetime, *, by_resync: bool) -> None:
        self.channels.pop(ch.uniqueid, None)
        if self.by_name.get(ch.name) == ch.uniqueid:
            del self.by_name[ch.name]
        if ch.bridge_id is not None:
            self.bridges.get(ch.bridge_id, set()).discard(ch.uniqueid)
        call = self._call_of(ch)
        if call is None:
            return
        call.channels.discard(ch.uniqueid)
        self._missed(call, ch, cause, at)
        if ch.uniqueid == call.main_uniqueid:
            call.main_gone = True
            call.cause, call.cause_text = cause, cause_text
            if call.hangup_by is None:
                if by_resync:
                    call.hangup_by = "unknown"
                elif ch.hangup_requested:
                    call.hangup_by = "agent" if ch.kind == "agent" else "caller"
                else:
                    call.hangup_by = call.peer_left or "system"
        if not call.channels or self._finished(call):
            self._end(call, at, by_resync=by_resync)

    def _missed(self, call: Call, ch: Channel, cause: int, at: datetime) -> None:
        if f"ringing:{ch.uniqueid}" not in call.facts or f"answered:{ch.uniqueid}" in call.facts:
            return
        key = f"missed:{ch.uniqueid}"
        if key in call.facts:
            return
        reason: MissedReason
        if cause == CAUSE_BUSY or ch.dial_status == "BUSY":
            reason = "busy"
        elif cause in (CAUSE_NO_ANSWER, CAUSE_NO_USER_RESPONSE) or ch.dial_status == "NOANSWER":
            reason = "no_answer"
        elif cause == CAUSE_REJECTED:
            reason = "rejected"
        elif cause == CAUSE_ANSWERED_ELSEWHERE:
            reason = "answered_elsewhere"
        elif call.main_gone or ch.dial_status == "CANCEL":
            reason = "cancelled"
        else:
            reason = "failed"
        call.facts.add(key)
        self.facts.call_agent_missed(call, ch, reason, cause, at)

    def _finished(self, call: Call) -> bool:
        """The main channel is gone and nobody left on the call talks to anyone."""
        if not call.main_gone:
            return False
        for uniqueid in call.channels:
            ch = self.channels.get(uniqueid)
            if ch is None:
                continue
            if ch.bridge_id is not None and len(self.bridges.get(ch.bridge_id, ())) > 1:
                return False
        return True

    def _end(self, call: Call, at: datetime, *, by_resync: bool) -> None:
        if self.calls.pop(call.call_id, None) is None:
            return
        for uniqueid in list(call.channels):
            ch = self.channels.get(uniqueid)
            if ch is not None:
                self._missed(call, ch, 0, at)
                ch.call_id = None
        call.ended_at = at
        if call.hangup_by is None:
            call.hangup_by = "unknown" if by_resync else "system"
        self.ended_calls += 1
        if "ended" not in call.facts:
            call.facts.add("ended")
            self.facts.call_ended(call, at, by_resync=by_resync)
        LIVE_CALLS.set(len(self.calls))

    def _on_mixmonitor_start(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        if ch is not None:
            ch.recording = True

    def _on_mixmonitor_stop(self, event: dict[str, str]) -> None:
        ch = self._channel(event)
        if ch is not None:
            ch.recording = False

    def _on_originate_response(self, event: dict[str, str]) -> None:
        if event.get("Response") != "Success":
            return  # the leg's own Hangup (cause 17 / 19) tells the rest (02, 03)
        ch = self.channels.get(event.get("Uniqueid", ""))
        if ch is None or ch.call_id is not None:
            return
        if event.get("Application") == "Bridge":
            target = self.channels.get(self.by_name.get(event.get("Data", "").split(",", 1)[0], ""))
            if target is not None and target.call_id in self.calls:
                self._attach(ch, self.calls[target.call_id], self.clock.now())
        elif event.get("Exten"):
            self._promote(ch, event["Exten"])


def _local_peer(name: str) -> str:
    if name.endswith(";1"):
        return name[:-1] + "2"
    if name.endswith(";2"):
        return name[:-1] + "1"
    return name
