"""A lean keep-alive HTTP/1.1 client pool: the proxy's hot path, and an httpx transport for the rest.

httpcore's pool walks every connection on every request and httpx's client layer costs
~70 µs a request; with 32 concurrent callers that held the gateway to a tenth of a
service's throughput (bench/gateway.py).  Here idle connections wait on a stack, responses
are parsed by httptools (llhttp, as in uvicorn), and bodies stream both ways with flow
control.  Errors are httpx's exception types, so callers handle both paths alike.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import httptools
import httpx

Origin = tuple[str, str, int]  # scheme, host, port
Headers = list[tuple[bytes, bytes]]

HIGH_WATER = 256 * 1024  # bytes of response body buffered before reading from the service pauses
LOW_WATER = 64 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; None waits for ever."""

    connect: float | None = 5.0
    read: float | None = 30.0
    write: float | None = 30.0
    pool: float | None = 5.0


class _HeadResponseDone(Exception):
    """Raised inside the parser: a response to HEAD has headers only, whatever they announce."""


def _time_out(waiter: asyncio.Future[None], error: type[httpx.TimeoutException], message: str) -> None:
    if not waiter.done():
        waiter.set_exception(error(message))


class _Connection(asyncio.Protocol):
    """One TCP connection to a service, one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._can_write = True
        self._drain_waiter: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.begin(head_only=False)
        self.in_exchange = False

    def begin(self, *, head_only: bool) -> None:
        self.in_exchange = True
        self.head_only = head_only
        self.status = 0
        self.headers: Headers = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.error: Exception | None = None
        self._length_known = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.in_exchange:  # nothing is owed to an idle connection
            self.close()
            return
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HeadResponseDone):
                self._fail(httpx.RemoteProtocolError(f"bad response from the service: {exc}"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"bad response from the service: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.complete and not self._length_known:
            self.complete = True  # a body delimited by the end of the connection
        elif not self.complete and self.error is None:
            self.error = httpx.RemoteProtocolError("the service closed the connection")
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._can_write = False

    def resume_writing(self) -> None:
        self._can_write = True
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self._length_known = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 1xx: informational, the real response follows
            self.headers = []
            self._length_known = False
            return
        self.status = status
        self.head_done = True
        self.keep_alive = self._parser.should_keep_alive()
        if status in (204, 304):
            self._length_known = True
        self._wake()
        if self.head_only:
            # llhttp cannot be told the request was HEAD; stop it here and retire the connection.
            self.complete, self.keep_alive = True, False
            raise _HeadResponseDone

    def on_body(self, body: bytes) -> None:
        self.chunks.append(bytes(body))
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True
            self._wake()

    # used by the pool

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise httpx.RemoteProtocolError("the service closed the connection")
        self.transport.write(data)

    async def drain(self, timeout: float | None) -> None:
        if self._can_write or self.closed:
            return
        self._drain_waiter = waiter = self._loop.create_future()
        message = "the service did not take the request body in time"
        timer = (
            None if timeout is None else self._loop.call_later(timeout, _time_out, waiter, httpx.WriteTimeout, message)
        )
        try:
            await waiter
        finally:
            self._drain_waiter = None
            if timer is not None:
                timer.cancel()

    async def wait(self, timeout: float | None) -> None:
        """Until the parser has made progress (or the connection ended)."""
        # A timer handle, not asyncio.timeout(): this runs a few times per proxied request.
        self._waiter = waiter = self._loop.create_future()
        message = "the service did not answer in time"
        timer = (
            None if timeout is None else self._loop.call_later(timeout, _time_out, waiter, httpx.ReadTimeout, message)
        )
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def take_chunk(self) -> bytes:
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self._reading_paused and self.buffered < LOW_WATER and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        self.error = error
        self._wake()
        self.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Http11Response:
    """Status and headers (names lowercased) of a service's answer; the body is read as it comes."""

    __slots__ = ("_conn", "_done", "_origin", "_pool", "_read_timeout", "headers", "status")

    def __init__(self, pool: Http11Pool, origin: Origin, conn: _Connection, read_timeout: float | None) -> None:
        self._pool = pool
        self._origin = origin
        self._conn = conn
        self._read_timeout = read_timeout
        self._done = False
        self.status = conn.status
        self.headers = conn.headers

    async def aiter_body(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.chunks:
                yield conn.take_chunk()
            elif conn.complete:
                return
            elif conn.error is not None:
                raise conn.error
            else:
                await conn.wait(self._read_timeout)

    @property
    def finished(self) -> bool:
        """The whole body has been taken."""
        return self._conn.complete and not self._conn.chunks

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        conn = self._conn
        reusable = conn.complete and conn.keep_alive and not conn.closed and not conn.chunks
        self._pool._release(self._origin, conn, reusable=reusable)


class _HttpxStream(httpx.AsyncByteStream):
    def __init__(self, response: Http11Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_body():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class Http11Pool(httpx.AsyncBaseTransport):
    """Keep-alive connections per origin, most recently used first, at most `max_connections` busy."""

    def __init__(
        self,
        *,
        max_connections: int = 256,
        timeouts: Timeouts = Timeouts(),
        keepalive_expiry: float = 4.0,  # below uvicorn's 5 s, so the service is not the one to close first
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.timeouts = timeouts
        self.keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._busy = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._all: set[_Connection] = set()

    async def request(
        self,
        origin: Origin,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: AsyncIterable[bytes] | None = None,
        timeouts: Timeouts | None = None,
    ) -> Http11Response:
        """Send a request; `headers` must carry `host`, and `content-length` when the body's size is known."""
        timeouts = timeouts or self.timeouts
        await self._take_slot(timeouts.pool)
        try:
            chunked = body is not None and not any(k.lower() == b"content-length" for k, _ in headers)
            if chunked:
                headers = [
                    *(h for h in headers if h[0].lower() != b"transfer-encoding"),
                    (b"transfer-encoding", b"chunked"),
                ]
            head = b"".join(
                [method, b" ", target, b" HTTP/1.1\r\n", *(k + b": " + v + b"\r\n" for k, v in headers), b"\r\n"]
            )
            head_only = method == b"HEAD"
            while True:
                conn, reused = await self._connection(origin, timeouts.connect)
                conn.begin(head_only=head_only)
                try:
                    conn.write(head)
                    if body is not None:
                        await self._send_body(conn, body, chunked, timeouts.write)
                    while not conn.head_done:
                        if conn.error is not None:
                            raise conn.error
                        await conn.wait(timeouts.read)
                except httpx.RemoteProtocolError:
                    conn.close()
                    self._all.discard(conn)
                    # A kept-alive connection the service closed meanwhile: try a fresh one, if the
                    # request can be sent again.
                    if reused and body is None and not conn.received_any:
                        continue
                    raise
                except BaseException:
                    conn.close()
                    self._all.discard(conn)
                    raise
                return Http11Response(self, origin, conn, timeouts.read)
        except BaseException:
            self._give_slot()
            raise

    async def _send_body(
        self, conn: _Connection, body: AsyncIterable[bytes], chunked: bool, timeout: float | None
    ) -> None:
        async for chunk in body:
            if not chunk:
                continue
            conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            await conn.drain(timeout)
            if conn.head_done:  # the service answered before taking it all (e.g. 413)
                conn.keep_alive = False
                return
        if chunked:
            conn.write(b"0\r\n\r\n")

    async def _connection(self, origin: Origin, connect_timeout: float | None) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_expiry:
                return conn, True
            conn.close()
            self._all.discard(conn)
        return await self._connect(origin, connect_timeout), False

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            self._ssl_context = tls = self._ssl_context or ssl.create_default_context()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        self._all.add(conn)
        return conn

    def _release(self, origin: Origin, conn: _Connection, *, reusable: bool) -> None:
        conn.in_exchange = False
        if reusable:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()
            self._all.discard(conn)
        self._give_slot()

    async def _take_slot(self, timeout: float | None) -> None:
        if self._busy < self.max_connections and not self._slot_waiters:
            self._busy += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter  # the releaser hands its slot over: _busy stays counted
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._give_slot()  # handed a slot just as the wait ended: pass it on
            elif waiter in self._slot_waiters:
                self._slot_waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("every connection to the services is busy") from exc
            raise

    def _give_slot(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._busy -= 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin: Origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"transfer-encoding"]
        has_body = any(k.lower() == b"content-length" and v != b"0" for k, v in headers) or (
            "transfer-encoding" in request.headers
        )
        stream = request.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        given: dict[str, Any] = request.extensions.get("timeout", {})
        default = self.timeouts
        timeouts = Timeouts(
            connect=given.get("connect", default.connect),
            read=given.get("read", default.read),
            write=given.get("write", default.write),
            pool=given.get("pool", default.pool),
        )
        response = await self.request(
            origin, request.method.encode(), url.raw_path, headers, stream if has_body else None, timeouts
        )
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=_HttpxStream(response),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
