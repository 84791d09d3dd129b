from callcenter_common.settings import PlatformSettings
from patient.config import PatientSettings
from patient.main import create_app


async def test_patient_skeleton_on_postgres_and_rabbitmq(pg_url, platform_settings: PlatformSettings, run_app):
    app = create_app(PatientSettings(database_url=pg_url, platform=platform_settings))
    async with run_app(app) as client:
        await app.state.runtime.bus.wait_connected(10)
        r = await client.get("/readyz")
        assert r.status_code == 200, r.text
