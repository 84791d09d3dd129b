"""A service built on ServiceRuntime migrates its PostgreSQL database, connects to RabbitMQ and
reports ready; the full stack starts each service this way (issue #2)."""

from callcenter_common.settings import PlatformSettings
from reporting.config import ReportingSettings
from reporting.main import create_app


async def test_skeleton_service_is_ready_on_postgres_and_rabbitmq(
    pg_url: str, platform_settings: PlatformSettings, run_app
) -> None:  # type: ignore[no-untyped-def]
    app = create_app(ReportingSettings(database_url=pg_url, platform=platform_settings))
    async with run_app(app) as client:
        await app.state.runtime.bus.wait_connected(10)
        r = await client.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"database": True, "bus": True}
