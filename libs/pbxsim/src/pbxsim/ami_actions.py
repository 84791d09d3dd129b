"""AMI actions on calls, and the list actions the ACD resyncs with (10-resync-actions.txt).

Each action validates its headers with Asterisk's error messages, answers, and only then
changes the call model, so the Response comes before the events it causes (01, 05, 08a).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from pbxsim.ami import AmiMessage, AmiServer, AmiSession
from pbxsim.clock import Clock, resolve
from pbxsim.dialplan import bare_name, parse_callerid
from pbxsim.events import header_lines
from pbxsim.model import Bridge, Channel
from pbxsim.pbx import OriginateRequest, Pbx, PbxError

# A leg that is still ringing belongs to its Originate/Dial; the simulator refuses to move it.
NOT_ANSWERED = "Channel is not answered yet"


# What ListCommands prints: each action's name and synopsis (manager.c: "Name: synopsis  (Priv: …)").
SYNOPSIS = {
    "atxfer": ("Atxfer", "Attended transfer."),
    "blindtransfer": ("BlindTransfer", "Blind transfer channel(s) to the given destination"),
    "bridge": ("Bridge", "Bridge two channels already in the PBX."),
    "bridgeinfo": ("BridgeInfo", "Get information about a bridge."),
    "bridgelist": ("BridgeList", "Get a list of bridges in the system."),
    "challenge": ("Challenge", "Generate Challenge for MD5 Auth."),
    "command": ("Command", "Execute Asterisk CLI Command."),
    "coreshowchannels": ("CoreShowChannels", "List currently active channels."),
    "events": ("Events", "Control Event Flow."),
    "getvar": ("Getvar", "Gets a channel variable or function value."),
    "hangup": ("Hangup", "Hangup channel."),
    "listcommands": ("ListCommands", "List available manager commands."),
    "login": ("Login", "Login Manager."),
    "logoff": ("Logoff", "Logoff Manager."),
    "mixmonitor": ("MixMonitor", "Record a call and mix the audio during the recording."),
    "originate": ("Originate", "Originate a call."),
    "ping": ("Ping", "Keepalive command."),
    "queuestatus": ("QueueStatus", "Show queue status."),
    "queuesummary": ("QueueSummary", "Show queue summary."),
    "redirect": ("Redirect", "Redirect (transfer) a call."),
    "setvar": ("Setvar", "Sets a channel variable or function value."),
    "status": ("Status", "List channel status."),
    "stopmixmonitor": ("StopMixMonitor", "Stop recording a call through MixMonitor."),
    "userevent": ("UserEvent", "Send an arbitrary event."),
}


def _duration(seconds: float) -> str:
    total = int(seconds)
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


class CallActions:
    def __init__(self, server: AmiServer, pbx: Pbx, clock: Clock) -> None:
        self.server = server
        self.pbx = pbx
        self.clock = clock
        handlers: dict[str, Callable[[AmiSession, AmiMessage], object]] = {
            "login": server.login,
            "challenge": server.challenge,
            "logoff": server.logoff,
            "ping": server.ping,
            "events": server.events,
            "originate": self.originate,
            "hangup": self.hangup,
            "redirect": self.redirect,
            "bridge": self.bridge,
            "blindtransfer": self.blind_transfer,
            "atxfer": self.atxfer,
            "mixmonitor": self.mixmonitor,
            "stopmixmonitor": self.stop_mixmonitor,
            "coreshowchannels": self.core_show_channels,
            "status": self.status,
            "bridgelist": self.bridge_list,
            "bridgeinfo": self.bridge_info,
            "queuestatus": self.queue_status,
            "queuesummary": self.queue_summary,
            "getvar": self.getvar,
            "setvar": self.setvar,
            "userevent": self.user_event,
            "command": self.command,
            "listcommands": self.list_commands,
        }
        server.handlers.update(handlers)  # type: ignore[arg-type]

    def _channel(self, session: AmiSession, msg: AmiMessage, missing: str, unknown: str) -> Channel | None:
        name = (msg.get("Channel") or "").strip()
        if not name:
            session.error(msg, missing)
            return None
        ch = self.pbx.find(name)
        if ch is None:
            session.error(msg, unknown.format(name=name))
        return ch

    # -- Originate ---------------------------------------------------------------------------------
    async def originate(self, session: AmiSession, msg: AmiMessage) -> None:
        channel = (msg.get("Channel") or "").strip()
        app = (msg.get("Application") or "").strip()
        context, exten, priority = msg.get("Context"), msg.get("Exten"), msg.get("Priority")
        if not channel:
            session.error(msg, "Channel not specified")
            return
        if not app and (not exten or not context or not priority):
            session.error(msg, "Originate with 'Exten' requires 'Context' and 'Priority'")
            return
        if priority and not priority.strip().isdigit():
            session.error(msg, "Invalid priority")
            return
        timeout_ms = (msg.get("Timeout") or "").strip()
        if timeout_ms and not timeout_ms.lstrip("-").isdigit():
            session.error(msg, "Invalid timeout")
            return
        if "/" not in channel:
            session.error(msg, "Invalid channel")
            return
        variables: list[tuple[str, str]] = []
        for value in msg.get_all("Variable"):
            for part in value.split(","):
                name, eq, val = part.partition("=")
                if eq and name.strip():
                    variables.append((name.strip(), val))
        callerid_text = msg.get("CallerID")
        req = OriginateRequest(
            channel=channel,
            application=app or None,
            data=msg.get("Data") or "",
            context=(context or "").strip() or None,
            exten=(exten or "").strip() or None,
            priority=int(priority) if priority and priority.strip().isdigit() else 1,
            timeout=(int(timeout_ms) / 1000 if timeout_ms and int(timeout_ms) > 0 else 30.0),
            callerid=parse_callerid(callerid_text) if callerid_text else None,
            variables=variables,
            action_id=msg.action_id,
            account=msg.get("Account") or "",
            channel_id=(msg.get("ChannelId") or "").strip() or None,
        )
        if (msg.get("Async") or "").strip().lower() in ("true", "yes", "1", "on", "y", "t"):
            session.success(msg, "Originate successfully queued")
            self.pbx.originate(req)
            return
        # Without Async the session waits for the outcome and no OriginateResponse is sent.
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.pbx.originate(req, on_result=functools.partial(resolve, done))
        if await done:
            session.success(msg, "Originate successfully queued")
        else:
            session.error(msg, "Originate failed")

    # -- channel control ---------------------------------------------------------------------------
    def hangup(self, session: AmiSession, msg: AmiMessage) -> None:
        ch = self._channel(session, msg, "No channel specified", "No such channel")
        if ch is None:
            return
        cause_text = (msg.get("Cause") or "").strip()
        session.success(msg, "Channel Hungup")
        self.pbx.request_hangup(ch, int(cause_text) if cause_text.isdigit() else 0)

    def redirect(self, session: AmiSession, msg: AmiMessage) -> None:
        name = (msg.get("Channel") or "").strip()
        context, exten, priority = ((msg.get(h) or "").strip() for h in ("Context", "Exten", "Priority"))
        for value, message in (
            (name, "Channel not specified"),
            (context, "Context not specified"),
            (exten, "Exten not specified"),
            (priority, "Priority not specified"),
        ):
            if not value:
                session.error(msg, message)
                return
        if not priority.isdigit() or int(priority) < 1:
            session.error(msg, "Priority is invalid")
            return
        ch = self.pbx.find(name)
        if ch is None:
            session.error(msg, f"Channel does not exist: {name}")
            return
        extra_name = (msg.get("ExtraChannel") or "").strip()
        extra = self.pbx.find(extra_name) if extra_name else None
        if extra_name and extra is None:
            session.error(msg, f"ExtraChannel does not exist: {extra_name}")
            return
        if ch.outgoing is not None or (extra is not None and extra.outgoing is not None):
            session.error(msg, NOT_ANSWERED)
            return
        session.success(msg, "Dual Redirect successful" if extra else "Redirect successful")
        self.pbx.redirect(ch, context, exten, int(priority))
        if extra is not None:
            extra_priority = (msg.get("ExtraPriority") or priority).strip()
            self.pbx.redirect(
                extra,
                (msg.get("ExtraContext") or context).strip(),
                (msg.get("ExtraExten") or exten).strip(),
                int(extra_priority) if extra_priority.isdigit() else 1,
            )

    def bridge(self, session: AmiSession, msg: AmiMessage) -> None:
        name1, name2 = (msg.get("Channel1") or "").strip(), (msg.get("Channel2") or "").strip()
        if not name1 or not name2:
            session.error(msg, "Missing channel parameter in request")
            return
        first, second = self.pbx.find(name1), self.pbx.find(name2)
        if first is None:
            session.error(msg, f"Channel1 does not exist: {name1}")
            return
        if second is None:
            session.error(msg, f"Channel2 does not exist: {name2}")
            return
        if first is second:
            session.error(msg, "Unable to bridge channels")
            return
        if first.outgoing is not None or second.outgoing is not None:
            session.error(msg, NOT_ANSWERED)
            return
        session.success(msg, "Channel has been bridged")
        self.pbx.bridge_channels(first, second)

    def _transferer(self, session: AmiSession, msg: AmiMessage) -> tuple[Channel, str] | None:
        """The Channel and Exten of BlindTransfer and Atxfer, checked as manager.c checks them."""
        name = (msg.get("Channel") or "").strip()
        exten = (msg.get("Exten") or "").strip()
        if not name:
            session.error(msg, "No channel specified")
            return None
        if not exten:
            session.error(msg, "No extension specified")
            return None
        ch = self.pbx.find(name)
        if ch is None:
            session.error(msg, "Channel specified does not exist")
            return None
        return ch, exten

    def blind_transfer(self, session: AmiSession, msg: AmiMessage) -> None:
        found = self._transferer(session, msg)
        if found is None:
            return
        ch, exten = found
        if ch.bridge is None or len(ch.bridge.channels) != 2:
            session.error(msg, "Transfer invalid")
            return
        session.success(msg, "Transfer succeeded")
        self.pbx.blind_transfer(ch, (msg.get("Context") or ch.context).strip(), exten)

    def atxfer(self, session: AmiSession, msg: AmiMessage) -> None:
        found = self._transferer(session, msg)
        if found is None:
            return
        ch, exten = found
        if not ch.dtmf_transfer or not self.pbx.config.atxfer_code:
            # The feature needs Bridge()/Dial() option T/t and an atxfer code (README surprise 7).
            session.error(msg, "No attended transfer feature code found")
            return
        session.success(msg, "Atxfer successfully queued")
        try:
            self.pbx.atxfer(ch, (msg.get("Context") or ch.context).strip(), exten)
        except PbxError:
            pass  # the digits go to a channel that is not bridged: nothing happens, as in Asterisk

    def mixmonitor(self, session: AmiSession, msg: AmiMessage) -> None:
        ch = self._channel(session, msg, "No channel specified", "No such channel")
        if ch is None:
            return
        file = (msg.get("File") or "").strip() or f"{ch.uniqueid}.wav"
        session.respond(msg, "Success")  # no Message header (01)
        self.pbx.start_mixmonitor(ch, file, msg.get("Options") or "")

    def stop_mixmonitor(self, session: AmiSession, msg: AmiMessage) -> None:
        ch = self._channel(session, msg, "No channel specified", "No such channel")
        if ch is None:
            return
        if not ch.recordings:
            session.error(msg, "Could not stop MixMonitor")
            return
        session.respond(msg, "Success")
        self.pbx.stop_mixmonitor(ch)

    def getvar(self, session: AmiSession, msg: AmiMessage) -> None:
        variable = (msg.get("Variable") or "").strip()
        if not variable:
            session.error(msg, "No variable specified")
            return
        ch: Channel | None = None
        name = (msg.get("Channel") or "").strip()
        if name:
            ch = self.pbx.find(name)
            if ch is None:
                session.error(msg, "No such channel")
                return
        value = self.pbx.get_var(ch, variable)
        session.respond(msg, "Success", [("Variable", variable), ("Value", value or "")])

    def setvar(self, session: AmiSession, msg: AmiMessage) -> None:
        variable = (msg.get("Variable") or "").strip()
        if not variable:
            session.error(msg, "No variable specified")
            return
        ch: Channel | None = None
        name = (msg.get("Channel") or "").strip()
        if name:
            ch = self.pbx.find(name)
            if ch is None:
                session.error(msg, "No such channel")
                return
        session.success(msg, "Variable Set")
        self.pbx.set_var(ch, variable, msg.get("Value") or "")

    def user_event(self, session: AmiSession, msg: AmiMessage) -> None:
        name = (msg.get("UserEvent") or "").strip()
        if not name:
            session.error(msg, "UserEvent not specified")
            return
        body = [(k, v) for k, v in msg.headers if k.lower() not in ("action", "userevent")]
        session.success(msg, "Event Sent")
        self.pbx.events.user_event([("UserEvent", name), *body])

    # -- lists (10-resync-actions.txt) ---------------------------------------------------------------
    def _list(
        self, session: AmiSession, msg: AmiMessage, message: str, items: list[bytes], complete: str, extra: bytes = b""
    ) -> None:
        action_id = msg.action_id
        aid = f"ActionID: {action_id}\r\n".encode() if action_id is not None else b""
        session.respond(msg, "Success", [("EventList", "start"), ("Message", message)])
        for item in items:
            session.send(item)
        session.send(
            f"Event: {complete}\r\n".encode()
            + aid
            + f"EventList: Complete\r\nListItems: {len(items)}\r\n".encode()
            + extra
            + b"\r\n"
        )

    def _item(self, name: str, msg: AmiMessage, body: bytes) -> bytes:
        aid = f"ActionID: {msg.action_id}\r\n".encode() if msg.action_id is not None else b""
        return f"Event: {name}\r\n".encode() + aid + body + b"\r\n"

    def core_show_channels(self, session: AmiSession, msg: AmiMessage) -> None:
        now = self.clock.now()
        items = [
            self._item(
                "CoreShowChannel",
                msg,
                ch.snapshot()
                + header_lines(
                    [
                        ("Application", ch.app),
                        ("ApplicationData", ch.app_data),
                        ("Duration", _duration(now - ch.created)),
                        ("BridgeId", ch.bridge.uniqueid if ch.bridge else ""),
                    ]
                ),
            )
            for ch in self._listed_channels()
        ]
        self._list(session, msg, "Channels will follow", items, "CoreShowChannelsComplete")

    def _listed_channels(self) -> list[Channel]:
        return sorted((c for c in self.pbx.channels.values() if not c.hungup), key=lambda c: c.order)

    def status(self, session: AmiSession, msg: AmiMessage) -> None:
        name = (msg.get("Channel") or "").strip()
        if name:
            ch = self.pbx.find(name)
            if ch is None:
                session.error(msg, "No such channel")
                return
            channels = [ch]
        else:
            channels = self._listed_channels()
        wanted = [v.strip() for v in (msg.get("Variables") or "").split(",") if v.strip()]
        now = self.clock.now()
        aid = f"ActionID: {msg.action_id}\r\n".encode() if msg.action_id is not None else b""
        items = []
        for ch in channels:
            headers = [
                ("Type", ch.tech),
                ("DNID", ch.dnid),
                ("EffectiveConnectedLineNum", ch.connected_num or "<unknown>"),
                ("EffectiveConnectedLineName", ch.connected_name or "<unknown>"),
                ("TimeToHangup", "0"),
                ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""),
                ("Application", ch.app or "(null)"),
                ("Data", ch.app_data or "(null)"),
                ("Nativeformats", "(ulaw)"),
                ("Readformat", "ulaw"),
                ("Readtrans", ""),
                ("Writeformat", "ulaw"),
                ("Writetrans", ""),
                ("Callgroup", "0"),
                ("Pickupgroup", "0"),
                ("Seconds", str(int(now - ch.created))),
            ]
            headers += [("Variable", f"{v}={self.pbx.get_var(ch, bare_name(v)) or ''}") for v in wanted]
            # Status items: Privilege "Call" and the ActionID last (README surprise 1)
            items.append(
                b"Event: Status\r\nPrivilege: Call\r\n" + ch.snapshot() + header_lines(headers) + aid + b"\r\n"
            )
        count = f"Items: {len(items)}\r\n".encode()
        self._list(session, msg, "Channel status will follow", items, "StatusComplete", count)

    def bridge_list(self, session: AmiSession, msg: AmiMessage) -> None:
        kind = (msg.get("BridgeType") or "").strip()
        bridges = [b for b in self.pbx.bridges.values() if not kind or kind == "basic"]
        items = [self._item("BridgeListItem", msg, b.snapshot()) for b in sorted(bridges, key=lambda b: b.created)]
        self._list(session, msg, "Bridge listing will follow", items, "BridgeListComplete")

    def bridge_info(self, session: AmiSession, msg: AmiMessage) -> None:
        uniqueid = (msg.get("BridgeUniqueid") or "").strip()
        if not uniqueid:
            session.error(msg, "BridgeUniqueid must be provided")
            return
        bridge: Bridge | None = self.pbx.bridges.get(uniqueid)
        if bridge is None:
            session.error(msg, f"Bridge {uniqueid} not found")
            return
        items = [self._item("BridgeInfoChannel", msg, ch.snapshot()) for ch in bridge.channels]
        self._list(session, msg, "Bridge channel listing will follow", items, "BridgeInfoComplete", bridge.snapshot())

    def queue_status(self, session: AmiSession, msg: AmiMessage) -> None:
        self._list(session, msg, "Queue status will follow", [], "QueueStatusComplete")

    def queue_summary(self, session: AmiSession, msg: AmiMessage) -> None:
        self._list(session, msg, "Queue summary will follow", [], "QueueSummaryComplete")

    def list_commands(self, session: AmiSession, msg: AmiMessage) -> None:
        listed = [SYNOPSIS.get(name, (name, "")) for name in sorted(self.server.handlers)]
        session.respond(msg, "Success", [(name, f"{synopsis}  (Priv: <none>)") for name, synopsis in listed])

    # -- Command -----------------------------------------------------------------------------------
    def command(self, session: AmiSession, msg: AmiMessage) -> None:
        text = " ".join((msg.get("Command") or "").split())
        if not text:
            session.error(msg, "No command provided")
            return
        output = self._cli(text.lower())
        if output is None:
            session.respond(
                msg,
                "Error",
                [
                    ("Message", "Command output follows"),
                    ("Output", f"No such command '{text}' (type 'core show help {text}' for other possible commands)"),
                ],
            )
            return
        session.respond(msg, "Success", [("Message", "Command output follows"), *(("Output", line) for line in output)])

    def _cli(self, text: str) -> list[str] | None:
        config = self.pbx.config
        channels = self._listed_channels()
        calls = len({c.linkedid for c in channels})
        if text == "core show version":
            return [f"Asterisk {config.asterisk_version} built by pbxsim on a simulated PBX"]
        if text == "core show uptime":
            seconds = int(self.clock.wall() - self.pbx.booted_at)
            return [f"System uptime: {seconds} seconds", f"Last reload: {seconds} seconds"]
        if text == "core show channels count":
            return [f"{len(channels)} active channels", f"{calls} active calls"]
        if text == "core show channels":
            header = f"{'Channel':<64} {'Location':<32} {'State':<7} Application(Data)"
            rows = []
            for c in channels:
                location = f"{c.exten}@{c.context}:{c.priority}"
                rows.append(f"{c.name:<64} {location:<32} {c.state.name.title():<7} {c.app}({c.app_data})")
            return [header, *rows, f"{len(channels)} active channels", f"{calls} active calls"]
        return None
