"""Routing `/api/<service>/<path>` to the services: what passes, what comes back, what fails how."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from callcenter_common.auth import TokenIssuer
from callcenter_common.bus import Bus, RabbitBus
from callcenter_common.problems import PROBLEM_JSON
from callcenter_common.settings import PlatformSettings
from gateway.config import GatewaySettings
from gateway.main import create_app
from recording.config import RecordingSettings
from recording.main import create_app as create_recording

from .gatewaykit import CLIENT_IP, Embedded, Serve


def headers_of(echo: dict[str, Any]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


async def test_proxy_passes_method_path_query_body_headers_and_status(
    embedded: Embedded, echo_service: Callable[[Bus], FastAPI], bus: RabbitBus
) -> None:
    async with embedded({"patient": echo_service(bus)}) as (_, client):
        r = await client.post(
            "/api/patient/echo/a%2Fb/c?x=1&y=two",
            content=b'{"note": "hello"}',
            headers={
                "Content-Type": "application/json",
                "X-Custom": "kept",
                "X-Echo-Status": "207",
                "X-Correlation-ID": "call-1700000000.42",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Authorization": "Bearer passed-through",
            },
        )
    assert r.status_code == 207
    assert r.headers["x-echo"] == "yes"
    assert r.headers.get_list("x-correlation-id") == ["call-1700000000.42"]
    echo = r.json()
    assert echo["method"] == "POST"
    assert echo["raw_path"] == "/echo/a%2Fb/c"  # percent-encoding kept, prefix stripped
    assert echo["query"] == "x=1&y=two"
    assert echo["body"] == '{"note": "hello"}'
    sent = headers_of(echo)
    assert sent["x-custom"] == ["kept"]
    assert sent["authorization"] == ["Bearer passed-through"]
    assert sent["x-correlation-id"] == ["call-1700000000.42"]
    assert sent["x-forwarded-for"] == [CLIENT_IP]
    assert sent["x-forwarded-proto"] == ["http"]
    assert sent["x-forwarded-host"] == ["gateway.test"]
    assert "keep-alive" not in sent and "te" not in sent  # hop-by-hop


async def test_proxy_generates_correlation_id_and_appends_forwarded_for(
    embedded: Embedded, echo_service: Callable[[Bus], FastAPI], bus: RabbitBus
) -> None:
    async with embedded({"patient": echo_service(bus)}) as (_, client):
        r = await client.get("/api/patient/echo/x", headers={"X-Forwarded-For": "198.51.100.1"})
    assert r.status_code == 200
    sent = headers_of(r.json())
    generated = r.headers["x-correlation-id"]
    assert len(generated) >= 16
    assert sent["x-correlation-id"] == [generated]
    assert sent["x-forwarded-for"] == [f"198.51.100.1, {CLIENT_IP}"]


async def test_metrics_count_proxied_requests_per_service(
    embedded: Embedded, echo_service: Callable[[Bus], FastAPI], bus: RabbitBus
) -> None:
    async with embedded({"patient": echo_service(bus)}) as (_, client):
        await client.get("/api/patient/echo/x/y")
        metrics = (await client.get("/metrics")).text
    assert 'callcenter_http_requests_total{method="GET",route="/api/patient",service="gateway",status="200"}' in metrics


async def test_unknown_service_is_404_problem(
    embedded: Embedded, echo_service: Callable[[Bus], FastAPI], bus: RabbitBus
) -> None:
    async with embedded({"patient": echo_service(bus)}) as (_, client):
        r = await client.get("/api/billing/invoices")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM_JSON
    problem = r.json()
    assert problem["code"] == "gateway.unknown_service"
    assert "'billing'" in problem["detail"] and "patient" in problem["detail"]


async def test_bad_input_through_gateway_is_422_problem_naming_the_field(
    embedded: Embedded, echo_service: Callable[[Bus], FastAPI], bus: RabbitBus
) -> None:
    async with embedded({"patient": echo_service(bus)}) as (_, client):
        ok = await client.post("/api/patient/appointments", json={"patient_id": 7, "clinic": "Haidian"})
        bad = await client.post("/api/patient/appointments", json={"patient_id": "seven", "clinic": "Haidian"})
    assert ok.status_code == 201, ok.text
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM_JSON
    assert bad.json()["code"] == "request.invalid"
    assert bad.json()["field"] == "patient_id"


async def test_protected_endpoint_without_or_with_bad_token_is_401(
    embedded: Embedded, echo_service: Callable[[Bus], FastAPI], bus: RabbitBus, tokens: TokenIssuer
) -> None:
    token = tokens.issue(user_id="u-17", work_number="1017")
    async with embedded({"patient": echo_service(bus)}) as (_, client):
        missing = await client.get("/api/patient/me")
        forged = await client.get("/api/patient/me", headers={"Authorization": "Bearer not.a.token"})
        valid = await client.get("/api/patient/me", headers={"Authorization": f"Bearer {token}"})
    for r in (missing, forged):
        assert r.status_code == 401
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.headers["www-authenticate"] == "Bearer"
    assert forged.json()["code"] == "auth.token_invalid"
    assert valid.status_code == 200
    assert valid.json() == {"user_id": "u-17"}


async def test_rate_limit_is_429_with_retry_after_per_user(
    embedded: Embedded, echo_service: Callable[[Bus], FastAPI], bus: RabbitBus, tokens: TokenIssuer
) -> None:
    alice = {"Authorization": f"Bearer {tokens.issue(user_id='alice', work_number='1')}"}
    bob = {"Authorization": f"Bearer {tokens.issue(user_id='bob', work_number='2')}"}
    async with embedded({"patient": echo_service(bus)}, rate_limit_per_second=0.01, rate_limit_burst=2) as (_, client):
        first = [await client.get("/api/patient/echo/x", headers=alice) for _ in range(2)]
        limited = await client.get("/api/patient/echo/x", headers=alice)
        other_user = await client.get("/api/patient/echo/x", headers=bob)
        health = [await client.get("/healthz") for _ in range(3)]
    assert [r.status_code for r in first] == [200, 200]
    assert limited.status_code == 429
    assert limited.headers["content-type"] == PROBLEM_JSON
    assert limited.json()["code"] == "rate.limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert other_user.status_code == 200  # the bucket is alice's, not the address's
    assert [r.status_code for r in health] == [200, 200, 200]  # exempt


async def test_cors_lets_the_configured_spa_origin_in_with_credentials(
    embedded: Embedded, echo_service: Callable[[Bus], FastAPI], bus: RabbitBus
) -> None:
    spa = "https://spa.clinic.example"
    async with embedded({"patient": echo_service(bus)}, cors_origins=[spa]) as (_, client):
        preflight = await client.options(
            "/api/patient/echo/x",
            headers={"Origin": spa, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-a"},
        )
        simple = await client.get("/api/patient/echo/x", headers={"Origin": spa})
        foreign = await client.get("/api/patient/echo/x", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == spa
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["access-control-allow-origin"] == spa
    assert "x-correlation-id" in simple.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers


async def test_readiness_is_the_bus_and_status_lists_each_service(
    embedded: Embedded,
    echo_service: Callable[[Bus], FastAPI],
    bus: RabbitBus,
    new_pg_database: Callable[[], Awaitable[str]],
    platform_settings: PlatformSettings,
) -> None:
    recording = create_recording(
        RecordingSettings(database_url=await new_pg_database(), platform=platform_settings), bus=bus
    )
    async with embedded({"patient": echo_service(bus), "recording": recording}) as (_, client):
        ready = await client.get("/readyz")
        status = await client.get("/api/status")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"bus": True}
    services = status.json()["services"]
    assert services["patient"]["status"] == "ready"
    assert services["recording"]["status"] == "ready"
    assert services["recording"]["checks"] == {"database": True, "bus": True}
    assert services["acd"]["status"] == "unavailable"
    assert status.json()["status"] == "degraded"


async def test_service_down_is_503_problem_naming_it(
    gateway_settings: Callable[..., GatewaySettings], bus: RabbitBus, run_app: Any
) -> None:
    app = create_app(gateway_settings(), bus=bus)
    async with run_app(app) as client:
        r = await client.get("/api/agent-state/users")
    assert r.status_code == 503
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["code"] == "gateway.service_unavailable"
    assert r.json()["service"] == "agent-state"
    assert "agent-state" in r.json()["detail"]


async def test_service_that_does_not_answer_in_time_is_504(
    gateway_settings: Callable[..., GatewaySettings], bus: RabbitBus, run_app: Any
) -> None:
    accepted = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the gateway gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = gateway_settings(service_urls={"reporting": f"http://127.0.0.1:{port}"}, upstream_timeout_seconds=0.3)
    async with server, run_app(create_app(settings, bus=bus)) as client:
        r = await client.get("/api/reporting/kpis")
    assert accepted.is_set()
    assert r.status_code == 504
    assert r.json()["code"] == "gateway.timeout"
    assert r.json()["service"] == "reporting"


async def test_http_mode_streams_bodies_both_ways_and_stops_when_the_caller_leaves(
    echo_service: Callable[[Bus], FastAPI],
    bus: RabbitBus,
    gateway_settings: Callable[..., GatewaySettings],
    serve: Serve,
) -> None:
    service = echo_service(bus)  # the bus stays unstarted: nothing here goes through it
    async with serve(service) as service_address:
        settings = gateway_settings(service_urls={"patient": f"http://{service_address}"})
        async with (
            serve(create_app(settings, bus=bus)) as gateway_address,
            httpx.AsyncClient(base_url=f"http://{gateway_address}", timeout=10) as client,
        ):
            # The second chunk is only produced after the first came out of the gateway:
            # a gateway that buffered the body would wait here for ever (and time out).
            async with client.stream("GET", "/api/patient/stream") as response:
                assert response.status_code == 200
                assert "content-length" not in response.headers
                chunks = response.aiter_raw()
                first = await asyncio.wait_for(anext(chunks), 5)
                service.state.release_stream.set()
                rest = b"".join([chunk async for chunk in chunks])
            assert first + rest == b"first chunk\nsecond chunk\n"

            async def upload() -> Any:
                for _ in range(50):
                    yield b"x" * 65536

            uploaded = await client.post("/api/patient/upload", content=upload())
            assert uploaded.status_code == 200
            assert uploaded.json() == {"size": 50 * 65536, "transfer_encoding": "chunked"}

            # A caller that leaves mid-body: the gateway stops pulling from the service, which notices.
            async with client.stream("GET", "/api/patient/endless") as endless:
                await asyncio.wait_for(anext(endless.aiter_raw()), 5)
            await asyncio.wait_for(service.state.endless_stopped.wait(), 5)

            head = await client.head("/api/patient/echo/x")
            assert head.status_code == 200 and head.content == b""
            again = await client.get("/api/patient/echo/again?q=1")
            assert again.json()["query"] == "q=1"
