from pathlib import Path

from fastapi import FastAPI

from callcenter_common.bus import Bus
from callcenter_common.clock import Clock
from callcenter_common.service import ServiceRuntime, create_service_app
from patient.config import PatientSettings
from patient.consumers import PatientConsumers
from patient.crypto import IdNumberCipher, load_id_number_key
from patient.endpoints import build_router
from patient.models import bus_tables
from patient.notifier import Notifier
from patient.service import PatientService

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: PatientSettings | None = None, *, bus: Bus | None = None, clock: Clock | None = None
) -> FastAPI:
    settings = settings or PatientSettings()
    runtime = ServiceRuntime(settings, tables=bus_tables, migrations=MIGRATIONS, bus=bus)
    cipher = IdNumberCipher(load_id_number_key(settings))
    service = PatientService(settings, cipher, Notifier(runtime.publish, settings.service_name), clock)
    PatientConsumers(service).register(runtime)
    app = create_service_app(
        runtime,
        routers=[build_router(service)],
        title="patient",
        description="Patients, family, medical records, ownership, member levels, points, cards and funds (WO-3).",
    )
    app.state.patient_service = service
    return app
