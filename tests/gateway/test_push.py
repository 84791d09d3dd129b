"""`/api/stream`: bus events reach the WebSockets of the users they are addressed to.

The gateway runs under a real uvicorn, events travel through the real RabbitMQ, and
browsers are played by the `websockets` client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from testkit import wait_until
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callcenter_common.auth import TokenIssuer, TokensRevoked
from callcenter_common.bus import RabbitBus
from callcenter_common.events import Audience, Envelope
from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.push import PushHub

from .gatewaykit import Serve

RECEIVE_TIMEOUT = 5.0


class PushGateway:
    def __init__(self, address: str, hub: PushHub, bus: RabbitBus, tokens: TokenIssuer) -> None:
        self.address = address
        self.hub = hub
        self.bus = bus
        self.tokens = tokens

    def token(self, user_id: str, *groups: str, **kwargs: Any) -> str:
        return self.tokens.issue(user_id=user_id, work_number=user_id, groups=groups, **kwargs)

    def stream(
        self, token: str | None, since: int | str | None = None
    ) -> AbstractAsyncContextManager[ClientConnection]:
        query = [f"token={token}"] if token else []
        if since is not None:
            query.append(f"since={since}")
        return connect(f"ws://{self.address}/api/stream?{'&'.join(query)}", open_timeout=RECEIVE_TIMEOUT)

    async def connected(self, count: int) -> None:
        await wait_until(lambda: len(self.hub.clients) == count, timeout=RECEIVE_TIMEOUT)

    async def publish(self, n: int, **audience: Any) -> None:
        await self.bus.publish(
            Envelope(name="screen.popped", source="acd", data={"n": n}, audience=Audience(**audience))
        )


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT))
    return message


async def receive_event_numbers(ws: ClientConnection, count: int) -> list[int]:
    return [(await receive(ws))["event"]["data"]["n"] for _ in range(count)]


async def closed_code(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        await receive(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


@pytest.fixture
def push_gateway(
    bus: RabbitBus, gateway_settings: Callable[..., GatewaySettings], serve: Serve, tokens: TokenIssuer
) -> Callable[..., AbstractAsyncContextManager[PushGateway]]:
    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[PushGateway]:
        app = create_app(gateway_settings(**overrides), bus=bus)
        await bus.start()
        try:
            await bus.wait_connected(10)
            async with serve(app) as address:
                yield PushGateway(address, app.state.push, bus, tokens)
        finally:
            await bus.close()

    return running


async def test_push_stream_reaches_only_addressed_user(push_gateway: Any) -> None:
    async with push_gateway() as gw, gw.stream(gw.token("u1")) as alice, gw.stream(gw.token("u2")) as bob:
        await gw.connected(2)
        await gw.publish(1, user_ids=("u1",))
        await gw.publish(2, everyone=True)
        first = await receive(alice)
        assert first["event"]["data"] == {"n": 1}
        assert first["event"]["name"] == "screen.popped"
        assert first["event"]["audience"]["user_ids"] == ["u1"]
        assert (await receive(alice))["seq"] == first["seq"] + 1
        # bob's first message is the broadcast sent after alice's: alice's never reached him
        assert await receive_event_numbers(bob, 1) == [2]


async def test_push_stream_group_and_everyone_addressing(push_gateway: Any) -> None:
    async with (
        push_gateway() as gw,
        gw.stream(gw.token("u1", "team-east")) as east,
        gw.stream(gw.token("u2", "team-west")) as west,
        gw.stream(gw.token("u3", "team-east", "team-west")) as lead,
    ):
        await gw.connected(3)
        await gw.publish(1, group_ids=("team-east",))
        await gw.publish(2, group_ids=("team-west",))
        await gw.publish(3, everyone=True)
        assert await receive_event_numbers(east, 2) == [1, 3]
        assert await receive_event_numbers(west, 2) == [2, 3]
        assert await receive_event_numbers(lead, 3) == [1, 2, 3]


async def test_push_stream_reconnect_with_since_replays_missed_events(push_gateway: Any) -> None:
    async with push_gateway() as gw, gw.stream(gw.token("watcher", "ops")) as watcher:
        token = gw.token("u1", "team-east")
        async with gw.stream(token) as first_socket:
            await gw.connected(2)
            await gw.publish(1, user_ids=("u1",))
            last_seen = (await receive(first_socket))["seq"]
        await gw.publish(2, user_ids=("u1",))
        await gw.publish(3, user_ids=("u2",))  # someone else's
        await gw.publish(4, group_ids=("team-east",))
        await gw.publish(5, everyone=True)
        assert await receive_event_numbers(watcher, 1) == [5]  # the gateway has taken all of them in
        async with gw.stream(token, since=last_seen) as second_socket:
            replayed = [await receive(second_socket) for _ in range(3)]
            assert [m["event"]["data"]["n"] for m in replayed] == [2, 4, 5]
            assert all(m["seq"] > last_seen for m in replayed)
            await gw.publish(6, user_ids=("u1",))
            assert await receive_event_numbers(second_socket, 1) == [6]  # then live


async def test_push_stream_since_older_than_buffer_gets_gap_notice_first(push_gateway: Any) -> None:
    async with push_gateway(push_replay_max_events=2) as gw:
        token = gw.token("u1")
        async with gw.stream(token) as socket:
            await gw.connected(1)
            for n in range(1, 5):
                await gw.publish(n, user_ids=("u1",))
            seqs = [(await receive(socket))["seq"] for _ in range(4)]
        async with gw.stream(token, since=seqs[0]) as again:
            assert await receive(again) == {"type": "gap"}
            assert [(await receive(again))["seq"] for _ in range(2)] == seqs[2:]


async def test_push_stream_refuses_missing_or_bad_token_with_4401(push_gateway: Any) -> None:
    async with push_gateway() as gw:
        async with gw.stream(None) as anonymous:
            assert await closed_code(anonymous) == (4401, "auth.unauthenticated")
        async with gw.stream("not.a.jwt") as forged:
            assert await closed_code(forged) == (4401, "auth.token_invalid")
        async with gw.stream(gw.token("u1"), since="yesterday") as confused:
            assert await closed_code(confused) == (4400, "since must be an integer seq")
        expired = gw.token("u1", ttl_seconds=900, now=time.time() - 902)  # within verify's leeway, past exp
        async with gw.stream(expired) as late:
            assert await closed_code(late) == (4401, "auth.token_expired")
        header = {"Authorization": f"Bearer {gw.token('u1')}"}
        async with connect(f"ws://{gw.address}/api/stream", additional_headers=header) as by_header:
            await gw.connected(1)
            await gw.publish(1, user_ids=("u1",))
            assert await receive_event_numbers(by_header, 1) == [1]


async def test_push_stream_closes_socket_of_revoked_token(push_gateway: Any) -> None:
    async with push_gateway() as gw:
        token = gw.token("u1")
        async with gw.stream(token) as revoked, gw.stream(gw.token("u2")) as other:
            await gw.connected(2)
            await gw.bus.publish(TokensRevoked(user_id="u1", not_before=time.time() + 1).envelope("agent-state"))
            assert await closed_code(revoked) == (4401, "auth.token_revoked")
            await gw.publish(1, everyone=True)
            assert await receive_event_numbers(other, 1) == [1]
        async with gw.stream(token) as again:
            assert await closed_code(again) == (4401, "auth.token_revoked")


async def test_push_stream_sends_heartbeats_when_idle(push_gateway: Any) -> None:
    async with push_gateway(push_heartbeat_seconds=0.05) as gw, gw.stream(gw.token("u1")) as socket:
        assert await receive(socket) == {"type": "ping"}
