"""`make up`: each service as its own uvicorn process on PostgreSQL (a database per service,
created if missing) and RabbitMQ, configured by environment variables only.

    CALLCENTER_PG_URL     postgresql+asyncpg://postgres@127.0.0.1:5432  (server, no database)
    CALLCENTER_AMQP_URL   amqp://guest:guest@127.0.0.1:5672/
    <SERVICE>_DATABASE_URL overrides one service's database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from callcenter_common.catalog import GATEWAY_PORT, SERVICES
from callcenter_platform.keys import ensure_dev_keys


async def ensure_databases(server_url: str, names: list[str]) -> None:
    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://", 1).rstrip("/") + "/postgres"
    conn = await asyncpg.connect(dsn)
    try:
        existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                await conn.execute(f'CREATE DATABASE "{name}"')
                print(f"created database {name}", flush=True)
    finally:
        await conn.close()


def service_environment(server_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CALLCENTER_BUS", "rabbitmq")
    # Services that start after a forced logout still refuse the revoked tokens.
    agent_state = next(i for i in SERVICES if i.name == "agent-state")
    env.setdefault("CALLCENTER_REVOCATIONS_URL", f"http://127.0.0.1:{agent_state.port}/auth/revocations")
    demo = env.get("CALLCENTER_ENV", "dev") != "prod"
    for info in SERVICES:
        env.setdefault(f"{info.env_prefix}DATABASE_URL", f"{server_url.rstrip('/')}/{info.package}")
        if demo:
            env.setdefault(f"{info.env_prefix}SEED_DEMO", "true")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--var", type=Path, default=Path(os.environ.get("CALLCENTER_VAR_DIR", "var")))
    args = parser.parse_args()
    server_url = os.environ.get("CALLCENTER_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
    ensure_dev_keys(args.var)
    asyncio.run(ensure_databases(server_url, [i.package for i in SERVICES]))
    env = service_environment(server_url)
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "--host", args.host, "--no-access-log"]
    processes: list[subprocess.Popen[bytes]] = []
    for info in SERVICES:
        cmd = [*uvicorn, "--port", str(info.port), f"{info.package}.main:create_app"]
        processes.append(subprocess.Popen(cmd, env=env))
    processes.append(subprocess.Popen([*uvicorn, "--port", str(GATEWAY_PORT), "gateway.main:create_app"], env=env))
    print(f"\nCall center running (full stack): http://{args.host}:{GATEWAY_PORT}/api/docs  Ctrl-C stops it.\n")

    def stop(*_: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    # One process ending (a crash, or Ctrl-C) ends the whole stack.
    while all(p.poll() is None for p in processes):
        time.sleep(0.5)
    stop()
    sys.exit(max(p.wait() for p in processes))


if __name__ == "__main__":
    main()
