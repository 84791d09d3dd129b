"""Problem details, token checks and health endpoints that every service gets from libs/common
(issue #2, acceptance 3)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, ClassVar

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel, Field
from testkit import auth_header

from callcenter_common.auth import CurrentPrincipal, TokenIssuer, TokensRevoked, generate_keypair
from callcenter_common.bus import InMemoryBus
from callcenter_common.db import SessionDep
from callcenter_common.events import Event
from callcenter_common.problems import ProblemError
from callcenter_common.service import RuntimeDep, ServiceRuntime, create_service_app
from callcenter_common.settings import PlatformSettings, ServiceSettings
from patient.models import bus_tables

MIGRATIONS = Path(__import__("patient.main").main.__file__).parent / "migrations"


class Booking(BaseModel):
    mobile: str = Field(pattern=r"^1\d{10}$")
    slots: int = Field(ge=1, le=4)


class Booked(Event):
    name: ClassVar[str] = "booking.made"

    mobile: str


def build_app(platform: PlatformSettings, database_url: str, bus: InMemoryBus | None = None) -> FastAPI:
    router = APIRouter()

    @router.post("/bookings", status_code=201)
    async def book(body: Booking, who: CurrentPrincipal, session: SessionDep, runtime: RuntimeDep) -> dict[str, str]:
        if body.mobile == "13000000000":
            raise ProblemError(409, "booking.taken", "That slot is taken", field="mobile")
        await runtime.publish(session, Booked(mobile=body.mobile).envelope("test"))
        return {"by": who.work_number}

    @router.get("/bookings")
    async def search(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, int]:
        return {"limit": limit}

    settings = ServiceSettings(service_name="contract-test", database_url=database_url, platform=platform)
    runtime = ServiceRuntime(settings, tables=bus_tables, migrations=MIGRATIONS, bus=bus)
    return create_service_app(runtime, routers=[router])


@pytest.fixture
def keys() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture
def issuer(keys: tuple[str, str]) -> TokenIssuer:
    return TokenIssuer(keys[0], issuer="callcenter.agent-state", audience="callcenter")


@pytest.fixture
async def client(keys: tuple[str, str], pg_url: str, run_app):  # type: ignore[no-untyped-def]
    bus = InMemoryBus()
    await bus.start()
    platform = PlatformSettings(env="test", bus="memory", jwt_public_key=keys[1])
    app = build_app(platform, pg_url, bus)
    async with run_app(app) as c:
        c.bus = bus  # type: ignore[attr-defined]
        yield c
    await bus.close()


def token(issuer: TokenIssuer, **kw) -> str:  # type: ignore[no-untyped-def]
    return issuer.issue(user_id="u1", work_number="A1001", roles=["agent"], **kw)


async def test_bad_body_gives_problem_json_naming_the_field(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    r = await client.post("/bookings", json={"mobile": "12345", "slots": 2}, headers=auth_header(token(issuer)))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "request.invalid"
    assert body["field"] == "mobile"
    assert [e["field"] for e in body["errors"]] == ["mobile"]


async def test_bad_query_parameter_and_malformed_json_are_4xx(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    r = await client.get("/bookings", params={"limit": "0"})
    assert r.status_code == 422 and r.json()["field"] == "query.limit"
    r = await client.post(
        "/bookings", content=b"{oops", headers={**auth_header(token(issuer)), "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


async def test_business_error_carries_stable_code(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    r = await client.post("/bookings", json={"mobile": "13000000000", "slots": 1}, headers=auth_header(token(issuer)))
    assert r.status_code == 409
    assert r.json() | {"instance": None} == {
        "type": "https://callcenter.example/problems/booking.taken",
        "title": "That slot is taken",
        "status": 409,
        "code": "booking.taken",
        "field": "mobile",
        "instance": None,
    }


async def test_protected_endpoint_without_valid_token_is_401(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    body = {"mobile": "13800138000", "slots": 1}
    missing = await client.post("/bookings", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    expired = token(issuer, now=time.time() - 3600, ttl_seconds=60)
    r = await client.post("/bookings", json=body, headers=auth_header(expired))
    assert r.status_code == 401 and r.json()["code"] == "auth.token_expired"
    good = token(issuer)
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    r = await client.post("/bookings", json=body, headers=auth_header(tampered))
    assert r.status_code == 401 and r.json()["code"] == "auth.token_invalid"
    stranger = TokenIssuer(generate_keypair()[0], issuer="callcenter.agent-state", audience="callcenter")
    r = await client.post("/bookings", json=body, headers=auth_header(token(stranger)))
    assert r.status_code == 401
    r = await client.post("/bookings", json=body, headers=auth_header(good))
    assert r.status_code == 201 and r.json() == {"by": "A1001"}


async def test_revocation_event_voids_earlier_tokens(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    old = token(issuer, now=time.time() - 10)
    body = {"mobile": "13800138000", "slots": 1}
    assert (await client.post("/bookings", json=body, headers=auth_header(old))).status_code == 201
    bus: InMemoryBus = client.bus  # type: ignore[attr-defined]
    await bus.publish(TokensRevoked(user_id="u1", not_before=time.time() - 5).envelope("agent-state"))
    await bus.drain()
    r = await client.post("/bookings", json=body, headers=auth_header(old))
    assert r.status_code == 401 and r.json()["code"] == "auth.token_revoked"
    fresh = token(issuer)
    assert (await client.post("/bookings", json=body, headers=auth_header(fresh))).status_code == 201


async def test_health_readiness_metrics_and_correlation_id(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "bus": True}
    r = await client.get("/bookings", headers={"X-Correlation-ID": "call-42"})
    assert r.headers["x-correlation-id"] == "call-42"
    metrics = (await client.get("/metrics")).text
    assert (
        'callcenter_http_requests_total{method="GET",route="/bookings",service="contract-test",status="200"}' in metrics
    )


async def test_readiness_is_503_when_the_database_is_unreachable(  # type: ignore[no-untyped-def]
    keys: tuple[str, str], issuer: TokenIssuer, run_app
) -> None:
    platform = PlatformSettings(env="test", bus="memory", jwt_public_key=keys[1])
    bus = InMemoryBus()
    await bus.start()
    app = build_app(platform, "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", bus)
    app.state.runtime.settings.migrate_on_start = False
    async with run_app(app) as c:
        assert (await c.get("/healthz")).status_code == 200
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"] == {"database": False, "bus": True}
        booking = {"mobile": "13800138000", "slots": 1}
        r = await c.post("/bookings", json=booking, headers=auth_header(token(issuer)))
        assert r.status_code == 503, "a request that needs the database answers 503, not 500"
        assert r.json()["code"] == "service.db_unavailable"
    await bus.close()
