"""`create_app()`: the one public entry of the platform on :8000.

uvicorn gateway.main:create_app --factory --port 8000
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, WebSocketRoute
from starlette.types import ASGIApp

from callcenter_common.auth import RevocationList, TokensRevoked, TokenVerifier, load_revocations
from callcenter_common.bus import Bus, bus_from_settings
from callcenter_common.events import Envelope
from callcenter_common.observability import ObservabilityMiddleware
from callcenter_common.problems import install_problem_handlers
from gateway.config import GatewaySettings
from gateway.endpoints import gateway_router
from gateway.openapi import MergedOpenApi
from gateway.proxy import ProxyRouter, ServiceProxy, unknown_service
from gateway.push import PushHub, ReplayBuffer
from gateway.ratelimit import RateLimitMiddleware, TokenBuckets, TokenUsers
from gateway.stream import PushStream
from gateway.upstreams import Upstreams

EXPOSED_HEADERS = ["X-Correlation-ID", "Retry-After", "Content-Range", "Accept-Ranges", "Content-Disposition"]


def create_app(
    settings: GatewaySettings | None = None,
    *,
    bus: Bus | None = None,
    services: Mapping[str, ASGIApp] | None = None,
) -> FastAPI:
    """The gateway; `services` maps service names to in-process apps (embedded mode).

    Embedded apps are called through `httpx.ASGITransport`; their lifespans are the
    caller's to run.  Services not in `services` are reached at their base URLs.
    A `bus` passed in is the caller's to start and close.
    """
    settings = settings or GatewaySettings()
    platform = settings.platform
    owns_bus = bus is None
    bus = bus if bus is not None else bus_from_settings(platform)
    upstreams = Upstreams(settings, services)
    revocations = RevocationList()
    verifier = TokenVerifier(
        platform.load_jwt_public_key(),
        issuer=platform.jwt_issuer,
        audience=platform.jwt_audience,
        revocations=revocations,
    )
    hub = PushHub(
        ReplayBuffer(settings.push_replay_max_events, settings.push_replay_seconds),
        revocations,
        queue_size=settings.push_queue_size,
    )

    async def push_event(envelope: Envelope) -> None:
        hub.publish(envelope)

    async def revoke_tokens(envelope: Envelope) -> None:
        revocations.apply(TokensRevoked.from_envelope(envelope))
        hub.close_revoked()

    # Per-process queues: every replica pushes to its own sockets and keeps its own revocations.
    bus.subscribe("gateway.push", ["#"], push_event, exclusive=True)
    bus.subscribe("gateway.auth", [TokensRevoked.name], revoke_tokens, exclusive=True)
    # One INFO line per proxied request from httpx would cost more than the proxying.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owns_bus:
            await bus.start()
        loader = None
        if platform.revocations_url:
            loader = asyncio.create_task(load_revocations(platform.revocations_url, revocations))
        try:
            yield
        finally:
            if loader is not None:
                loader.cancel()
                await asyncio.gather(loader, return_exceptions=True)
            hub.close_all()
            await upstreams.aclose()
            if owns_bus:
                await bus.close()

    app = FastAPI(title="gateway", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.bus = bus
    app.state.upstreams = upstreams
    app.state.push = hub
    app.state.token_verifier = verifier
    install_problem_handlers(app)
    merged_openapi = MergedOpenApi(upstreams, cache_seconds=settings.openapi_cache_seconds, gateway_spec=app.openapi)
    app.include_router(gateway_router(bus, upstreams, merged_openapi, name=settings.service_name))
    stream = PushStream(hub, verifier, heartbeat_seconds=settings.push_heartbeat_seconds)
    app.router.routes.append(WebSocketRoute("/api/stream", stream.serve))
    app.router.routes.append(Mount("/api", app=unknown_service))

    # Last added runs first: observability, CORS, rate limit, then the proxy or FastAPI's router.
    proxies = [ServiceProxy(upstream, settings.upstream_timeout_seconds) for upstream in upstreams]
    app.add_middleware(ProxyRouter, proxies=proxies)
    app.add_middleware(
        RateLimitMiddleware,
        buckets=TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst),
        users=TokenUsers(verifier),
    )
    if settings.cors_origins:  # an SPA served from the gateway's own origin needs none
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(ObservabilityMiddleware, service=settings.service_name)
    return app
