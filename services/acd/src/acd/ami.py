"""The AMI edge: the ACD's only connection to Asterisk.

panoramisk's `Manager` does what it does well: login, action IDs and futures, EventList
collection (CoreShowChannels, Status), keep-alive pings. Its reader does not fit the ACD:
it decodes each TCP chunk on its own (a UTF-8 caller name split across chunks loses
bytes), keeps an unterminated frame without bound, builds a case-insensitive dict and
runs every registered regex for each of the thousands of noise events (VarSet, Newexten,
RTCPSent …), and an exception in one frame escapes `data_received`, which makes asyncio
drop the connection and the rest of the chunk. So `AmiProtocol` replaces `data_received`
with `AmiReader`: frames are cut from bytes, bounded, decoded whole, noise is skipped by
name before any parsing, the events the model uses go to it as plain dicts, and replies
(responses, list items) go to panoramisk's own `Message`/`Action` machinery. Each frame is
handled on its own: a bad one is logged and skipped, the connection stays up.

Reconnection is ours too (panoramisk retries at a fixed interval and resends queued actions
after `FullyBooted`): exponential back-off, and actions in flight fail with
`AmiUnavailable` rather than being replayed later (a replayed Originate would ring an
agent twice).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message
from prometheus_client import Counter

log = logging.getLogger("acd.ami")

AMI_EVENTS = Counter("acd_ami_events_total", "AMI frames received, by what became of them", ["outcome"])
AMI_RECONNECTS = Counter("acd_ami_reconnects_total", "Times the AMI connection was established again after a loss")

EVENT_PREFIX = b"Event: "
RESPONSE_PREFIX = b"Response: "
BANNER_PREFIX = b"Asterisk Call Manager/"
TERMINATOR = b"\r\n\r\n"
VARIABLE_HEADER = b"\r\nVariable: "
ACTIONID_HEADER = b"\r\nActionID: "
# Events panoramisk itself needs (FullyBooted resumes it, Shutdown closes it).
MANAGER_EVENTS = frozenset({"FullyBooted", "Shutdown"})
# What the reader hands to panoramisk as well as (or instead of) the model.
SHARED_EVENTS = frozenset({b"FullyBooted", b"Shutdown", b"OriginateResponse"})
MAX_LOGGED_UNKNOWN = 200
# Events Asterisk sends that the ACD has no use for (yet); any other name is logged once as unknown.
KNOWN_NOISE = frozenset(
    {
        b"Newexten",
        b"RTCPSent",
        b"RTCPReceived",
        b"DeviceStateChange",
        b"PresenceStateChange",
        b"ExtensionStatus",
        b"AGIExecStart",
        b"AGIExecEnd",
        b"AsyncAGIStart",
        b"AsyncAGIExec",
        b"AsyncAGIEnd",
        b"SuccessfulAuth",
        b"FailedACL",
        b"InvalidPassword",
        b"ChallengeSent",
        b"DTMFBegin",
        b"DTMFEnd",
        b"ChanSpyStart",
        b"ChanSpyStop",
        b"QueueCallerJoin",
        b"QueueCallerLeave",
        b"QueueCallerAbandon",
        b"QueueMemberStatus",
        b"QueueMemberAdded",
        b"QueueMemberRemoved",
        b"QueueMemberPause",
        b"AgentCalled",
        b"AgentConnect",
        b"AgentComplete",
        b"AgentRingNoAnswer",
        b"AgentDump",
        b"PeerStatus",
        b"ContactStatus",
        b"Registry",
        b"Reload",
        b"NewAccountCode",
        b"NewPeerAccount",
        b"Rename",
        b"Cdr",
        b"CEL",
        b"UserEvent",
        b"HangupHandlerRun",
        b"HangupHandlerPush",
        b"HangupHandlerPop",
        b"LocalOptimizationBegin",
        b"LocalOptimizationEnd",
        b"Pickup",
        b"Masquerade",
        b"MixMonitorMute",
        b"ConfbridgeStart",
        b"ConfbridgeEnd",
        b"ConfbridgeJoin",
        b"ConfbridgeLeave",
    }
)


class AmiUnavailable(ConnectionError):
    """There is no logged-in AMI connection now; nothing was sent."""


class AmiActionFailed(RuntimeError):
    """Asterisk answered an action with `Response: Error`."""


def parse_headers(text: str) -> dict[str, str]:
    """`Key: value` lines of one frame; a line without a colon is ignored, as Asterisk does."""
    headers: dict[str, str] = {}
    for line in text.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            headers[key] = value
        elif line.endswith(":"):
            headers[line[:-1]] = ""
    return headers


@dataclass(slots=True)
class ReaderCounts:
    applied: int = 0
    ignored: int = 0
    malformed: int = 0
    replies: int = 0


class AmiReader:
    """Bytes in; model events, replies and counts out. Synchronous and bounded."""

    def __init__(
        self,
        *,
        wanted: frozenset[str],
        tracks_variable: Callable[[str], bool],
        apply: Callable[[str, dict[str, str]], bool],
        on_reply: Callable[[str], None],
        is_pending: Callable[[str], bool],
        max_frame_bytes: int = 65_536,
    ) -> None:
        self._wanted = frozenset(name.encode() for name in wanted | MANAGER_EVENTS)
        self._tracks_variable = tracks_variable
        self._apply = apply
        self._on_reply = on_reply
        self._is_pending = is_pending
        self.max_frame_bytes = max_frame_bytes
        self._rest = b""
        self._discarding = False
        self._banner_checked = False
        self.banner = ""
        self.counts = ReaderCounts()
        self._unknown_logged: set[bytes] = set()
        self._malformed_logged = 0

    def feed(self, data: bytes) -> None:
        buffer = self._rest + data if self._rest else data
        if self._discarding:
            end = buffer.find(TERMINATOR)
            if end < 0:
                self._rest = buffer[-3:]
                return
            buffer = buffer[end + 4 :]
            self._discarding = False
        if not self._banner_checked:
            if len(buffer) < len(BANNER_PREFIX) and BANNER_PREFIX.startswith(buffer):
                self._rest = buffer
                return
            self._banner_checked = True
            if buffer.startswith(BANNER_PREFIX):
                end = buffer.find(b"\r\n")
                if end < 0:
                    self._banner_checked = False
                    self._rest = buffer
                    return
                self.banner = buffer[:end].decode("utf-8", "replace")
                buffer = buffer[end + 2 :]
        frames = buffer.split(TERMINATOR)
        rest = frames.pop()
        if len(rest) > self.max_frame_bytes:
            self._malformed(f"a frame grew past {self.max_frame_bytes} bytes without its end; dropped")
            self._discarding = True
            rest = rest[-3:]
        self._rest = rest
        for frame in frames:
            try:
                self._frame(frame)
            except Exception as exc:
                self._malformed(f"{type(exc).__name__}: {exc} in {frame[:200]!r}")

    def _frame(self, frame: bytes) -> None:
        if len(frame) > self.max_frame_bytes:
            self._malformed(f"a {len(frame)}-byte frame (limit {self.max_frame_bytes}); dropped")
            return
        if frame.startswith(b"\r\n"):
            frame = frame.lstrip(b"\r\n")
        if not frame:
            return
        if frame.startswith(EVENT_PREFIX):
            end = frame.find(b"\r\n")
            name = frame[7:end] if end >= 0 else frame[7:]
            if name == b"VarSet":
                start = frame.find(VARIABLE_HEADER)
                if start >= 0:
                    start += len(VARIABLE_HEADER)
                    stop = frame.find(b"\r\n", start)
                    variable = frame[start : stop if stop >= 0 else len(frame)].decode("utf-8", "replace")
                    if not self._tracks_variable(variable):
                        self.counts.ignored += 1
                        return
            elif name not in self._wanted:
                if ACTIONID_HEADER in frame:
                    text = frame.decode("utf-8", "replace")
                    action_id = parse_headers(text).get("ActionID", "")
                    if self._is_pending(action_id):
                        self.counts.replies += 1
                        self._on_reply(text)
                        return
                self.counts.ignored += 1
                if (
                    name not in KNOWN_NOISE
                    and name not in self._unknown_logged
                    and len(self._unknown_logged) < MAX_LOGGED_UNKNOWN
                ):
                    self._unknown_logged.add(name)
                    log.info("unknown AMI event %r skipped (logged once per name)", name[:80].decode(errors="replace"))
                return
            text = frame.decode("utf-8", "replace")
            headers = parse_headers(text)
            if name in SHARED_EVENTS:
                self._shared(text, headers)
            elif self._apply(headers["Event"], headers):
                self.counts.applied += 1
            else:
                self.counts.ignored += 1
            return
        text = frame.decode("utf-8", "replace")
        if frame.startswith(RESPONSE_PREFIX):
            self.counts.replies += 1
            self._on_reply(text)
            return
        # Asterisk writes `Event:` / `Response:` first, always; anything else is not AMI.
        self._malformed(f"a frame that starts with neither Event nor Response: {frame[:200]!r}")

    def _shared(self, text: str, headers: dict[str, str]) -> None:
        """Events panoramisk needs too: its FullyBooted / Shutdown, and an OriginateResponse it waits for."""
        event = headers["Event"]
        if event in MANAGER_EVENTS:
            self.counts.applied += 1
            self._on_reply(text)
            return
        if self._is_pending(headers.get("ActionID", "")):
            self.counts.replies += 1
            self._on_reply(text)
        if self._apply(event, headers):
            self.counts.applied += 1

    def _malformed(self, what: str) -> None:
        self.counts.malformed += 1
        self._malformed_logged += 1
        if self._malformed_logged <= 20 or self._malformed_logged % 1000 == 0:
            log.warning("malformed AMI input skipped (#%d): %s", self._malformed_logged, what)


class AmiProtocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with `AmiReader` in place of its `data_received`."""

    def __init__(self, client: AmiClient) -> None:
        super().__init__()
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.reader = self.client.new_reader(self)

    def data_received(self, data: bytes) -> None:
        self.client.data_seen()
        try:
            self.reader.feed(data)
        except Exception:
            log.exception("the AMI reader failed on a chunk; it is skipped")
        finally:
            self.client.flush_counts(self.reader.counts)

    def reply(self, text: str) -> None:
        message = Message.from_line(text.strip())
        if message is None:
            self.reader.counts.malformed += 1
            return
        self.handle_message(message)

    def is_pending(self, action_id: str) -> bool:
        return bool(action_id) and action_id in self.responses


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager, with connecting and reconnecting left to `AmiClient`."""

    def __init__(self, client: AmiClient, **config: Any) -> None:
        super().__init__(**config)
        self.client = client

    def connect(self, run_forever: bool = False, on_startup: Any = None, on_shutdown: Any = None) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = self.loop.create_task(
            self.loop.create_connection(
                lambda: AmiProtocol(self.client), self.config["host"], self.config["port"], ssl=self.config["ssl"]
            )
        )
        task.add_done_callback(self.connection_made)
        return task

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled():
            return
        exc = f.exception()
        if exc is not None:
            self.client.connect_failed(exc)
            return
        super().connection_made(f)

    def login(self, future: asyncio.Future[Message]) -> bool:
        authenticated = bool(super().login(future))
        if not authenticated:
            self.client.login_refused(future.result())
        return authenticated

    def connection_lost(self, exc: BaseException | None) -> None:
        self._connected = False
        self.authenticated = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        self.client.connection_lost(exc)


@dataclass(frozen=True, slots=True)
class AmiConfig:
    host: str
    port: int
    username: str
    secret: str
    reconnect_initial_seconds: float = 0.2
    reconnect_max_seconds: float = 10.0
    ping_seconds: int = 10
    idle_timeout_seconds: float = 35.0
    action_timeout_seconds: float = 10.0
    max_frame_bytes: int = 65_536


class AmiClient:
    """One AMI connection, kept up: connect, log in, reconnect with back-off, send actions."""

    def __init__(
        self,
        config: AmiConfig,
        *,
        wanted: frozenset[str],
        tracks_variable: Callable[[str], bool],
        on_event: Callable[[str, dict[str, str]], bool],
        on_booted: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.config = config
        self._wanted = wanted
        self._tracks_variable = tracks_variable
        self._on_event = on_event
        self._on_booted = on_booted
        self._on_lost = on_lost
        self._manager: _Manager | None = None
        self._protocol: AmiProtocol | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[Any] | None = None
        self._stopping = False
        self._failures = 0
        self._ever_booted = False
        self._last_data = 0.0
        self._paused = False
        self.booted = False
        self.reconnects = 0
        self.last_event_at: datetime | None = None
        self.last_error = ""
        self.version = ""

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start connecting in the background; a PBX that is not there yet is retried forever."""
        self._stopping = False
        # Created inside the running loop (panoramisk's futures bind to it; THIRD-PARTY.md).
        self._manager = _Manager(
            self,
            host=self.config.host,
            port=self.config.port,
            username=self.config.username,
            secret=self.config.secret,
            events="on",
            ping_delay=self.config.ping_seconds,
            ping_interval=self.config.ping_seconds,
            loop=asyncio.get_running_loop(),
            forgetable_actions=("ping", "login"),
            log=logging.getLogger("acd.ami.panoramisk"),
        )
        self._manager.register_event("FullyBooted", self._fully_booted)
        self._connect_now()
        self._watchdog = asyncio.create_task(self._watch_idle(), name="acd-ami-watchdog")

    async def stop(self) -> None:
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
            self._watchdog = None
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._manager is not None:
            self._manager.close()  # moves actions in flight to its awaiting list, failed next
            self._fail_pending(AmiUnavailable("the ACD is stopping"))
        self.booted = False

    def _connect_now(self) -> None:
        self._retry = None
        if self._stopping or self._manager is None:
            return
        self._connecting = self._manager.connect()

    def _schedule_reconnect(self) -> None:
        if self._stopping or self._retry is not None:
            return
        delay = min(self.config.reconnect_initial_seconds * 2**self._failures, self.config.reconnect_max_seconds)
        delay *= 1 + random.random() * 0.1  # replicas must not knock in step
        self._failures += 1
        self._retry = asyncio.get_running_loop().call_later(delay, self._connect_now)

    # -- callbacks from panoramisk ----------------------------------------------------------------
    def new_reader(self, protocol: AmiProtocol) -> AmiReader:
        self._protocol = protocol
        self._last_data = time.monotonic()
        if self._paused:  # the facts queue is still full: a new connection waits too
            protocol.transport.pause_reading()
        return AmiReader(
            wanted=self._wanted,
            tracks_variable=self._tracks_variable,
            apply=self._on_event,
            on_reply=protocol.reply,
            is_pending=protocol.is_pending,
            max_frame_bytes=self.config.max_frame_bytes,
        )

    def data_seen(self) -> None:
        self._last_data = time.monotonic()

    def flush_counts(self, counts: ReaderCounts) -> None:
        if counts.applied or counts.ignored:
            self.last_event_at = datetime.now(UTC)
        if counts.applied:
            AMI_EVENTS.labels("applied").inc(counts.applied)
        if counts.ignored:
            AMI_EVENTS.labels("ignored").inc(counts.ignored)
        if counts.malformed:
            AMI_EVENTS.labels("malformed").inc(counts.malformed)
        counts.applied = counts.ignored = counts.malformed = counts.replies = 0

    def login_refused(self, answer: Message) -> None:
        # Asterisk closes the connection next; the back-off keeps retrying (a fixed secret may come).
        self.last_error = f"login refused: {answer.get('Message', '')}"
        log.warning("AMI login as %r refused: %s", self.config.username, answer.get("Message", ""))

    def connect_failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self._failures == 0:
            log.warning("AMI at %s:%s not reachable (%s); retrying", self.config.host, self.config.port, exc)
        else:
            log.debug("AMI still not reachable: %s", exc)
        self._schedule_reconnect()

    def connection_lost(self, exc: BaseException | None) -> None:
        was_booted = self.booted
        self.booted = False
        self._protocol = None
        self._fail_pending(AmiUnavailable("the AMI connection was lost"))
        if not self._stopping and was_booted:
            log.warning("AMI connection lost (%s); reconnecting", exc or "closed by the PBX")
            self.last_error = f"connection lost: {exc or 'closed by the PBX'}"
        if was_booted:
            self._on_lost()
        self._schedule_reconnect()

    def _fully_booted(self, _manager: Manager, message: Message) -> None:
        if self.booted:
            return
        self.booted = True
        self._failures = 0
        self.last_error = ""
        if self._protocol is not None:
            self.version = self._protocol.reader.banner
        if self._ever_booted:
            self.reconnects += 1
            AMI_RECONNECTS.inc()
        self._ever_booted = True
        log.info("AMI logged in to %s:%s (%s)", self.config.host, self.config.port, self.version)
        self._on_booted()

    def _fail_pending(self, exc: Exception) -> None:
        manager = self._manager
        if manager is None:
            return
        while manager.awaiting_actions:
            action = manager.awaiting_actions.popleft()
            if not action.future.done():
                action.future.set_exception(exc)

    async def _watch_idle(self) -> None:
        # panoramisk pings every `ping_seconds`; a connection that stays silent longer is dead.
        while True:
            await asyncio.sleep(max(self.config.idle_timeout_seconds / 4, 0.05))
            protocol = self._protocol
            if protocol is None or self._paused:
                continue
            if time.monotonic() - self._last_data > self.config.idle_timeout_seconds:
                log.warning("AMI silent for %.0fs; dropping the connection", self.config.idle_timeout_seconds)
                protocol.transport.abort()

    # -- use ----------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.booted and self._protocol is not None

    def drop(self) -> None:
        """Close the connection as if the network failed (it is reconnected)."""
        if self._protocol is not None:
            self._protocol.transport.abort()

    def pause_reading(self) -> None:
        if not self._paused:
            self._paused = True
            if self._protocol is not None:
                self._protocol.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._protocol is not None:
                self._protocol.transport.resume_reading()
            self._last_data = time.monotonic()

    async def send(self, action: dict[str, str], *, timeout: float | None = None) -> Message | list[Message]:
        """Send an action; a list action (EventList) and an Originate answer with all their messages."""
        if not self.connected or self._manager is None:
            raise AmiUnavailable("not logged in to the AMI")
        timeout = timeout or self.config.action_timeout_seconds
        # panoramisk reads `Async` of every action whose answer ends in "successfully queued"
        # (Originate, Atxfer) and raises KeyError without it (THIRD-PARTY.md, trap 1); Asterisk
        # ignores the header where it means nothing.
        if action.get("Action", "").lower() == "originate":
            action = {"Async": "true", **action}
            # The answer is the OriginateResponse, which comes when the phone answers or gives up.
            ring_ms = action.get("Timeout", "30000")
            timeout += int(ring_ms) / 1000 if ring_ms.isdigit() else 30.0
        else:
            action = {"Async": "false", **action}
        future = self._manager.send_action(dict(action))
        try:
            result: Message | list[Message] = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            protocol = self._protocol
            if protocol is not None:
                for key in [k for k, v in protocol.responses.items() if v.future is future]:
                    protocol.responses.pop(key, None)
            raise
        first = result[0] if isinstance(result, list) else result
        if first.get("Response") == "Error":
            raise AmiActionFailed(f"{action.get('Action')}: {first.get('Message', '')}")
        return result
