"""What every service's `main.py` wires: database, bus, outbox, inbox, token checks, health.

runtime = ServiceRuntime(settings, tables=bus_tables, migrations=MIGRATIONS)
runtime.consume("owner", ["call.answered"], handle_call_answered)
app = create_service_app(runtime, routers=[router])
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter_common.auth import RevocationList, TokensRevoked, TokenVerifier, load_revocations
from callcenter_common.bus import Bus, bus_from_settings
from callcenter_common.catalog import service
from callcenter_common.db import Database
from callcenter_common.events import Envelope
from callcenter_common.migrations import upgrade_database
from callcenter_common.observability import ObservabilityMiddleware, metrics_endpoint
from callcenter_common.outbox import BusTables, ConsumerHandler, Inbox, Outbox, OutboxRelay
from callcenter_common.problems import install_problem_handlers
from callcenter_common.settings import ServiceSettings

log = logging.getLogger("callcenter.service")

ReadinessCheck = Callable[[], Awaitable[bool]]
Hook = Callable[[], Awaitable[None]]


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        tables: BusTables,
        migrations: Path,
        bus: Bus | None = None,
    ) -> None:
        self.name = settings.service_name
        self.settings = settings
        self.migrations = migrations
        self.db = Database(settings.database_url)
        self.owns_bus = bus is None
        self.bus = bus if bus is not None else bus_from_settings(settings.platform)
        self.tables = tables
        self.outbox = Outbox(tables)
        self.inbox = Inbox(self.db, tables)
        self.relay = OutboxRelay(
            self.name,
            self.db,
            self.bus,
            tables,
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
        )
        self.revocations = RevocationList()
        platform = settings.platform
        self.verifier = TokenVerifier(
            platform.load_jwt_public_key(),
            issuer=platform.jwt_issuer,
            audience=platform.jwt_audience,
            revocations=self.revocations,
        )
        self.readiness_checks: dict[str, ReadinessCheck] = {"database": self.db.ping, "bus": self._bus_ready}
        self.on_startup: list[Hook] = []
        self.on_shutdown: list[Hook] = []
        self._revocation_loader: asyncio.Task[None] | None = None
        # Every replica keeps its own revocation list, so this queue is per process.
        self.bus.subscribe(f"{self.name}.auth", [TokensRevoked.name], self._on_tokens_revoked, exclusive=True)

    async def _bus_ready(self) -> bool:
        return self.bus.connected

    async def _on_tokens_revoked(self, envelope: Envelope) -> None:
        self.revocations.apply(TokensRevoked.from_envelope(envelope))

    def consume(self, purpose: str, names: Sequence[str], handle: ConsumerHandler) -> None:
        """Subscribe queue `<service>.<purpose>`; each event id is applied once, in one transaction."""
        queue = f"{self.name}.{purpose}"
        self.bus.subscribe(queue, names, self.inbox.handler(queue, handle))

    async def publish(self, session: AsyncSession, *envelopes: Envelope) -> None:
        """Stage events with the session's state change; they are relayed after commit."""
        await self.outbox.add(session, *envelopes)

    async def start(self) -> None:
        if self.settings.migrate_on_start:
            await self._migrate_when_database_is_up()
        if self.settings.seed_demo and self.settings.platform.env != "prod":
            await self._seed_demo()
        if self.owns_bus:
            await self.bus.start()
        self.relay.start()
        if self.settings.platform.revocations_url:
            self._revocation_loader = asyncio.create_task(self._load_revocations())
        for hook in self.on_startup:
            await hook()

    async def _load_revocations(self) -> None:
        try:
            count = await load_revocations(self.settings.platform.revocations_url, self.revocations)
            log.info("%s applied %d token revocations still in force", self.name, count)
        except Exception:
            log.exception("%s could not load token revocations", self.name)

    async def stop(self) -> None:
        if self._revocation_loader is not None:
            self._revocation_loader.cancel()
            await asyncio.gather(self._revocation_loader, return_exceptions=True)
        for hook in reversed(self.on_shutdown):
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook of %s failed", self.name)
        await self.relay.stop()
        if self.owns_bus:
            await self.bus.close()
        await self.db.dispose()

    async def _migrate_when_database_is_up(self, attempts: int = 30) -> None:
        for attempt in range(1, attempts + 1):
            try:
                await upgrade_database(self.db, self.migrations)
                return
            except (OSError, DBAPIError) as exc:
                if attempt == attempts:
                    raise
                log.warning("database of %s not ready (%s); retrying", self.name, exc)
                await asyncio.sleep(min(0.2 * attempt, 2.0))

    async def _seed_demo(self) -> None:
        try:
            package = service(self.name).package
        except KeyError:
            return
        try:
            demo = importlib.import_module(f"{package}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.demo":
                raise
            return
        async with self.db.session() as session:
            await demo.seed_demo(session)
        log.info("demo data of %s in place", self.name)

    async def prune_inbox(self) -> int:
        return await self.inbox.prune(timedelta(days=7))

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


def health_router(runtime: ServiceRuntime) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @router.get("/readyz", summary="Database, bus and protocol edges are reachable")
    async def readyz() -> JSONResponse:
        results = {}
        for name, check in runtime.readiness_checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), 2.0)
            except Exception:
                results[name] = False
        ready = all(results.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503)

    router.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return router


def create_service_app(
    runtime: ServiceRuntime,
    *,
    routers: Sequence[APIRouter] = (),
    title: str | None = None,
    description: str = "",
    version: str = "0.1.0",
) -> FastAPI:
    app = FastAPI(
        title=title or runtime.name,
        description=description,
        version=version,
        lifespan=runtime.lifespan,
    )
    app.state.runtime = runtime
    app.state.db = runtime.db
    app.state.token_verifier = runtime.verifier
    install_problem_handlers(app)
    app.add_middleware(ObservabilityMiddleware, service=runtime.name)
    app.include_router(health_router(runtime))
    for router in routers:
        app.include_router(router)
    return app
