"""AMI over TCP: framing, login, event fan-out (12-login-variants.txt and the README surprises).

Frames are CRLF lines ending with an empty line; header names are case-insensitive; lines
without a colon are ignored. Output to a session is queued as bytes and written once per
loop iteration, so bursts of events cost one write each, not one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pbxsim.config import SimConfig
from pbxsim.events import EventClass

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
ALL_CLASSES = frozenset(EventClass)
CLASS_NAMES = {c.value: c for c in EventClass}


class AmiMessage:
    """An action as received: headers in order, looked up case-insensitively."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    @property
    def action(self) -> str:
        return (self.get("Action") or "").strip()

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


def event_mask(value: str | None) -> frozenset[EventClass]:
    """Events / EventMask: on, off, or a comma list of classes (manager.c strings_to_mask)."""
    if value is None:
        return ALL_CLASSES
    text = value.strip().lower()
    if text in ("on", "yes", "true", "y", "t", "1", "all"):
        return ALL_CLASSES
    if text in ("off", "no", "false", "n", "f", "0", ""):
        return frozenset()
    names = {part.strip() for part in text.split(",")}
    if "all" in names:
        return ALL_CLASSES
    return frozenset(CLASS_NAMES[n] for n in names if n in CLASS_NAMES)


def tv(seconds: float) -> str:
    """Asterisk's EventTV format: 2026-11-30T01:00:37.511+0000."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def response(status: str, action_id: str | None, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"Response: {status}"]
    if action_id is not None:
        lines.append(f"ActionID: {action_id}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class AmiSession:
    def __init__(self, server: AmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.authenticated = False
        self.username: str | None = None
        self.classes: frozenset[EventClass] = frozenset()
        self.challenge: str | None = None
        self.session_id = f"0x{random.randrange(0x7F0000000000, 0x7FFFFFFFFFFF):x}"
        self.closed = False
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        local = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.remote = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        self.local = f"IPV4/TCP/{local[0]}/{local[1]}"

    # -- output ------------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self._pending.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.closed or not self._pending:
            self._pending.clear()
            return
        data = b"".join(self._pending)
        self._pending.clear()
        transport = self.writer.transport
        if transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.server.config.write_buffer_limit:
            log.warning("AMI client %s does not read; dropping it", self.remote)
            self.abort()

    def respond(self, msg: AmiMessage, status: str, headers: list[tuple[str, str]] | None = None) -> None:
        self.send(response(status, msg.action_id, headers or []))

    def success(self, msg: AmiMessage, message: str | None = None) -> None:
        self.respond(msg, "Success", [("Message", message)] if message is not None else [])

    def error(self, msg: AmiMessage, message: str) -> None:
        self.respond(msg, "Error", [("Message", message)])

    async def drain_and_close(self) -> None:
        self._flush()
        self.closed = True
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()
        self.writer.close()

    def abort(self) -> None:
        self.closed = True
        self._pending.clear()
        self.server.forget(self)
        self.writer.transport.abort()

    # -- input -------------------------------------------------------------------------------------
    async def serve(self) -> None:
        self.writer.write(BANNER)
        headers: list[tuple[str, str]] = []
        try:
            while not self.closed:
                raw = await self.reader.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.strip():
                    key, colon, value = line.partition(":")
                    if colon:  # a line without a colon is ignored (12, connection 2)
                        headers.append((key.strip(), value.lstrip(" ")))
                    continue
                if headers:
                    message, headers = AmiMessage(headers), []
                    await self.server.dispatch(self, message)
        except (ConnectionError, OSError, asyncio.LimitOverrunError, ValueError) as exc:
            log.debug("AMI session %s ended: %s", self.remote, exc)
        finally:
            self.closed = True
            self.server.forget(self)
            if not self.writer.is_closing():
                self.writer.close()


Handler = Callable[[AmiSession, AmiMessage], Awaitable[None] | None]


class AmiServer:
    def __init__(self, config: SimConfig, wall: Callable[[], float]) -> None:
        self.config = config
        self.wall = wall
        self.sessions: set[AmiSession] = set()
        self.handlers: dict[str, Handler] = {}
        self._listeners: dict[EventClass, list[AmiSession]] = {c: [] for c in EventClass}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = wall()
        self.on_error: Callable[[BaseException], None] = lambda exc: None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.config.host, self.config.port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Asterisk says goodbye with a Shutdown event before it closes the connections."""
        if self._server is not None:
            self._server.close()
        self.broadcast(
            EventClass.SYSTEM,
            b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: False\r\n\r\n",
        )
        for session in list(self.sessions):
            await session.drain_and_close()
        await self.drop_clients()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.serve()
        except asyncio.CancelledError:
            pass  # drop_clients() cut this connection; asyncio would log the cancellation otherwise
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def drop_clients(self) -> None:
        """Cut every AMI connection, as an Asterisk restart would (actions in progress are dropped)."""
        for session in list(self.sessions):
            session.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def forget(self, session: AmiSession) -> None:
        self.sessions.discard(session)
        self._set_classes(session, frozenset())

    def _set_classes(self, session: AmiSession, classes: frozenset[EventClass]) -> None:
        for klass in EventClass:
            listeners = self._listeners[klass]
            if klass in classes and session not in listeners:
                listeners.append(session)
            elif klass not in classes and session in listeners:
                listeners.remove(session)
        session.classes = classes

    def set_events(self, session: AmiSession, classes: frozenset[EventClass]) -> None:
        self._set_classes(session, classes if session.authenticated and not session.closed else frozenset())

    # -- EventSink ---------------------------------------------------------------------------------
    def listening(self, klass: EventClass) -> bool:
        return bool(self._listeners[klass])

    def broadcast(self, klass: EventClass, frame: bytes) -> None:
        for session in self._listeners[klass]:
            session.send(frame)

    def send_raw(self, data: bytes) -> None:
        for session in self.sessions:
            if session.authenticated:
                session.send(data)

    # -- actions -----------------------------------------------------------------------------------
    async def dispatch(self, session: AmiSession, msg: AmiMessage) -> None:
        action = msg.action.lower()
        if not action:
            session.error(msg, "Missing action in request")
            return
        if not session.authenticated and action not in ("login", "challenge", "logoff"):
            session.error(msg, "Permission denied")
            return
        handler = self.handlers.get(action)
        if handler is None:
            session.error(
                msg, f"Invalid/unknown command: {msg.action}. Use Action: ListCommands to show available commands."
            )
            return
        try:
            result = handler(session, msg)
            if result is not None:
                await result
        except Exception as exc:
            log.exception("AMI action %s failed", msg.action)
            self.on_error(exc)
            session.error(msg, "Internal error")

    # -- login (12-login-variants.txt) --------------------------------------------------------------
    async def login(self, session: AmiSession, msg: AmiMessage) -> None:
        if session.authenticated:
            session.success(msg, "Already authenticated")
            return
        username = msg.get("Username") or ""
        secret = self.config.users.get(username)
        ok = False
        if secret is not None:
            if (msg.get("AuthType") or "").lower() == "md5":
                key = (msg.get("Key") or "").lower()
                expected = hashlib.md5(f"{session.challenge or ''}{secret}".encode()).hexdigest()
                ok = session.challenge is not None and key == expected
            else:
                ok = msg.get("Secret") == secret
        if not ok:
            if self.config.failed_login_delay > 0:
                await asyncio.sleep(self.config.failed_login_delay)
            session.error(msg, "Authentication failed")
            await session.drain_and_close()
            return
        session.authenticated = True
        session.username = username
        session.success(msg, "Authentication accepted")
        classes = event_mask(msg.get("Events"))
        self.set_events(session, classes)
        if EventClass.SYSTEM in classes:
            uptime = int(self.wall() - self.started)
            session.send(
                f"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {uptime}\r\nLastReload: {uptime}\r\n"
                "Status: Fully Booted\r\n\r\n".encode()
            )
        if self.listening(EventClass.SECURITY):
            stamp = tv(self.wall())
            self.broadcast(
                EventClass.SECURITY,
                (
                    "Event: SuccessfulAuth\r\nPrivilege: security,all\r\n"
                    f"EventTV: {stamp}\r\nSeverity: Informational\r\nService: AMI\r\nEventVersion: 1\r\n"
                    f"AccountID: {username}\r\nSessionID: {session.session_id}\r\n"
                    f"LocalAddress: {session.local}\r\nRemoteAddress: {session.remote}\r\n"
                    f"UsingPassword: 0\r\nSessionTV: {stamp}\r\n\r\n"
                ).encode(),
            )

    def challenge(self, session: AmiSession, msg: AmiMessage) -> None:
        if (msg.get("AuthType") or "").lower() != "md5":
            session.error(msg, "Must specify AuthType")
            return
        if session.challenge is None:
            session.challenge = str(random.randrange(100_000_000, 999_999_999))
        session.respond(msg, "Success", [("Challenge", session.challenge)])

    async def logoff(self, session: AmiSession, msg: AmiMessage) -> None:
        session.respond(msg, "Goodbye", [("Message", "Thanks for all the fish.")])
        await session.drain_and_close()

    def ping(self, session: AmiSession, msg: AmiMessage) -> None:
        session.respond(msg, "Success", [("Ping", "Pong"), ("Timestamp", f"{self.wall():.6f}")])

    def events(self, session: AmiSession, msg: AmiMessage) -> None:
        classes = event_mask(msg.get("EventMask"))
        self.set_events(session, classes)
        session.respond(msg, "Success", [("Events", "On" if classes else "Off")])
