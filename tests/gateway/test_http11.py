"""The proxy's HTTP/1.1 pool against services played by raw TCP servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from gateway.http11 import HIGH_WATER, Http11Pool, Origin, Timeouts

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@asynccontextmanager
async def tcp_service(handler: Handler) -> AsyncIterator[tuple[Origin, list[int]]]:
    """A service on 127.0.0.1; the handler gets each connection's number; yields the origin and those numbers."""
    connections: list[int] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        try:
            await handler(reader, writer, len(connections))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    async with server:
        yield ("http", "127.0.0.1", server.sockets[0].getsockname()[1]), connections


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


async def get(pool: Http11Pool, origin: Origin, target: bytes = b"/") -> tuple[int, bytes]:
    response = await pool.request(origin, b"GET", target, [(b"host", b"svc")])
    try:
        return response.status, b"".join([chunk async for chunk in response.aiter_body()])
    finally:
        await response.aclose()


async def test_pool_keeps_the_connection_alive_between_requests() -> None:
    async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(OK)

    pool = Http11Pool()
    async with tcp_service(answer_each) as (origin, connections):
        assert [await get(pool, origin) for _ in range(3)] == [(200, b"ok")] * 3
        assert connections == [1]
    await pool.aclose()


async def test_pool_resends_a_bodiless_request_the_service_dropped_on_a_kept_alive_connection() -> None:
    async def answer_once_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(OK)
        await read_request(reader)  # the next request on this connection: hang up without answering

    pool = Http11Pool()
    async with tcp_service(answer_once_per_connection) as (origin, connections):
        assert await get(pool, origin) == (200, b"ok")
        assert await get(pool, origin) == (200, b"ok")  # sent again on a new connection
        assert connections == [1, 2]

        async def body() -> AsyncIterator[bytes]:
            yield b"payment"

        with pytest.raises(httpx.RemoteProtocolError):  # a body may have had effects: not sent twice
            await pool.request(origin, b"POST", b"/pay", [(b"host", b"svc"), (b"content-length", b"7")], body())
    await pool.aclose()


async def test_pool_streams_a_large_chunked_response_intact() -> None:
    piece = bytes(range(256)) * 256  # 64 KiB
    pieces = 4 * HIGH_WATER // len(piece)

    async def stream_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(pieces):
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await read_request(reader)
        writer.write(OK)

    pool = Http11Pool()
    async with tcp_service(stream_chunked) as (origin, connections):
        status, body = await get(pool, origin)
        assert status == 200
        assert body == piece * pieces
        assert await get(pool, origin) == (200, b"ok")  # fully read: the connection went back to the pool
        assert connections == [1]
    await pool.aclose()


async def test_pool_does_not_reuse_a_connection_whose_body_was_not_read() -> None:
    async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")  # the rest never comes

    pool = Http11Pool()
    async with tcp_service(answer_each) as (origin, connections):
        for _ in range(2):
            response = await pool.request(origin, b"GET", b"/", [(b"host", b"svc")])
            await response.aclose()  # the caller gave up on the body
        assert connections == [1, 2]
    await pool.aclose()


async def test_pool_reports_refused_connection_and_read_timeout_as_httpx_errors() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await reader.read()

    pool = Http11Pool(timeouts=Timeouts(read=0.05))
    async with tcp_service(never_answer) as (origin, _):
        with pytest.raises(httpx.ReadTimeout):
            await get(pool, origin)
    with pytest.raises(httpx.ConnectError):
        await get(pool, origin)  # the server is gone now
    await pool.aclose()


async def test_pool_bounds_busy_connections_and_times_out_waiting_for_one() -> None:
    async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await read_request(reader)
            writer.write(OK)

    pool = Http11Pool(max_connections=1, timeouts=Timeouts(pool=0.05))
    async with tcp_service(answer_each) as (origin, connections):
        held = await pool.request(origin, b"GET", b"/", [(b"host", b"svc")])
        with pytest.raises(httpx.PoolTimeout):
            await get(pool, origin)
        waiting = asyncio.create_task(pool.request(origin, b"GET", b"/", [(b"host", b"svc")], timeouts=Timeouts()))
        await asyncio.sleep(0)
        assert not waiting.done()
        _ = [chunk async for chunk in held.aiter_body()]
        await held.aclose()  # hands its slot to the waiting request
        second = await asyncio.wait_for(waiting, 5)
        await second.aclose()
        assert connections == [1]
    await pool.aclose()


async def test_pool_works_as_the_transport_of_an_httpx_client() -> None:
    async def echo_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        body = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\nX-A: 1\r\n\r\n%b" % (len(body), body))

    async def parts() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    async with tcp_service(echo_body) as (origin, _), httpx.AsyncClient(transport=Http11Pool()) as client:
        r = await client.post(f"http://127.0.0.1:{origin[2]}/x", content=parts())
    assert r.status_code == 201
    assert r.content == b"hello world"
    assert r.headers["x-a"] == "1"
