"""The gateway's own HTTP endpoints: health, readiness, metrics, service status, merged API docs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from callcenter_common.bus import Bus
from callcenter_common.observability import metrics_endpoint
from gateway.openapi import MergedOpenApi
from gateway.upstreams import Upstream, Upstreams

STATUS_TIMEOUT_SECONDS = 2.0


async def service_status(upstream: Upstream) -> dict[str, Any]:
    """What the service's `/readyz` says, or why it could not be asked."""
    try:
        response = await asyncio.wait_for(upstream.client.get(upstream.base_url + "/readyz"), STATUS_TIMEOUT_SECONDS)
    except (httpx.HTTPError, TimeoutError) as exc:
        return {"status": "unavailable", "detail": type(exc).__name__}
    try:
        body = response.json()
    except ValueError:
        body = {}
    status = "ready" if response.status_code == 200 else "not_ready"
    return {"status": status, "checks": body.get("checks", {}) if isinstance(body, dict) else {}}


def gateway_router(bus: Bus, upstreams: Upstreams, merged_openapi: MergedOpenApi, *, name: str) -> APIRouter:
    router = APIRouter(tags=["gateway"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @router.get("/readyz", summary="The bus is connected (services have their own readiness)")
    async def readyz() -> JSONResponse:
        ready = bus.connected
        body = {"status": "ready" if ready else "not_ready", "checks": {"bus": ready}}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/api/status", summary="Readiness of every service, as seen from the gateway")
    async def status() -> dict[str, Any]:
        items = list(upstreams)
        results = await asyncio.gather(*(service_status(u) for u in items))
        services = {u.name: result for u, result in zip(items, results, strict=True)}
        all_ready = bus.connected and all(r["status"] == "ready" for r in results)
        return {"status": "ok" if all_ready else "degraded", "bus": bus.connected, "services": services}

    @router.get("/api/openapi.json", include_in_schema=False)
    async def openapi() -> Response:
        return Response(await merged_openapi.document(), media_type="application/json")

    @router.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="Call center API")

    router.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return router
