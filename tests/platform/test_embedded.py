"""`make run`'s process: every service answers through the gateway within 60 s, with no
PostgreSQL or RabbitMQ involved, and Ctrl-C stops it cleanly (issue #2, acceptance 1)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx

from callcenter_common.catalog import SERVICES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_embedded_platform_answers_every_service_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCENTER_", "GATEWAY_"))}
    # Point the would-be broker and database servers at closed ports: the embedded mode must not need them.
    env["CALLCENTER_AMQP_URL"] = "amqp://guest:guest@127.0.0.1:1/"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callcenter_platform.embedded",
        "--port",
        str(port),
        "--var",
        str(tmp_path / "var"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = bytearray()

    async def collect() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            output.extend(chunk)

    reader = asyncio.create_task(collect())
    started = time.monotonic()
    try:
        pending = {info.name for info in SERVICES}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            async with asyncio.timeout(60):
                while pending:
                    assert process.returncode is None, output.decode(errors="replace")[-3000:]
                    for name in sorted(pending):
                        try:
                            r = await client.get(f"/api/{name}/healthz")
                        except httpx.TransportError:
                            break
                        if r.status_code == 200 and r.json()["service"] == name:
                            pending.discard(name)
                    await asyncio.sleep(0.2)
            # The ACD logged in to the PBX simulator over AMI.
            async with asyncio.timeout(max(1.0, 60 - (time.monotonic() - started))):
                while (await client.get("/api/acd/readyz")).status_code != 200:
                    await asyncio.sleep(0.2)
            # Demo data is in place: a demo agent logs in and the token opens another service.
            login = await client.post(
                "/api/agent-state/auth/login",
                json={"work_number": "8001", "extension": "1001", "password": "demo1234"},
            )
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            patients = await client.get("/api/patient/patients", headers={"Authorization": f"Bearer {token}"})
            assert patients.status_code == 200, patients.text
            owners = {p["owner_work_number"] for p in patients.json()["items"]}
            assert owners == {"8001"}, "a demo agent sees their own demo patients, and only those"
        assert time.monotonic() - started < 60
        assert (tmp_path / "var" / "patient.db").exists(), "the embedded mode keeps SQLite files under var/"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 30)
        await reader
    text = output.decode(errors="replace")
    assert code == 0, text[-3000:]
    assert "stopped" in text
    assert "Traceback" not in text, text[-3000:]
