"""Fixtures of the gateway tests: the gateway in front of real services, on the real broker.

- `echo_service(bus)`: a service built with callcenter_common.service (PostgreSQL, the given
  bus) whose endpoints echo the request, validate input, need a token, or stream.
- `gateway_settings(**overrides)`: every service not given points at a closed port.
- `serve(app)`: runs an app under a real uvicorn on 127.0.0.1 and gives its base URL.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from callcenter_common.bus import Bus, RabbitBus, bus_from_settings
from callcenter_common.catalog import SERVICES
from callcenter_common.service import ServiceRuntime, create_service_app
from callcenter_common.settings import PlatformSettings, ServiceSettings
from gateway.config import GatewaySettings
from gateway.main import create_app

from .gatewaykit import CLIENT_IP, EchoBase, Embedded, echo_router, echo_tables


@pytest.fixture
def echo_service(pg_url: str, platform_settings: PlatformSettings) -> Callable[[Bus], FastAPI]:
    def build(bus: Bus) -> FastAPI:
        settings = ServiceSettings(
            service_name="patient", database_url=pg_url, migrate_on_start=False, platform=platform_settings
        )
        # The tables come from create_all in the startup hook: this test service has no migrations.
        runtime = ServiceRuntime(settings, tables=echo_tables, migrations=Path("no-migrations"), bus=bus)

        async def create_tables() -> None:
            await runtime.db.create_all(EchoBase)

        runtime.on_startup.insert(0, create_tables)
        app = create_service_app(runtime, routers=[echo_router()], title="patient")
        app.state.release_stream = asyncio.Event()
        app.state.endless_stopped = asyncio.Event()
        return app

    return build


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def gateway_settings(platform_settings: PlatformSettings, closed_port: int) -> Callable[..., GatewaySettings]:
    def make(**overrides: Any) -> GatewaySettings:
        urls = {s.name: f"http://127.0.0.1:{closed_port}" for s in SERVICES}
        urls.update(overrides.pop("service_urls", {}))
        values: dict[str, Any] = {"rate_limit_per_second": 1000.0, "rate_limit_burst": 1000, **overrides}
        return GatewaySettings(service_urls=urls, platform=platform_settings, **values)

    return make


@pytest.fixture
def bus(platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]) -> RabbitBus:
    """Not started: apps subscribe first, then the test starts it (consumers exist once it is connected)."""
    bus = bus_from_settings(platform_settings)
    assert isinstance(bus, RabbitBus)
    cleanup_bus(bus)
    return bus


@asynccontextmanager
async def _serve(app: Any) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning", ws_ping_interval=None)
    server = uvicorn.Server(config)
    # The socket listens before uvicorn starts: a client may connect at once, it is accepted after startup.
    sock.listen(128)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@pytest.fixture
def serve() -> Callable[[Any], AbstractAsyncContextManager[str]]:
    return _serve


@pytest.fixture
def embedded(bus: RabbitBus, gateway_settings: Callable[..., GatewaySettings]) -> Embedded:
    """The gateway with some services in-process, on the real broker; an httpx client to the gateway."""

    @asynccontextmanager
    async def running(
        services: Mapping[str, FastAPI], **overrides: Any
    ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        gateway = create_app(gateway_settings(**overrides), bus=bus, services=services)
        async with AsyncExitStack() as stack:
            await bus.start()
            stack.push_async_callback(bus.close)
            await bus.wait_connected(10)
            for app in services.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            await stack.enter_async_context(gateway.router.lifespan_context(gateway))
            transport = httpx.ASGITransport(app=gateway, client=(CLIENT_IP, 50000))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway.test")
            )
            yield gateway, client

    return running
