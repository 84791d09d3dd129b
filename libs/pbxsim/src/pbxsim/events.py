"""AMI event frames, built as bytes with the headers and header order of Asterisk 22.

Each method checks first whether any AMI session listens to the event's class, so a
simulator without listeners does no formatting at all. Header order follows the traces in
shared/asterisk-traces (file names in the comments).
"""

from __future__ import annotations

import asyncio
import enum
from typing import Protocol

from pbxsim.model import Bridge, Channel, cause_text


class EventClass(enum.Enum):
    CALL = "call"
    DIALPLAN = "dialplan"
    AGI = "agi"
    SYSTEM = "system"
    SECURITY = "security"
    USER = "user"
    DTMF = "dtmf"
    AGENT = "agent"
    REPORTING = "reporting"


class EventSink(Protocol):
    def listening(self, klass: EventClass) -> bool: ...

    def broadcast(self, klass: EventClass, frame: bytes) -> None: ...


def header_lines(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode()


class Events:
    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self._heads: dict[tuple[str, EventClass], bytes] = {}
        self.activity: asyncio.Event | None = None  # set whenever something happens (waiters poll on it)

    def emit(self, name: str, klass: EventClass, body: bytes) -> None:
        head = self._heads.get((name, klass))
        if head is None:
            head = f"Event: {name}\r\nPrivilege: {klass.value},all\r\n".encode()
            self._heads[(name, klass)] = head
        self.sink.broadcast(klass, head + body + b"\r\n")

    def on(self, klass: EventClass) -> bool:
        if self.activity is not None:
            self.activity.set()
        return self.sink.listening(klass)

    # -- channel lifecycle (01-inbound-to-agent.txt) -------------------------------------------
    def newchannel(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("Newchannel", EventClass.CALL, ch.snapshot())

    def newstate(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("Newstate", EventClass.CALL, ch.snapshot())

    def newcallerid(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit(
                "NewCallerid",
                EventClass.CALL,
                ch.snapshot() + b"CID-CallingPres: 0 (Presentation Allowed, Not Screened)\r\n",
            )

    def newconnectedline(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("NewConnectedLine", EventClass.CALL, ch.snapshot())

    def varset(self, ch: Channel | None, name: str, value: str) -> None:
        if self.on(EventClass.DIALPLAN):
            snap = ch.snapshot() if ch is not None else b""
            self.emit("VarSet", EventClass.DIALPLAN, snap + f"Variable: {name}\r\nValue: {value}\r\n".encode())

    def newexten(self, ch: Channel, app: str, data: str) -> None:
        if self.on(EventClass.DIALPLAN):
            extra = f"Extension: {ch.exten}\r\nApplication: {app}\r\nAppData: {data}\r\n".encode()
            self.emit("Newexten", EventClass.DIALPLAN, ch.snapshot() + extra)

    def hangup_request(self, ch: Channel) -> None:
        # A far-end hangup. Cause/TechCause appear only once the channel has a cause (03, 05, 09).
        if self.on(EventClass.CALL):
            extra = b""
            if ch.hangupcause:
                extra = f"Cause: {ch.hangupcause}\r\n".encode()
                if ch.techcause is not None:
                    extra += f"TechCause: {ch.techcause}\r\n".encode()
            self.emit("HangupRequest", EventClass.CALL, ch.snapshot() + extra)

    def soft_hangup_request(self, ch: Channel, flag: int) -> None:
        # "Cause" here is the soft-hangup flag, not a Q.850 cause: 16 = AST_SOFTHANGUP_APPUNLOAD
        # (the dialplan ended), 32 = AST_SOFTHANGUP_EXPLICIT (AGI HANGUP), as in 02/08a/fastagi.
        if self.on(EventClass.CALL):
            self.emit("SoftHangupRequest", EventClass.CALL, ch.snapshot() + f"Cause: {flag}\r\n".encode())

    def hangup(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            extra = f"Cause: {ch.hangupcause}\r\nCause-txt: {cause_text(ch.hangupcause)}\r\n"
            if ch.techcause is not None:
                extra += f"TechCause: {ch.techcause}\r\n"
            self.emit("Hangup", EventClass.CALL, ch.snapshot() + extra.encode())

    # -- dialling (02, 03, 05, 09) ---------------------------------------------------------------
    def _dial(self, name: str, caller: Channel | None, dest: Channel, tail: str) -> None:
        if self.on(EventClass.CALL):
            source = caller.snapshot() if caller is not None else b""
            self.emit(name, EventClass.CALL, source + dest.snapshot("Dest") + tail.encode())

    def dial_begin(self, caller: Channel | None, dest: Channel, dial_string: str) -> None:
        self._dial("DialBegin", caller, dest, f"DialString: {dial_string}\r\n")

    def dial_state(self, caller: Channel | None, dest: Channel, status: str) -> None:
        self._dial("DialState", caller, dest, f"DialStatus: {status}\r\n")

    def dial_end(self, caller: Channel | None, dest: Channel, status: str) -> None:
        self._dial("DialEnd", caller, dest, f"DialStatus: {status}\r\n")

    def originate_response(
        self,
        *,
        action_id: str | None,
        success: bool,
        channel: str,
        target: list[tuple[str, str]],
        reason: int,
        uniqueid: str,
        caller_num: str,
        caller_name: str,
    ) -> None:
        # 01/02/09: ActionID, Response, Channel, Application+Data or Context+Exten, Reason, Uniqueid, CallerID*
        if self.on(EventClass.CALL):
            headers = [("ActionID", action_id)] if action_id is not None else []
            headers += [("Response", "Success" if success else "Failure"), ("Channel", channel), *target]
            headers += [("Reason", str(reason)), ("Uniqueid", uniqueid)]
            headers += [("CallerIDNum", caller_num), ("CallerIDName", caller_name)]
            self.emit("OriginateResponse", EventClass.CALL, header_lines(headers))

    # -- bridges (01, 06) -------------------------------------------------------------------------
    def bridge_create(self, bridge: Bridge) -> None:
        if self.on(EventClass.CALL):
            self.emit("BridgeCreate", EventClass.CALL, bridge.snapshot())

    def bridge_enter(self, bridge: Bridge, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("BridgeEnter", EventClass.CALL, bridge.snapshot() + ch.snapshot())

    def bridge_leave(self, bridge: Bridge, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("BridgeLeave", EventClass.CALL, bridge.snapshot() + ch.snapshot())

    def bridge_destroy(self, bridge: Bridge) -> None:
        if self.on(EventClass.CALL):
            self.emit("BridgeDestroy", EventClass.CALL, bridge.snapshot())

    def bridge_merge(self, to: Bridge, source: Bridge) -> None:
        if self.on(EventClass.CALL):
            self.emit("BridgeMerge", EventClass.CALL, to.snapshot("ToBridge") + source.snapshot("FromBridge"))

    # -- media and features --------------------------------------------------------------------
    def moh_start(self, ch: Channel, moh_class: str) -> None:
        if self.on(EventClass.CALL):
            self.emit("MusicOnHoldStart", EventClass.CALL, ch.snapshot() + f"Class: {moh_class}\r\n".encode())

    def moh_stop(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("MusicOnHoldStop", EventClass.CALL, ch.snapshot())

    def hold(self, ch: Channel, music_class: str | None) -> None:
        # A SIP re-INVITE hold carries MusicClass (13); the hold of an attended transfer does not (06).
        if self.on(EventClass.CALL):
            extra = f"MusicClass: {music_class}\r\n".encode() if music_class else b""
            self.emit("Hold", EventClass.CALL, ch.snapshot() + extra)

    def unhold(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("Unhold", EventClass.CALL, ch.snapshot())

    def dtmf_end(self, ch: Channel, digit: str, duration_ms: int) -> None:
        if self.on(EventClass.DTMF):
            extra = f"Digit: {digit}\r\nDurationMs: {duration_ms}\r\nDirection: Received\r\n".encode()
            self.emit("DTMFEnd", EventClass.DTMF, ch.snapshot() + extra)

    def mixmonitor_start(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("MixMonitorStart", EventClass.CALL, ch.snapshot())

    def mixmonitor_stop(self, ch: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit("MixMonitorStop", EventClass.CALL, ch.snapshot())

    def chanspy(self, name: str, spyer: Channel, spyee: Channel) -> None:
        if self.on(EventClass.CALL):
            self.emit(name, EventClass.CALL, spyer.snapshot("Spyer") + spyee.snapshot("Spyee"))

    def blind_transfer(
        self, transferer: Channel, transferee: Channel, bridge: Bridge, context: str, exten: str
    ) -> None:
        # 05-blind-transfer.txt
        if self.on(EventClass.CALL):
            body = (
                b"Result: Success\r\n"
                + transferer.snapshot("Transferer")
                + transferee.snapshot("Transferee")
                + bridge.snapshot()
                + f"IsExternal: Yes\r\nContext: {context}\r\nExtension: {exten}\r\n".encode()
            )
            self.emit("BlindTransfer", EventClass.CALL, body)

    def attended_transfer(
        self, transferer: Channel, orig_bridge: Bridge, second_bridge: Bridge, transferee: Channel
    ) -> None:
        # 06-attended-transfer.txt: the transfer completes as a bridge merge (DestType: Bridge).
        if self.on(EventClass.CALL):
            body = (
                b"Result: Success\r\n"
                + transferer.snapshot("OrigTransferer")
                + orig_bridge.snapshot("OrigBridge")
                + transferer.snapshot("SecondTransferer")
                + second_bridge.snapshot("SecondBridge")
                + transferee.snapshot("Transferee")
                + f"IsExternal: No\r\nDestType: Bridge\r\nDestBridgeUniqueid: {orig_bridge.uniqueid}\r\n".encode()
            )
            self.emit("AttendedTransfer", EventClass.CALL, body)

    def local_bridge(self, one: Channel, two: Channel, context: str, exten: str) -> None:
        if self.on(EventClass.CALL):
            body = (
                one.snapshot("LocalOne")
                + two.snapshot("LocalTwo")
                + f"Context: {context}\r\nExten: {exten}\r\nLocalOptimization: Yes\r\n".encode()
            )
            self.emit("LocalBridge", EventClass.CALL, body)

    # -- AGI (fastagi-commands-ami.txt) ------------------------------------------------------------
    def agi_exec_start(self, ch: Channel, command_id: int, command: str) -> None:
        if self.on(EventClass.AGI):
            self.emit(
                "AGIExecStart",
                EventClass.AGI,
                ch.snapshot() + f"CommandId: {command_id}\r\nCommand: {command}\r\n".encode(),
            )

    def agi_exec_end(self, ch: Channel, command_id: int, command: str, result_code: int, result: str) -> None:
        if self.on(EventClass.AGI):
            extra = (
                f"CommandId: {command_id}\r\nCommand: {command}\r\nResultCode: {result_code}\r\nResult: {result}\r\n"
            )
            self.emit("AGIExecEnd", EventClass.AGI, ch.snapshot() + extra.encode())

    def user_event(self, headers: list[tuple[str, str]]) -> None:
        if self.on(EventClass.USER):
            self.emit("UserEvent", EventClass.USER, header_lines(headers))
