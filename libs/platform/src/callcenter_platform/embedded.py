"""`make run`: every service in one process, SQLite under var/, the in-process bus, the PBX
simulator, demo data, the gateway on :8000.  Ctrl-C stops it cleanly."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from callcenter_common.bus import InMemoryBus
from callcenter_common.catalog import GATEWAY_PORT, SERVICES
from callcenter_common.observability import configure_logging
from callcenter_platform.keys import ensure_dev_keys
from pbxsim import PbxSimulator, SimConfig

log = logging.getLogger("callcenter.embedded")


def prepare_environment(var_dir: Path) -> None:
    """Settings of the embedded mode, unless the environment already says otherwise."""
    var_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CALLCENTER_ENV", "dev")
    os.environ.setdefault("CALLCENTER_BUS", "memory")
    os.environ.setdefault("CALLCENTER_VAR_DIR", str(var_dir))
    for info in SERVICES:
        database = (var_dir / f"{info.package}.db").resolve()
        os.environ.setdefault(f"{info.env_prefix}DATABASE_URL", f"sqlite+aiosqlite:///{database}")
        os.environ.setdefault(f"{info.env_prefix}SEED_DEMO", "true")
    ensure_dev_keys(var_dir)


class EmbeddedPlatform:
    """The services, the gateway and the bus of one process; usable from tests too."""

    def __init__(self) -> None:
        self.bus = InMemoryBus()
        self.services: dict[str, FastAPI] = {}
        self.gateway: FastAPI | None = None
        self.pbx: PbxSimulator | None = None
        self._stack = AsyncExitStack()

    async def start(self) -> FastAPI:
        await self._start_pbx()
        await self.bus.start()
        self._stack.push_async_callback(self.bus.close)
        for info in SERVICES:
            module = importlib.import_module(f"{info.package}.main")
            app: FastAPI = module.create_app(bus=self.bus)
            await self._stack.enter_async_context(app.router.lifespan_context(app))
            self.services[info.name] = app
            log.info("started %s", info.name)
        gateway_main = importlib.import_module("gateway.main")
        self.gateway = gateway_main.create_app(bus=self.bus, services=self.services)
        return self.gateway

    async def _start_pbx(self) -> None:
        """The PBX simulator plays Asterisk: AMI for the ACD (it records under var/recordings)."""
        var_dir = Path(os.environ.get("CALLCENTER_VAR_DIR", "var"))
        port = int(os.environ.get("ACD_AMI_PORT", "5038"))
        config = SimConfig(port=port, recordings_dir=var_dir / "recordings", failed_login_delay=1.0)
        self.pbx = PbxSimulator(config)
        try:
            await self.pbx.start()
        except OSError:  # a real Asterisk (or another run) holds the port: take a free one
            config.port = 0
            self.pbx = PbxSimulator(config)
            await self.pbx.start()
        self._stack.push_async_callback(self.pbx.stop)
        os.environ["ACD_AMI_HOST"] = config.host
        os.environ["ACD_AMI_PORT"] = str(self.pbx.ami_port)
        username, secret = next(iter(config.users.items()))
        os.environ.setdefault("ACD_AMI_USERNAME", username)
        os.environ.setdefault("ACD_AMI_SECRET", secret)
        log.info("PBX simulator: AMI on %s:%d", config.host, self.pbx.ami_port)

    async def stop(self) -> None:
        await self._stack.aclose()


async def serve(host: str, port: int, var_dir: Path) -> None:
    prepare_environment(var_dir)
    platform = EmbeddedPlatform()
    gateway = await platform.start()
    server = uvicorn.Server(uvicorn.Config(gateway, host=host, port=port, log_config=None, lifespan="on"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.handle_exit, sig, None)
    print(
        f"\nCall center running (embedded): http://{host}:{port}/api/docs\n"
        f"  health of each service: http://{host}:{port}/api/<service>/healthz\n"
        f"  PBX simulator (AMI): 127.0.0.1:{platform.pbx.ami_port if platform.pbx else '-'}\n"
        f"  services: {', '.join(i.name for i in SERVICES)}\n"
        f"  data: {var_dir.resolve()}  (delete it to start afresh)\n"
        "  Ctrl-C stops it.\n",
        flush=True,
    )
    try:
        await server._serve()  # uvicorn's own signal capture would fight ours
    finally:
        await platform.stop()
        print("stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GATEWAY_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", GATEWAY_PORT)))
    parser.add_argument("--var", type=Path, default=Path(os.environ.get("CALLCENTER_VAR_DIR", "var")))
    args = parser.parse_args()
    configure_logging(os.environ.get("CALLCENTER_LOG_LEVEL", "INFO"), json_lines=False)
    asyncio.run(serve(args.host, args.port, args.var))


if __name__ == "__main__":
    main()
