"""Benchmark of agent-state: agent state changes applied end to end, with 1,000 agents logged in.

    .venv/bin/python bench/agent_state.py

One change = `PUT /agents/me/state` over HTTP → committed in PostgreSQL with its outbox row →
relayed to RabbitMQ → `agent.state_changed` consumed by a separate consumer. The service runs in
its own process (uvicorn); this script plays 1,000 agents toggling idle ⇄ busy, each agent with
at most one change in flight, and a consumer as another service would have. Phase 1 keeps
BENCH_CONCURRENCY changes in flight (capacity); phase 2 sends at half that rate (latency under a
sustainable load). It prints changes/s and latency percentiles of both, then removes its
database, exchange and queues.

Environment: BENCH_PG_DSN (admin DSN, default postgresql://postgres@127.0.0.1:5432/postgres),
BENCH_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/), BENCH_AGENTS (1000),
BENCH_SECONDS (saturation phase, 12), BENCH_PACED_SECONDS (10), BENCH_CONCURRENCY (64),
BENCH_WORKERS (uvicorn processes, 1). The whole run stops after 60 s at most.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the service package; as a script its folder would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import aio_pika  # noqa: E402
import asyncpg  # noqa: E402
import httpx  # noqa: E402

from agent_state.models import AgentGroup, GroupMember, User  # noqa: E402
from agent_state.security import Passwords  # noqa: E402
from callcenter_common.auth import generate_keypair  # noqa: E402
from callcenter_common.bus import RabbitBus  # noqa: E402
from callcenter_common.db import Database  # noqa: E402
from callcenter_common.events import Envelope  # noqa: E402

PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
AGENTS = int(os.environ.get("BENCH_AGENTS", "1000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "12"))
PACED_SECONDS = float(os.environ.get("BENCH_PACED_SECONDS", "10"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
HARD_LIMIT_SECONDS = 60.0
PASSWORD = "bench-password"
GROUP_SIZE = 100
ROOT = Path(__file__).resolve().parent.parent


class Consumer:
    """Resolves the pending change of an agent when its `agent.state_changed` arrives."""

    def __init__(self) -> None:
        self.waiting: dict[str, tuple[str, asyncio.Future[float]]] = {}
        self.received = 0

    async def on_event(self, envelope: Envelope) -> None:
        self.received += 1
        user_id, state = envelope.data["user_id"], envelope.data["state"]
        pending = self.waiting.get(user_id)
        if pending is not None and pending[0] == state and not pending[1].done():
            pending[1].set_result(time.perf_counter())

    def expect(self, user_id: str, state: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[user_id] = (state, future)
        return future


@dataclass
class Sample:
    end_to_end: list[float] = field(default_factory=list)
    api: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.end_to_end) / self.elapsed if self.elapsed else 0.0


def report(title: str, sample: Sample) -> None:
    ms = 1000.0
    e2e, api = sample.end_to_end, sample.api
    print(f"-- {title}: {len(e2e)} changes applied end-to-end in {sample.elapsed:.1f} s")
    print(f"   throughput {sample.rate:.0f} changes/s (API → DB → outbox → RabbitMQ → consumer)")
    print(
        f"   end-to-end latency ms: p50 {percentile(e2e, 50) * ms:.1f}, p95 {percentile(e2e, 95) * ms:.1f}, "
        f"p99 {percentile(e2e, 99) * ms:.1f}, max {max(e2e) * ms:.1f}"
    )
    print(f"   API response ms: p50 {statistics.median(api) * ms:.1f}, p99 {percentile(api, 99) * ms:.1f}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def seed(database_url: str, agents: int) -> list[tuple[str, str]]:
    """Agents in groups of 100, straight into the database; returns (work number, extension)."""
    db = Database(database_url)
    passwords = Passwords(time_cost=1, memory_kib=1024, parallelism=1)
    password_hash = await passwords.hash(PASSWORD)
    now = datetime.now(UTC)
    people: list[tuple[str, str]] = []
    async with db.session() as session:
        groups = [
            AgentGroup(id=str(uuid.uuid4()), name=f"bench-{g}", description="", created_at=now)
            for g in range((agents + GROUP_SIZE - 1) // GROUP_SIZE)
        ]
        session.add_all(groups)
        await session.flush()
        users = []
        for i in range(agents):
            work_number, extension = f"B{i:05d}", str(20000 + i)
            user = User(
                id=str(uuid.uuid4()),
                work_number=work_number,
                name=f"Bench agent {i}",
                department="call_center",
                role="agent",
                password_hash=password_hash,
                active=True,
                failed_logins=0,
                password_changed_at=now,
                created_at=now,
                updated_at=now,
            )
            users.append(user)
            people.append((work_number, extension))
        session.add_all(users)
        await session.flush()
        session.add_all(
            GroupMember(group_id=groups[i // GROUP_SIZE].id, user_id=u.id, signed_in=True, added_at=now)
            for i, u in enumerate(users)
        )
    await db.dispose()
    return people


async def wait_ready(client: httpx.AsyncClient, server: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        if server.returncode is not None:
            raise RuntimeError("the service exited during start-up")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the service did not become ready")


async def run(database_url: str, exchange: str, service_name: str, var_dir: str) -> None:
    private_key, public_key = generate_keypair()
    port = free_port()
    env = {
        **os.environ,
        "AGENT_STATE_DATABASE_URL": database_url,
        # Its own queue names, so a platform running on the same broker is never touched.
        "AGENT_STATE_SERVICE_NAME": service_name,
        "AGENT_STATE_JWT_PRIVATE_KEY": private_key,
        "AGENT_STATE_PASSWORD_HASH_TIME_COST": "1",
        "AGENT_STATE_PASSWORD_HASH_MEMORY_KIB": "1024",
        "AGENT_STATE_PASSWORD_HASH_PARALLELISM": "1",
        "AGENT_STATE_OUTBOX_POLL_SECONDS": "0.5",
        "CALLCENTER_ENV": "test",
        "CALLCENTER_AMQP_URL": AMQP_URL,
        "CALLCENTER_EXCHANGE": exchange,
        "CALLCENTER_JWT_PUBLIC_KEY": public_key,
        "CALLCENTER_LOG_LEVEL": "WARNING",
        "CALLCENTER_VAR_DIR": var_dir,
    }
    command = [sys.executable, "-m", "uvicorn", "agent_state.main:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    # The client drops idle connections first, so it never reuses one the server is closing.
    command += ["--timeout-keep-alive", "30", "--workers", os.environ.get("BENCH_WORKERS", "1")]
    server = await asyncio.create_subprocess_exec(*command, env=env, cwd=var_dir)
    consumer = Consumer()
    bus = RabbitBus(AMQP_URL, exchange=exchange, queue_type="classic", prefetch=1000)
    bus.subscribe(f"bench.{exchange}", ["agent.state_changed"], consumer.on_event, exclusive=True)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY, keepalive_expiry=10)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
            await wait_ready(client, server)
            people = await seed(database_url, AGENTS)
            await bus.start()
            await bus.wait_connected(10)

            started = time.perf_counter()
            tokens: dict[str, tuple[str, str]] = {}  # work number -> (token, user id)
            gate = asyncio.Semaphore(CONCURRENCY)

            async def login(work_number: str, extension: str) -> None:
                async with gate:
                    body = {"work_number": work_number, "password": PASSWORD, "extension": extension}
                    response = await client.post("/auth/login", json=body)
                    response.raise_for_status()
                    data = response.json()
                    tokens[work_number] = (data["access_token"], data["user"]["id"])

            await asyncio.gather(*(login(w, e) for w, e in people))
            while consumer.received < len(people):  # every login's idle event has arrived
                await asyncio.sleep(0.05)
            print(f"{len(people)} agents logged in in {time.perf_counter() - started:.1f} s")

            agents = list(tokens.values())
            states = dict.fromkeys((user_id for _, user_id in agents), "idle")
            busy_agents: set[str] = set()

            async def change(token: str, user_id: str, result: Sample) -> None:
                """One agent toggles idle ⇄ busy; measured until its event is consumed."""
                busy_agents.add(user_id)
                target = "busy" if states[user_id] == "idle" else "idle"
                arrived = consumer.expect(user_id, target)
                sent = time.perf_counter()
                response = await client.put(
                    "/agents/me/state",
                    json={"state": target, "reason": "bench" if target == "busy" else ""},
                    headers={"Authorization": f"Bearer {token}"},
                )
                answered = time.perf_counter()
                response.raise_for_status()
                received = await asyncio.wait_for(arrived, 10)
                result.api.append(answered - sent)
                result.end_to_end.append(received - sent)
                states[user_id] = target
                busy_agents.discard(user_id)

            # Phase 1, saturation: CONCURRENCY changes always in flight.
            saturated = Sample()
            stop_at = time.perf_counter() + SECONDS

            async def worker(mine: list[tuple[str, str]]) -> None:
                while True:
                    for token, user_id in mine:
                        if time.perf_counter() >= stop_at:
                            return
                        await change(token, user_id, saturated)

            began = time.perf_counter()
            await asyncio.gather(*(worker(agents[i::CONCURRENCY]) for i in range(CONCURRENCY)))
            saturated.elapsed = time.perf_counter() - began
            report(f"saturation, {CONCURRENCY} in flight", saturated)

            # Phase 2, paced at half the measured capacity: latency under a sustainable load.
            rate = max(1.0, saturated.rate / 2)
            paced = Sample()
            tasks: list[asyncio.Task[None]] = []
            began = time.perf_counter()
            for n in range(int(rate * PACED_SECONDS)):
                await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
                token, user_id = next(a for a in agents[n % len(agents) :] + agents if a[1] not in busy_agents)
                tasks.append(asyncio.create_task(change(token, user_id, paced)))
            await asyncio.gather(*tasks)
            paced.elapsed = time.perf_counter() - began
            report(f"paced at {rate:.0f} changes/s", paced)

    finally:
        await bus.close()
        server.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.wait(), 10)
        except TimeoutError:
            server.kill()
            await server.wait()


async def main() -> None:
    run_id = uuid.uuid4().hex[:8]
    name, exchange, service_name = f"bench_agent_state_{run_id}", f"bench.{run_id}", f"bench-agent-state-{run_id}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        with tempfile.TemporaryDirectory() as var_dir:
            await asyncio.wait_for(run(f"{base}/{name}", exchange, service_name, var_dir), HARD_LIMIT_SECONDS)
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            for queue in (f"{service_name}.calls", f"{service_name}.calls.dlq"):
                await channel.queue_delete(queue)
            await channel.exchange_delete(exchange)


if __name__ == "__main__":
    asyncio.run(main())
