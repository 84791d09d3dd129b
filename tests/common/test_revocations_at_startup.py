"""A service that starts after a forced logout loads the revocations still in force from
agent-state and refuses the revoked token at once (issue #3, acceptance 3; issue #2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI, Query
from testkit import wait_until

from callcenter_common.auth import TokenIssuer, generate_keypair
from callcenter_common.bus import InMemoryBus
from callcenter_common.settings import PlatformSettings
from reporting.config import ReportingSettings
from reporting.main import create_app


@pytest.fixture
async def revocation_server() -> AsyncIterator[str]:
    """Two pages, as agent-state's GET /auth/revocations serves them."""
    now = time.time()
    pages = {
        None: {
            "items": [
                {"user_id": "u-forced", "session_id": None, "not_before": now, "expires_at": now + 900, "reason": "x"}
            ],
            "next_cursor": "p2",
        },
        "p2": {
            "items": [
                {"user_id": "u-other", "session_id": "s-9", "not_before": now, "expires_at": now + 900, "reason": "y"}
            ],
            "next_cursor": None,
        },
    }
    app = FastAPI()

    @app.get("/auth/revocations")
    async def revocations(cursor: str | None = Query(default=None), limit: int = 500) -> dict[str, object]:
        return pages[cursor]

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, 10)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/auth/revocations"
    server.should_exit = True
    await task


async def test_service_started_later_refuses_tokens_revoked_before(
    revocation_server: str, pg_url: str, run_app
) -> None:  # type: ignore[no-untyped-def]
    private, public = generate_keypair()
    issuer = TokenIssuer(private, issuer="callcenter.agent-state", audience="callcenter")
    forced = issuer.issue(user_id="u-forced", work_number="8001", now=time.time() - 60)
    other_session = issuer.issue(user_id="u-other", work_number="8002", session_id="s-9")
    unaffected = issuer.issue(user_id="u-fine", work_number="8003")
    bus = InMemoryBus()
    await bus.start()
    platform = PlatformSettings(env="test", bus="memory", jwt_public_key=public, revocations_url=revocation_server)
    app = create_app(ReportingSettings(database_url=pg_url, platform=platform), bus=bus)
    async with run_app(app):
        runtime = app.state.runtime
        await wait_until(lambda: runtime._revocation_loader is not None and runtime._revocation_loader.done(), 10)
        verify = runtime.verifier.verify
        for token, revoked in ((forced, True), (other_session, True), (unaffected, False)):
            if revoked:
                with pytest.raises(Exception, match="Authentication required") as info:
                    verify(token)
                assert info.value.code == "auth.token_revoked"  # type: ignore[attr-defined]
            else:
                assert verify(token).work_number == "8003"
    await bus.close()
