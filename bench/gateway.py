"""Gateway overhead: the same requests straight to a service and through the gateway (HTTP mode).

    .venv/bin/python bench/gateway.py [--requests 20000] [--concurrency 32] [--path /healthz]

Starts the reporting service (SQLite, in-memory bus) and the gateway (HTTP mode, CORS and
rate limit on, every request with a bearer token) under uvicorn, each in its own process,
then drives keep-alive HTTP/1.1 connections from a raw asyncio client, cheap enough that
the servers, not the client, are measured.  Direct and gateway runs alternate in rounds so
that load from elsewhere on the machine hits both alike; the CPU time each server process
used per request is read from /proc and does not depend on that load at all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from callcenter_common.auth import TokenIssuer, generate_keypair

HOST = "127.0.0.1"
STARTUP_SECONDS = 20.0


@dataclass
class Server:
    port: int
    pid: int = 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (Linux)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return float("nan")
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    label: str
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # server name -> CPU seconds used

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def add(self, other: Result) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.latencies += other.latencies
        for name, seconds in other.cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds

    def line(self) -> str:
        cpu = ", ".join(f"{name} {seconds / self.requests * 1e6:.0f} µs" for name, seconds in self.cpu.items())
        return (
            f"{self.label:<16} {self.throughput:>7.0f} req/s   p50 {self.percentile(50) * 1000:5.2f} ms"
            f"   p99 {self.percentile(99) * 1000:5.2f} ms   CPU per request: {cpu}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def uvicorn_process(factory: str, server: Server, env: dict[str, str]) -> Iterator[None]:
    command = [
        sys.executable, "-m", "uvicorn", factory, "--factory",
        "--host", HOST, "--port", str(server.port),
        "--loop", "uvloop", "--http", "httptools",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **env})
    server.pid = process.pid
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_request(port: int, path: str, token: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/json\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise RuntimeError("the bench client reads Content-Length bodies only")
    await reader.readexactly(length)
    return int(lines[0].split(b" ", 2)[1])


async def wait_until_up(port: int, request: bytes) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(request)
            status = await read_response(reader)
            writer.close()
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answered 200 on :{port} within {STARTUP_SECONDS}s")
        await asyncio.sleep(0.1)


async def drive(
    label: str, target: Server, request: bytes, requests: int, concurrency: int, servers: dict[str, Server]
) -> Result:
    result = Result(label, requests)
    per_connection = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]

    async def connection(count: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, target.port)
        try:
            for _ in range(count):
                started = time.perf_counter()
                writer.write(request)
                status = await read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"{label}: status {status}")
        finally:
            writer.close()

    cpu_before = {name: s.cpu_seconds() for name, s in servers.items()}
    started = time.perf_counter()
    await asyncio.gather(*(connection(n) for n in per_connection))
    result.seconds = time.perf_counter() - started
    result.cpu = {name: s.cpu_seconds() - cpu_before[name] for name, s in servers.items()}
    return result


@dataclass
class Bench:
    service: Server
    gateway: Server
    path: str
    token: str

    async def alternate(self, requests: int, concurrency: int, rounds: int) -> tuple[Result, Result, list[float]]:
        direct_request = http_request(self.service.port, self.path, self.token)
        gateway_request = http_request(self.gateway.port, "/api/reporting" + self.path, self.token)
        direct, through, ratios = Result("direct"), Result("through gateway"), []
        for _ in range(rounds):
            d = await drive(
                "direct", self.service, direct_request, requests // rounds, concurrency, {"service": self.service}
            )
            servers = {"service": self.service, "gateway": self.gateway}
            g = await drive("through gateway", self.gateway, gateway_request, requests // rounds, concurrency, servers)
            direct.add(d)
            through.add(g)
            ratios.append(g.throughput / d.throughput)
        return direct, through, ratios

    async def run(self, args: argparse.Namespace) -> None:
        await wait_until_up(self.service.port, http_request(self.service.port, self.path, self.token))
        await wait_until_up(
            self.gateway.port, http_request(self.gateway.port, "/api/reporting" + self.path, self.token)
        )
        await self.alternate(min(2000, args.requests // 5), args.concurrency, 1)  # warm-up

        direct, through, ratios = await self.alternate(args.requests, args.concurrency, args.rounds)
        print(f"throughput: {args.requests} requests each, {args.concurrency} connections, {args.rounds} rounds")
        print("  " + direct.line())
        print("  " + through.line())
        ratio = through.throughput / direct.throughput
        print(f"  throughput ratio {ratio:.2f} (aim >= 0.70); per round {' '.join(f'{r:.2f}' for r in ratios)}")

        # Saturated, latency is queueing (connections / throughput); one connection shows the added work.
        direct, through, _ = await self.alternate(args.latency_requests, 1, args.rounds)
        print(f"latency: {args.latency_requests} requests each, one connection")
        print("  " + direct.line())
        print("  " + through.line())
        added = (through.percentile(50) - direct.percentile(50)) * 1000
        print(f"  p50 added {added:.2f} ms (aim <= 1.00)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--path", default="/healthz", help="path on the reporting service")
    args = parser.parse_args()

    private_key, public_key = generate_keypair()
    token = TokenIssuer(private_key, issuer="callcenter.agent-state", audience="callcenter").issue(
        user_id="bench", work_number="0000", ttl_seconds=3600
    )
    service, gateway = Server(free_port()), Server(free_port())
    with tempfile.TemporaryDirectory() as tmp:
        common = {"CALLCENTER_BUS": "memory", "CALLCENTER_ENV": "dev", "CALLCENTER_JWT_PUBLIC_KEY": public_key}
        service_env = {**common, "REPORTING_DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'reporting.db'}"}
        gateway_env = {
            **common,
            "GATEWAY_SERVICE_URLS": f'{{"reporting": "http://{HOST}:{service.port}"}}',
            "GATEWAY_CORS_ORIGINS": '["https://spa.example"]',
            # The limiter runs on every request (keyed by the token's user), with a limit this run cannot reach.
            "GATEWAY_RATE_LIMIT_PER_SECOND": "1000000",
            "GATEWAY_RATE_LIMIT_BURST": "1000000",
        }
        with (
            uvicorn_process("reporting.main:create_app", service, service_env),
            uvicorn_process("gateway.main:create_app", gateway, gateway_env),
        ):
            print(f"GET {args.path} on the reporting service, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
            uvloop.run(Bench(service, gateway, args.path, token).run(args))


if __name__ == "__main__":
    main()
