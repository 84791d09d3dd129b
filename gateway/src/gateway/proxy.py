"""The reverse proxy: `/api/<service>/<path>` → `<service base>/<path>`, streamed both ways.

Pure ASGI on the hot path: no request parsing beyond the headers, no body buffering
over HTTP, upstream headers and bytes passed through as they come.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from urllib.parse import quote

import httpx
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from callcenter_common.catalog import SERVICES
from callcenter_common.observability import correlation_id
from callcenter_common.problems import ProblemError, problem_response
from gateway.http11 import Http11Response
from gateway.upstreams import Upstream

log = logging.getLogger("gateway.proxy")

UPSTREAM_ERRORS = Counter("gateway_upstream_errors_total", "Proxied requests that got no response", ["service", "kind"])

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# uvicorn answers `Expect: 100-continue` itself when the body is read; the service must not wait for it.
REQUEST_DROPPED = frozenset({b"expect"})
# Set again by the proxy itself (an X-Forwarded-Host from a proxy in front is kept).
REQUEST_REPLACED = frozenset({b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-correlation-id"})
# The gateway's server and ObservabilityMiddleware send their own.
RESPONSE_REPLACED = frozenset({b"date", b"server", b"x-correlation-id"})


class ClientDisconnected(Exception):
    """The caller went away while its request body was being forwarded."""


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    # Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1).
    named = [v for k, v in headers if k.lower() == b"connection"]
    if not named:
        return frozenset()
    return frozenset(t.strip().lower() for v in named for t in v.split(b","))


def _request_headers(scope: Scope, cid: str) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Headers for the upstream, and whether the request has a body."""
    incoming: list[tuple[bytes, bytes]] = scope["headers"]
    extra = _connection_tokens(incoming)
    headers: list[tuple[bytes, bytes]] = []
    forwarded_for = b""
    host = b""
    forwarded_host = False  # set by a proxy in front: kept as it came
    has_body = False
    for key, value in incoming:
        key = key.lower()
        if key == b"content-length":
            has_body = value.strip() != b"0"
        elif key == b"transfer-encoding":
            has_body = True
        elif key == b"x-forwarded-for":
            forwarded_for = forwarded_for + b", " + value if forwarded_for else value
        elif key == b"host":
            host = value
        elif key == b"x-forwarded-host":
            forwarded_host = True
        if key in HOP_BY_HOP or key in REQUEST_REPLACED or key in REQUEST_DROPPED or key in extra:
            continue
        headers.append((key, value))
    client = scope.get("client")
    if client:
        ip = client[0].encode()
        forwarded_for = forwarded_for + b", " + ip if forwarded_for else ip
    if forwarded_for:
        headers.append((b"x-forwarded-for", forwarded_for))
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    if host and not forwarded_host:
        headers.append((b"x-forwarded-host", host))
    headers.append((b"x-correlation-id", cid.encode("latin-1")))
    return headers, has_body


def _response_headers(response: Http11Response | _HttpxResponse) -> list[tuple[bytes, bytes]]:
    raw = response.headers  # names already lowercased
    extra = _connection_tokens(raw)
    out = []
    for key, value in raw:
        if key in HOP_BY_HOP or key in RESPONSE_REPLACED or key in extra:
            continue
        out.append((key, value))
    return out


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        body: bytes = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _HttpxResponse:
    """An embedded service's `httpx.Response`, read like an `Http11Response`."""

    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [(k.lower(), v) for k, v in response.headers.raw]

    def aiter_body(self) -> AsyncIterator[bytes]:
        return self._response.aiter_raw()

    @property
    def finished(self) -> bool:
        return False  # not known before the iterator ends

    async def aclose(self) -> None:
        await self._response.aclose()


