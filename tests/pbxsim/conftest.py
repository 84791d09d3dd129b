"""Fixtures of the PBX simulator tests: the Asterisk traces, a simulator set up like the
Asterisk that produced them, a small FastAGI server, and a replayer that plays a trace's
client side against the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import re
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pbxsim import (
    Answer,
    Busy,
    DialContext,
    EndpointConfig,
    InboundContext,
    NoAnswer,
    PbxSimulator,
    SimConfig,
    VirtualClock,
    default_contexts,
)
from pbxsim.amiclient import AmiClient
from pbxsim.traces import Trace, load_trace

# <repo>/tests/pbxsim/conftest.py -> <repo>/../shared/asterisk-traces (same layout in CI)
TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "asterisk-traces"
TRACE_EPOCH = 1796000437.0  # the traces' Uniqueids start around here


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    path = TRACES.resolve()
    if not (path / "README.md").is_file():
        pytest.fail(
            f"Asterisk traces not found at {path}. They live in shared/asterisk-traces next to the repository "
            "(<clone>/../shared); fetch them there before running these tests."
        )
    return path


@pytest.fixture(scope="session")
def trace(traces_dir: Path) -> Callable[[str], Trace]:
    cache: dict[str, Trace] = {}

    def get(name: str) -> Trace:
        if name not in cache:
            cache[name] = load_trace(traces_dir / name)
        return cache[name]

    return get


def write_tone(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(2 * int(8000 * seconds)))


@pytest.fixture
def sounds_dir(tmp_path: Path) -> Path:
    """The prompts of the traces: beep (0.3 s), probe-prompt (1 s), digits/0-9 (0.2 s)."""
    root = tmp_path / "sounds"
    write_tone(root / "en" / "beep.wav", 0.3)
    write_tone(root / "en" / "probe-prompt.wav", 1.0)
    for digit in range(10):
        write_tone(root / "en" / "digits" / f"{digit}.wav", 0.2)
    return root


def trace_config(tmp_path: Path, sounds_dir: Path, agi_url: str | None) -> SimConfig:
    """The Asterisk of the traces: manager.conf [probe], pjsip.conf endpoints, the dialplan."""
    contexts = default_contexts()
    contexts["from-trunk"] = InboundContext(
        variables=(("IVR_LANG", "zh"), ("IVR_CHOICE", "1"), ("__ACD_SKILL", "sales"))
    )
    contexts["redirected"] = DialContext(target="1002", noop="Redirected by AMI")
    return SimConfig(
        port=0,
        users={"probe": "probe123"},
        failed_login_delay=0,
        agi_url=agi_url,
        sounds_dir=sounds_dir,
        recordings_dir=tmp_path / "recordings",
        contexts=contexts,
        endpoints={
            "1001": EndpointConfig(Answer(0.3), "Agent 1001", "1001"),
            "1002": EndpointConfig(Answer(0.3), "Agent 1002", "1002"),
            "1003": EndpointConfig(NoAnswer()),
            "1004": EndpointConfig(Busy()),
            "1005": EndpointConfig(Answer(0.3), "Agent 1005", "1005"),
            "1009": EndpointConfig(Answer(0.2), "Supervisor", "1009"),
        },
        carrier_behaviour=Answer(0.8),
    )


# -- a FastAGI server --------------------------------------------------------------------------------

FINAL_LINE = re.compile(r"^\d{3} ")
Script = Callable[["AgiConnection"], Awaitable[None]]


@dataclass
class AgiConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    env: dict[str, str] = field(default_factory=dict)
    env_lines: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # every line after the env block

    async def line(self) -> str:
        raw = await self.reader.readline()
        if not raw:
            raise ConnectionError("FastAGI client closed")
        text = raw.decode().rstrip("\n")
        self.received.append(text)
        return text

    async def command(self, text: str) -> str:
        """Send a command and return its reply (the last line of a multi-line reply)."""
        self.writer.write(f"{text}\n".encode())
        while True:
            line = await self.line()
            if FINAL_LINE.match(line):
                return line


class FastAgiServer:
    def __init__(self) -> None:
        self.connections: list[AgiConnection] = []
        self.script: Script = self.hang_up_at_once
        self.finished = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.port = 0

    @staticmethod
    async def hang_up_at_once(conn: AgiConnection) -> None:
        return None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, script: str = "inbound?dnis=${EXTEN}") -> str:
        return f"agi://127.0.0.1:{self.port}/{script}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = AgiConnection(reader, writer)
        self.connections.append(conn)
        try:
            block = await reader.readuntil(b"\n\n")
            conn.env_lines = block.decode().split("\n")[:-2]
            conn.env = {key: value for key, _, value in (line.partition(": ") for line in conn.env_lines)}
            await self.script(conn)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            self.finished.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def fastagi() -> AsyncIterator[FastAgiServer]:
    server = FastAgiServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def ivr_script(trace: Callable[[str], Trace]) -> Script:
    """The IVR of the traces (fastagi-inbound.txt): its commands, then it closes the socket."""
    commands = [line for frame in trace("fastagi-inbound.txt").sent() for line in frame.lines]

    async def script(conn: AgiConnection) -> None:
        for command in commands:
            await conn.command(command)

    return script


# -- simulators ---------------------------------------------------------------------------------------


@pytest.fixture
async def sims() -> AsyncIterator[list[PbxSimulator]]:
    """Simulators started by a test are stopped after it; a failed timer fails the test."""
    started: list[PbxSimulator] = []
    yield started
    for sim in started:
        await sim.stop()
        assert not sim.errors, sim.errors


@pytest.fixture
def sim_config(tmp_path: Path, sounds_dir: Path, fastagi: FastAgiServer) -> SimConfig:
    """The configuration `make_sim()` uses unless given another; tests may change it first."""
    return trace_config(tmp_path, sounds_dir, fastagi.url())


@pytest.fixture
def make_sim(sim_config: SimConfig, sims: list[PbxSimulator]) -> Callable[..., Awaitable[PbxSimulator]]:
    async def make(config: SimConfig | None = None, *, agi: bool = True) -> PbxSimulator:
        config = config or sim_config
        if not agi:
            config.agi_url = None
        sim = PbxSimulator(config, VirtualClock(start_wall=TRACE_EPOCH))
        await sim.start()
        sims.append(sim)
        return sim

    return make


@pytest.fixture
async def ami_clients() -> AsyncIterator[list[AmiClient]]:
    clients: list[AmiClient] = []
    yield clients
    for client in clients:
        await client.close()


@pytest.fixture
def connect(ami_clients: list[AmiClient]) -> Callable[[PbxSimulator], Awaitable[AmiClient]]:
    async def open_client(sim: PbxSimulator) -> AmiClient:
        client = AmiClient()
        assert sim.ami_port is not None
        await client.connect("127.0.0.1", sim.ami_port)
        ami_clients.append(client)
        return client

    return open_client
