from pathlib import Path

from fastapi import FastAPI

from agent_state.background import AfterCallWorkTimer
from agent_state.config import AgentStateSettings
from agent_state.consumers import CallEventConsumer
from agent_state.endpoints import build_routers
from agent_state.models import bus_tables
from agent_state.notifier import Notifier
from agent_state.security import Passwords, load_signing_keys
from agent_state.service import (
    AddressBookService,
    AgentStateService,
    AnnouncementService,
    AuthService,
    OrgService,
    Services,
    ShiftService,
)
from callcenter_common.bus import Bus
from callcenter_common.clock import Clock, SystemClock
from callcenter_common.service import ServiceRuntime, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: AgentStateSettings | None = None, *, bus: Bus | None = None, clock: Clock | None = None
) -> FastAPI:
    settings = settings or AgentStateSettings()
    # Resolved here, before any other service of the embedded mode reads the public key file.
    keys = load_signing_keys(settings)
    platform = settings.platform.model_copy(update={"jwt_public_key": keys.public_pem})
    settings = settings.model_copy(update={"platform": platform})
    clock = clock or SystemClock()

    runtime = ServiceRuntime(settings, tables=bus_tables, migrations=MIGRATIONS, bus=bus)
    notifier = Notifier(runtime)
    passwords = Passwords.from_settings(settings)
    agents = AgentStateService(settings, clock, notifier)
    auth = AuthService(settings, clock, passwords, keys, notifier, runtime.revocations, agents)
    agents.auth = auth
    services = Services(
        org=OrgService(settings, clock, passwords, auth, notifier),
        auth=auth,
        agents=agents,
        announcements=AnnouncementService(clock, notifier),
        address_book=AddressBookService(clock),
        shifts=ShiftService(settings, clock),
    )

    calls = CallEventConsumer(agents)
    runtime.consume("calls", calls.names, calls.handle)
    timer = AfterCallWorkTimer(runtime, agents, auth, poll_seconds=settings.after_call_work_poll_seconds)

    async def start() -> None:
        async with runtime.db.session() as session:
            await services.org.ensure_roles(session)
        async with runtime.db.session() as session:
            await auth.load_revocations(session)
        timer.start()

    runtime.on_startup.append(start)
    runtime.on_shutdown.append(timer.stop)

    app = create_service_app(
        runtime,
        routers=build_routers(services, keys.public_pem),
        title="agent-state",
        description="People, roles, groups, login and tokens, agent states and their timeline, "
        "supervisor controls, announcements, address book, shifts.",
    )
    app.state.services = services
    app.state.after_call_work_timer = timer
    app.state.clock = clock
    return app
