from pathlib import Path

from fastapi import FastAPI

from acd.config import AcdSettings
from acd.endpoints import build_router, build_routing_router
from acd.models import bus_tables
from acd.service import AcdService
from callcenter_common.bus import Bus
from callcenter_common.clock import Clock
from callcenter_common.service import ServiceRuntime, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: AcdSettings | None = None, *, bus: Bus | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or AcdSettings()
    runtime = ServiceRuntime(settings, tables=bus_tables, migrations=MIGRATIONS, bus=bus)
    service = AcdService(settings, runtime, clock=clock)
    runtime.readiness_checks["ami"] = service.ami_ready
    runtime.on_startup.append(service.start)
    runtime.on_shutdown.append(service.stop)
    app = create_service_app(
        runtime,
        routers=[build_router(service), build_routing_router(service)],
        title="acd",
        description="Live calls and channels from Asterisk's AMI, routing by DNIS queues and rules (CORE-2, CORE-6).",
    )
    app.state.acd = service
    return app
