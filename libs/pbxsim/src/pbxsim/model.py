"""Channels and bridges, and the header blocks Asterisk prints for them.

A channel's snapshot block (Channel … Linkedid) is part of most events and is printed
with a prefix in two-channel events (`DestChannel`, `TransfererChannel`, …). The block is
built once per channel state and reused until the channel changes, which keeps event
emission cheap (see `Channel.snapshot`).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pbxsim.agi import AgiSession
    from pbxsim.clock import Timer
    from pbxsim.dialplan import PbxRun
    from pbxsim.recording import Recording

UNKNOWN = "<unknown>"


class ChannelState(enum.IntEnum):
    DOWN = 0
    RESERVED = 1
    OFFHOOK = 2
    DIALING = 3
    RING = 4
    RINGING = 5
    UP = 6
    BUSY = 7


STATE_DESC = {
    ChannelState.DOWN: "Down",
    ChannelState.RESERVED: "Rsrvd",
    ChannelState.OFFHOOK: "OffHook",
    ChannelState.DIALING: "Dialing",
    ChannelState.RING: "Ring",
    ChannelState.RINGING: "Ringing",
    ChannelState.UP: "Up",
    ChannelState.BUSY: "Busy",
}

# Q.850 cause texts as Asterisk's ast_cause2str() prints them (main/channel.c, causes[]).
CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    22: "Number changed",
    27: "Destination out of order",
    28: "Invalid number format (addr incomplete)",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    127: "Interworking, unspecified",
}

# What chan_pjsip puts in TechCause for the SIP final responses the simulator produces.
CAUSE_TO_SIP = {17: 486, 19: 480, 21: 603, 34: 503}


def cause_text(cause: int) -> str:
    return CAUSE_TEXT.get(cause, "Unknown")


def _value(value: str | None) -> str:
    return UNKNOWN if value is None else value


class BridgeRole(enum.Enum):
    """How a channel came into its bridge; decides what happens when the bridge breaks up."""

    APP_OWNER = "app_owner"  # runs Bridge() (an originated agent channel): hangs up when it ends
    APP_PEER = "app_peer"  # pulled in by Bridge(): continues its dialplan after the bridge
    DIAL_CALLER = "dial_caller"  # runs Dial(): the dialplan continues (or ends) after the bridge
    DIAL_CALLEE = "dial_callee"  # dialled leg without dialplan: hangs up when the bridge ends
    LOCAL = "local"  # ;1 half of a Local channel pair


class Channel:
    """One Asterisk channel. Snapshot fields change only through the setters, which drop the cache."""

    def __init__(
        self,
        *,
        name: str,
        tech: str,
        endpoint: str,
        uniqueid: str,
        order: int,
        created: float,
        state: ChannelState,
        caller_num: str | None,
        caller_name: str | None,
        context: str,
        exten: str,
        priority: int = 1,
        linkedid: str | None = None,
        linked_order: int | None = None,
        language: str = "en",
        accountcode: str = "",
    ) -> None:
        self.name = name
        self.tech = tech
        self.endpoint = endpoint
        self.uniqueid = uniqueid
        self.order = order
        self.created = created
        self.state = state
        self.caller_num = caller_num
        self.caller_name = caller_name
        self.connected_num: str | None = None
        self.connected_name: str | None = None
        self.language = language
        self.accountcode = accountcode
        self.context = context
        self.exten = exten
        self.priority = priority
        self.linkedid = linkedid or uniqueid
        self.linked_order = order if linked_order is None else linked_order
        self._snapshots: dict[str, bytes] = {}

        self.dnid = ""
        self.trunk = False  # occupies one of the trunk's B-channels
        self.variables: dict[str, str] = {}
        self.inherit: dict[str, int] = {}  # 2 for __VAR (always inherited), 1 for _VAR (one level)
        self.dtmf: deque[str] = deque()  # digits the caller will press (scripted)
        self.app = ""
        self.app_data = ""
        self.hangupcause = 0
        self.techcause: int | None = None
        self.hungup = False
        self.soft_hangup_pending = False

        self.bridge: Bridge | None = None
        self.bridge_role: BridgeRole | None = None
        self.pbx: PbxRun | None = None
        self.after_bridge: tuple[str, str, int] | None = None
        self.moh_class: str | None = None
        self.held = False
        self.dtmf_transfer = False
        self.agi: AgiSession | None = None
        self.recordings: list[Recording] = []
        self.spying_on: Channel | None = None
        self.spies: list[Channel] = []
        self.local_peer: Channel | None = None
        self.dialled: Channel | None = None  # the leg this channel's Dial() calls or talks to
        self.outgoing: Outgoing | None = None
        self.app_timer: Timer | None = None
        self.far_hangup_after: float | None = None
        self.atxfer: tuple[Bridge, Bridge] | None = None  # (caller's bridge, consultation bridge)

    # -- snapshot ---------------------------------------------------------------------------
    def snapshot(self, prefix: str = "") -> bytes:
        cached = self._snapshots.get(prefix)
        if cached is None:
            p = prefix
            cached = (
                f"{p}Channel: {self.name}\r\n"
                f"{p}ChannelState: {int(self.state)}\r\n"
                f"{p}ChannelStateDesc: {STATE_DESC[self.state]}\r\n"
                f"{p}CallerIDNum: {_value(self.caller_num)}\r\n"
                f"{p}CallerIDName: {_value(self.caller_name)}\r\n"
                f"{p}ConnectedLineNum: {_value(self.connected_num)}\r\n"
                f"{p}ConnectedLineName: {_value(self.connected_name)}\r\n"
                f"{p}Language: {self.language}\r\n"
                f"{p}AccountCode: {self.accountcode}\r\n"
                f"{p}Context: {self.context}\r\n"
                f"{p}Exten: {self.exten}\r\n"
                f"{p}Priority: {self.priority}\r\n"
                f"{p}Uniqueid: {self.uniqueid}\r\n"
                f"{p}Linkedid: {self.linkedid}\r\n"
            ).encode()
            self._snapshots[prefix] = cached
        return cached

    def set_state(self, state: ChannelState) -> None:
        self.state = state
        self._snapshots.clear()

    def set_caller(self, num: str | None, name: str | None) -> None:
        self.caller_num, self.caller_name = num, name
        self._snapshots.clear()

    def set_connected(self, num: str | None, name: str | None) -> None:
        self.connected_num, self.connected_name = num, name
        self._snapshots.clear()

    def set_location(self, context: str, exten: str, priority: int) -> None:
        self.context, self.exten, self.priority = context, exten, priority
        self._snapshots.clear()

    def set_linkedid(self, linkedid: str, order: int) -> None:
        self.linkedid, self.linked_order = linkedid, order
        self._snapshots.clear()

    @property
    def is_up(self) -> bool:
        return self.state == ChannelState.UP

    def __repr__(self) -> str:
        return f"<Channel {self.name} {STATE_DESC[self.state]}>"


class Bridge:
    def __init__(self, uniqueid: str, created: float) -> None:
        self.uniqueid = uniqueid
        self.created = created
        self.technology = "simple_bridge"
        self.channels: list[Channel] = []
        self.destroyed = False

    def snapshot(self, prefix: str = "Bridge") -> bytes:
        p = prefix
        return (
            f"{p}Uniqueid: {self.uniqueid}\r\n"
            f"{p}Type: basic\r\n"
            f"{p}Technology: {self.technology}\r\n"
            f"{p}Creator: {UNKNOWN}\r\n"
            f"{p}Name: {UNKNOWN}\r\n"
            f"{p}NumChannels: {len(self.channels)}\r\n"
            f"{p}VideoSourceMode: none\r\n"
        ).encode()

    def peers(self, channel: Channel) -> list[Channel]:
        return [c for c in self.channels if c is not channel]

    def choose_technology(self) -> None:
        """Asterisk's smart bridge moves two plain PJSIP channels to native_rtp right after the
        second one joins (05/08a/08b/09/10/13 show native_rtp in later events). An audiohook
        (MixMonitor, ChanSpy: 01, 07), DTMF features (Bridge option T: 06) or a Local channel
        keep it on simple_bridge."""
        native = len(self.channels) == 2 and all(
            c.tech == "PJSIP" and not c.recordings and not c.spies and not c.dtmf_transfer for c in self.channels
        )
        self.technology = "native_rtp" if native else "simple_bridge"


@dataclass
class Outgoing:
    """A leg being dialled (by Originate, Dial or an attended transfer) that has not answered yet."""

    channel: Channel
    timeout: float | None
    on_answer: Callable[[Channel], None]
    on_fail: Callable[[Channel, int], None]
    timers: list[Timer] = field(default_factory=list)
