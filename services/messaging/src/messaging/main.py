from pathlib import Path

from fastapi import FastAPI

from callcenter_common.bus import Bus
from callcenter_common.service import ServiceRuntime, create_service_app
from messaging.config import MessagingSettings
from messaging.models import bus_tables

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: MessagingSettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or MessagingSettings()
    runtime = ServiceRuntime(settings, tables=bus_tables, migrations=MIGRATIONS, bus=bus)
    return create_service_app(runtime, title="messaging")
