"""`/api/stream`: the WebSocket a logged-in user's browser keeps open for pushed events.

Browsers cannot set headers on a WebSocket, so the token comes as `?token=`; an
`Authorization: Bearer` header works too.  `?since=<seq>` replays what was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.websockets import WebSocket

from callcenter_common.auth import Principal, TokenVerifier
from callcenter_common.problems import ProblemError
from gateway.push import CLOSE_UNAUTHORIZED, HEARTBEAT, PushClient, PushHub

CLOSE_BAD_REQUEST = 4400
CLOSE_TIMEOUT_SECONDS = 2.0


def _token(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("token")
    if token:
        return token
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class PushStream:
    def __init__(self, hub: PushHub, verifier: TokenVerifier, *, heartbeat_seconds: float) -> None:
        self.hub = hub
        self.verifier = verifier
        self.heartbeat_seconds = heartbeat_seconds

    async def serve(self, websocket: WebSocket) -> None:
        # Accept first: a close before the handshake reaches a browser as a bare 403, without the 4401 code.
        await websocket.accept()
        token = _token(websocket)
        try:
            if token is None:
                raise ProblemError(401, "auth.unauthenticated", "a token is required")
            principal = self.verifier.verify(token)
        except ProblemError as exc:
            await websocket.close(CLOSE_UNAUTHORIZED, exc.code)
            return
        since_text = websocket.query_params.get("since")
        try:
            since = int(since_text) if since_text else None
        except ValueError:
            await websocket.close(CLOSE_BAD_REQUEST, "since must be an integer seq")
            return
        client, backlog = self.hub.connect(principal, since)
        try:
            await self._serve(websocket, client, backlog)
        finally:
            self.hub.disconnect(client)

    async def _serve(self, websocket: WebSocket, client: PushClient, backlog: list[str]) -> None:
        sender = asyncio.create_task(self._send(websocket, client, backlog))
        receiver = asyncio.create_task(_until_disconnect(websocket))
        closed = asyncio.create_task(client.closed.wait())
        tasks = {sender, receiver, closed}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if receiver.done() and not receiver.cancelled():
            return  # the peer closed
        # A peer that stopped reading may never let the close frame out.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await websocket.close(client.close_code, client.close_reason)

    async def _send(self, websocket: WebSocket, client: PushClient, backlog: list[str]) -> None:
        # A token may pass `verify` within its leeway yet be expired: the stream ends at `exp`.
        expires_at = _expires_at(client.principal)
        if time.time() >= expires_at:
            client.close(CLOSE_UNAUTHORIZED, "auth.token_expired")
            return
        for message in backlog:
            await websocket.send_text(message)
        while True:
            try:
                async with asyncio.timeout(self.heartbeat_seconds):
                    message = await client.queue.get()
            except TimeoutError:
                message = HEARTBEAT
            if time.time() >= expires_at:
                client.close(CLOSE_UNAUTHORIZED, "auth.token_expired")
                return
            await websocket.send_text(message)


async def _until_disconnect(websocket: WebSocket) -> None:
    # The SPA sends nothing; reading is how a closed socket is noticed.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


def _expires_at(principal: Principal) -> float:
    exp = principal.claims.get("exp")
    return float(exp) if exp is not None else float("inf")
