"""Helpers of the gateway tests (fixtures are in conftest.py): `from .gatewaykit import …`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import DeclarativeBase

from callcenter_common.auth import CurrentPrincipal
from callcenter_common.outbox import BusTables

CLIENT_IP = "203.0.113.7"

Embedded = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]
Serve = Callable[[Any], AbstractAsyncContextManager[str]]


class EchoBase(DeclarativeBase):
    pass


echo_tables = BusTables(EchoBase.metadata)


class AppointmentCreate(BaseModel):
    patient_id: int
    clinic: str = Field(min_length=1)


def echo_router() -> APIRouter:
    router = APIRouter()

    @router.api_route(
        "/echo/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def echo(rest: str, request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.url.query,
                "body": body.decode(),
                "headers": [[k, v] for k, v in request.headers.items()],
            },
            status_code=int(request.headers.get("x-echo-status", "200")),
            headers={"X-Echo": "yes"},
        )

    @router.post("/appointments", status_code=201)
    async def create_appointment(appointment: AppointmentCreate) -> AppointmentCreate:
        return appointment

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user_id": principal.user_id}

    @router.get("/stream", include_in_schema=False)
    async def stream(request: Request) -> StreamingResponse:
        release: asyncio.Event = request.app.state.release_stream

        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk\n"
            await release.wait()  # set by the test once the first chunk came through the gateway
            yield b"second chunk\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @router.get("/endless", include_in_schema=False)
    async def endless(request: Request) -> StreamingResponse:
        stopped: asyncio.Event = request.app.state.endless_stopped

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"x" * 1024
                    await asyncio.sleep(0.005)  # paces the stream; nothing in the test waits on it
            finally:
                stopped.set()

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @router.post("/upload", include_in_schema=False)
    async def upload(request: Request) -> dict[str, Any]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size, "transfer_encoding": request.headers.get("transfer-encoding")}

    return router
