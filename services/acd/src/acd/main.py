from pathlib import Path

from fastapi import FastAPI

from acd.config import AcdSettings
from acd.models import bus_tables
from callcenter_common.bus import Bus
from callcenter_common.service import ServiceRuntime, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: AcdSettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or AcdSettings()
    runtime = ServiceRuntime(settings, tables=bus_tables, migrations=MIGRATIONS, bus=bus)
    return create_service_app(runtime, title="acd")
