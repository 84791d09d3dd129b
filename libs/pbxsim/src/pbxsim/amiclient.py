"""A minimal AMI client on asyncio streams, for the scenario runner and for tests.

It keeps every frame in arrival order (`frames`), matches responses to actions by ActionID,
and collects EventList items until the `…Complete` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


def split_header(line: str) -> tuple[str, str] | None:
    """`Key: value` as Asterisk prints it; an empty value may lose its trailing space."""
    key, colon, value = line.partition(": ")
    if colon:
        return key, value
    return (line[:-1], "") if line.endswith(":") else None


def find_header(headers: list[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    return next((value for key, value in headers if key.lower() == lname), None)


@dataclass
class Frame:
    headers: list[tuple[str, str]]
    raw: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        value = find_header(self.headers, name)
        return default if value is None else value

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def names(self) -> list[str]:
        return [k for k, _ in self.headers]

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def is_response(self) -> bool:
        return bool(self.headers) and self.headers[0][0] == "Response"


def parse_frame(block: bytes) -> Frame:
    lines = block.decode("utf-8", errors="replace").split("\r\n")
    return Frame([h for h in map(split_header, lines) if h is not None], block)


@dataclass
class Pending:
    future: asyncio.Future[list[Frame]]
    frames: list[Frame] = field(default_factory=list)
    is_list: bool = False


class AmiClient:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.banner = ""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, Pending] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self.on_event: Callable[[Frame], None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, host: str, port: int) -> str:
        self._reader, self._writer = await asyncio.open_connection(host, port)
        self.banner = (await self._reader.readline()).decode().rstrip("\r\n")
        self._task = asyncio.ensure_future(self._read())
        return self.banner

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                block = await self._reader.readuntil(b"\r\n\r\n")
                frame = parse_frame(block[:-4])
                self.frames.append(frame)
                self._changed.set()
                self._route(frame)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            self._changed.set()
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(ConnectionError("AMI connection closed"))

    def _route(self, frame: Frame) -> None:
        action_id = frame.get("ActionID")
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is not None and (frame.is_response or pending.is_list) and frame.event != "OriginateResponse":
            pending.frames.append(frame)
            if frame.is_response:
                pending.is_list = frame.get("EventList") == "start"
            if not pending.is_list or frame.get("EventList") == "Complete":
                del self._pending[action_id]  # type: ignore[arg-type]
                pending.future.set_result(pending.frames)
            return
        if frame.event is not None and self.on_event is not None:
            self.on_event(frame)

    def send_raw(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def send(self, action: str, headers: list[tuple[str, str]] | None = None, **kwargs: str) -> list[Frame]:
        """Send an action and wait for its response (and, for list actions, every item and the
        Complete event). `headers` allows repeated headers such as Variable."""
        assert self._writer is not None
        action_id = kwargs.pop("ActionID", None) or f"pbxsim-{next(self._ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in (headers or [])]
        lines += [f"{k}: {v}" for k, v in kwargs.items()]
        future: asyncio.Future[list[Frame]] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = Pending(future)
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await future

    async def action(self, action: str, headers: list[tuple[str, str]] | None = None, **kwargs: str) -> Frame:
        return (await self.send(action, headers, **kwargs))[0]

    async def login(self, username: str, secret: str, events: str = "on") -> Frame:
        return await self.action("Login", Username=username, Secret=secret, Events=events)

    def events(self, name: str | None = None) -> list[Frame]:
        return [f for f in self.frames if f.event is not None and (name is None or f.event == name)]

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        """The first frame received so far or later that matches."""
        seen = 0

        async def scan() -> Frame:
            nonlocal seen
            while True:
                for frame in self.frames[seen:]:
                    if predicate(frame):
                        return frame
                seen = len(self.frames)
                if self.closed.is_set():
                    raise ConnectionError("AMI connection closed")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def ping_barrier(self) -> None:
        """After this, every event the server emitted before it handled the Ping has been read."""
        await self.action("Ping")