class ServiceProxy:
    """ASGI app for `/api/<service>[/…]` (see `ProxyRouter`): forwards the rest of the path to the service."""

    def __init__(self, upstream: Upstream, timeout_seconds: float) -> None:
        self.upstream = upstream
        self.prefix = self.path = f"/api/{upstream.name}"
        self._raw_prefix = self.prefix.encode()
        # ASGITransport has no timeouts of its own; the pool has them per read.
        self._embedded_timeout = timeout_seconds if upstream.embedded else None

    def _target(self, scope: Scope) -> bytes:
        raw_path: bytes | None = scope.get("raw_path")
        if raw_path is not None and raw_path.startswith(self._raw_prefix):
            path = raw_path[len(self._raw_prefix) :]
        else:
            path = quote(scope["path"][len(self.prefix) :], safe="/:@!$&'()*+,;=-._~").encode()
        target = self.upstream.path_prefix + (path or b"/")
        query: bytes = scope.get("query_string", b"")
        return target + b"?" + query if query else target

    async def _forward(
        self, scope: Scope, receive: Receive, headers: list[tuple[bytes, bytes]], has_body: bool
    ) -> Http11Response | _HttpxResponse:
        body = _request_body(receive) if has_body else None
        upstream = self.upstream
        if upstream.pool is not None:
            headers.append((b"host", upstream.host))
            method = scope["method"].encode()
            return await upstream.pool.request(upstream.origin, method, self._target(scope), headers, body)
        url = upstream.base_url + self._target(scope).decode("latin-1")
        request = httpx.Request(scope["method"], url, headers=headers, content=body)
        async with asyncio.timeout(self._embedded_timeout):
            return _HttpxResponse(await upstream.client.send(request, stream=True))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cid = correlation_id.get() or uuid.uuid4().hex
        headers, has_body = _request_headers(scope, cid)
        try:
            response = await self._forward(scope, receive, headers, has_body)
        except ClientDisconnected:
            return
        except (httpx.TransportError, TimeoutError) as exc:
            # Sent from here: the proxy runs outside FastAPI's exception handlers.
            await problem_response(self._problem(exc), scope["path"])(scope, receive, send)
            return
        caller_left: asyncio.Task[None] | None = None
        try:
            await send(
                {"type": "http.response.start", "status": response.status, "headers": _response_headers(response)}
            )
            async for chunk in response.aiter_body():
                # Most answers fit one chunk: saying it is the last spares a message through every middleware.
                last = response.finished
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                if last:
                    break
                if caller_left is None:  # a long body (a recording): stop pulling it once the caller has gone
                    caller_left = asyncio.create_task(_until_disconnect(receive))
                elif caller_left.done():
                    break
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.TransportError:
            # Too late for a problem response: the status is out. Abort so the caller sees a cut body.
            UPSTREAM_ERRORS.labels(self.upstream.name, "cut").inc()
            log.warning("response of %s was cut for %s %s", self.upstream.name, scope["method"], scope["path"])
            raise
        finally:
            if caller_left is not None:
                caller_left.cancel()
            await response.aclose()

    def _problem(self, exc: Exception) -> ProblemError:
        name = self.upstream.name
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            UPSTREAM_ERRORS.labels(name, "unavailable").inc()
            return ProblemError(
                503,
                "gateway.service_unavailable",
                "Service unavailable",
                detail=f"the {name} service is not reachable",
                service=name,
                headers={"Retry-After": "1"},
            )
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            UPSTREAM_ERRORS.labels(name, "timeout").inc()
            return ProblemError(
                504,
                "gateway.timeout",
                "Service timed out",
                detail=f"the {name} service did not answer in time",
                service=name,
            )
        UPSTREAM_ERRORS.labels(name, "protocol").inc()
        return ProblemError(
            502, "gateway.bad_gateway", "Bad gateway", detail=f"the {name} service broke the connection", service=name
        )


class ProxyRouter:
    """Pure ASGI, in front of FastAPI's router: `/api/<service>[/…]` goes straight to that service's proxy."""

    def __init__(self, app: ASGIApp, proxies: Iterable[ServiceProxy]) -> None:
        self.app = app
        self.proxies = {p.upstream.name: p for p in proxies}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/api/"):
                proxy = self.proxies.get(path[5:].partition("/")[0])
                if proxy is not None:
                    scope["route"] = proxy  # ObservabilityMiddleware labels metrics with its `path`
                    await proxy(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def unknown_service(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI app mounted at `/api` after every real route: names the services there are."""
    if scope["type"] == "websocket":  # the only WebSocket is /api/stream; services are proxied over HTTP
        await send({"type": "websocket.close", "code": 1008})
        return
    name = scope["path"].removeprefix("/api/").split("/", 1)[0]
    known = ", ".join(s.name for s in SERVICES)
    raise ProblemError(404, "gateway.unknown_service", "No such service", detail=f"no service {name!r}; known: {known}")
