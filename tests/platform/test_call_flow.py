"""One inbound call through the whole embedded platform: the PBX simulator over AMI, the ACD's
routing, agent-state's state machine and patient's ownership, all talking over the bus the way
they do in production (CORE-2.1, AGENT-5, WO-3.4, CORE-4)."""

from __future__ import annotations

import asyncio
import os
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from testkit import auth_header, wait_until

from callcenter_platform.embedded import EmbeddedPlatform, prepare_environment


@dataclass
class Running:
    platform: EmbeddedPlatform
    client: httpx.AsyncClient

    async def login(self, work_number: str, extension: str | None = None) -> str:
        body: dict[str, Any] = {"work_number": work_number, "password": "demo1234"}
        if extension:
            body["extension"] = extension
        r = await self.client.post("/api/agent-state/auth/login", json=body)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def until(
        self, fetch: Callable[[], Awaitable[httpx.Response]], ok: Callable[[Any], bool], timeout: float = 30
    ) -> Any:
        """Poll a REST view until the platform's services have caught up (bounded)."""
        last: Any = None
        async with asyncio.timeout(timeout):
            while True:
                r = await fetch()
                last = r.json() if r.status_code == 200 else r.text
                if r.status_code == 200 and ok(last):
                    return last
                await asyncio.sleep(0.02)


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Running]:
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(("CALLCENTER_", "GATEWAY_"))]:
        del os.environ[key]
    os.environ["ACD_AMI_PORT"] = "0"  # the simulator takes a free port and the ACD follows it
    try:
        prepare_environment(tmp_path / "var")
        embedded = EmbeddedPlatform()
        gateway = await embedded.start()
        try:
            async with gateway.router.lifespan_context(gateway):
                transport = httpx.ASGITransport(app=gateway)
                async with httpx.AsyncClient(transport=transport, base_url="http://cc", timeout=10) as client:
                    yield Running(embedded, client)
        finally:
            await embedded.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def test_core_2_1_inbound_call_reaches_an_idle_agent_who_becomes_the_callers_owner(platform: Running) -> None:
    p, client = platform, platform.client
    assert p.platform.pbx is not None
    await p.until(lambda: client.get("/api/acd/readyz"), lambda body: body["status"] == "ready")

    director = await p.login("9001")
    agent = await p.login("8001", "1001")
    groups = jwt.decode(agent, options={"verify_signature": False})["groups"]
    assert groups, "demo agent 8001 belongs to a group"

    # A supervisor binds the booking number to a queue served by the agent's group.
    r = await client.post(
        "/api/acd/queues",
        json={"queue_id": "booking", "name": "Booking", "groups": groups, "priority": 5},
        headers=auth_header(director),
    )
    assert r.status_code == 201, r.text
    r = await client.put("/api/acd/dnis/4008001234", json={"queue_id": "booking"}, headers=auth_header(director))
    assert r.status_code == 200, r.text

    r = await client.put("/api/agent-state/agents/me/state", json={"state": "idle"}, headers=auth_header(agent))
    assert r.status_code == 200, r.text
    await p.until(
        lambda: client.get("/api/acd/routable-agents", headers=auth_header(director)),
        lambda body: any(a["work_number"] == "8001" and a["state"] == "idle" for a in _items(body)),
    )

    caller = "13912345678"  # no demo patient has this number
    call = await p.platform.pbx.inbound_call(caller=caller, dnis="4008001234")
    await wait_until(lambda: call.bridged, 30)

    me = lambda: client.get("/api/agent-state/agents/me/state", headers=auth_header(agent))  # noqa: E731
    await p.until(me, lambda body: body["state"] == "talking")

    # The director registers the caller: the owner is the agent who talked with them first.
    r = await client.post(
        "/api/patient/patients",
        json={"name": "陈女士", "mobile": caller, "source_channel": "walk_in"},
        headers=auth_header(director),
    )
    assert r.status_code == 201, r.text
    assert r.json()["owner"]["work_number"] == "8001"

    call.hangup()
    after = await p.until(me, lambda body: body["state"] == "after_call_work")
    assert after["state"] == "after_call_work"
    # The ACD started MixMonitor on the answered call: a real WAV file on disk (CORE-4).
    pbx = p.platform.pbx
    await wait_until(lambda: bool(pbx.recordings()), 10)
    with wave.open(str(pbx.recordings()[0])) as recording:
        assert (recording.getframerate(), recording.getnchannels()) == (8000, 1)
        assert recording.getnframes() > 0
    mine = await client.get("/api/patient/patients", headers=auth_header(agent))
    assert caller in {item["mobile"] for item in mine.json()["items"]}


def _items(body: Any) -> list[dict[str, Any]]:
    return list(body["items"] if isinstance(body, dict) else body)
