"""AMI ingest: events/s the ACD applies from the PBX simulator over loopback TCP, next to a bare reader.

    .venv/bin/python bench/ami_ingest.py [--calls 2000] [--wave 100] [--repeat 3]

The simulator (virtual clock) plays `--calls` inbound calls, `--wave` at a time: trunk call,
music on hold, an agent originated with Bridge(), hold / unhold, the caller hangs up. Two AMI
clients are logged in: the ACD (the real service: reader, live model, call.* facts, and the
writer putting them into the outbox of a SQLite database) and a bare asyncio reader that only
cuts frames and parses every one into a dict. Both pause reading while a wave is played, so
the wave waits in their sockets; then each in turn is let loose on the same bytes and timed
until it has consumed them (the ACD: the model has ended the wave's last call; the bare
reader: it has read the UserEvent sent after the wave). The times of all waves are summed; of
`--repeat` runs the median one is reported (the machine's other load moves single runs a lot).
Waves keep the backlog to a few MB: asyncio's send buffer of 3.11 is a bytearray whose head is
deleted on each send, so one backlog of the whole run would measure that, not the readers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY

from acd.config import AcdSettings
from acd.main import create_app
from acd.service import AcdService
from callcenter_common.bus import InMemoryBus
from callcenter_common.settings import PlatformSettings
from pbxsim import Answer, EndpointConfig, PbxSimulator, SimConfig, VirtualClock
from pbxsim.amiclient import AmiClient as SimAmiClient

SECRET = "bench-secret"
SENTINEL = b"Event: UserEvent"


class BareReader(asyncio.Protocol):
    """The least a reader can do: frames cut on the blank line, each parsed into a dict."""

    def __init__(self) -> None:
        self.rest = b""
        self.events = 0
        self.waves = 0
        self.wanted_waves = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        frames = (self.rest + data).split(b"\r\n\r\n")
        self.rest = frames.pop()
        for frame in frames:
            headers: dict[str, str] = {}
            for line in frame.decode("utf-8", "replace").split("\r\n"):
                key, sep, value = line.partition(": ")
                if sep:
                    headers[key] = value
            if "Event" in headers:
                self.events += 1
                if headers["Event"] == "UserEvent" and headers.get("UserEvent") == "WaveDone":
                    self.waves += 1
                    if self.waves >= self.wanted_waves and not self.done.done():
                        self.done.set_result(None)


def frames_seen() -> float:
    outcomes = ("applied", "ignored", "malformed")
    return sum(REGISTRY.get_sample_value("acd_ami_events_total", {"outcome": o}) or 0.0 for o in outcomes)


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0)
    except TimeoutError:
        raise SystemExit(f"timed out waiting for {what}") from None


async def play_wave(sim: PbxSimulator, ops: SimAmiClient, first: int, size: int) -> None:
    handles = [await sim.inbound_call(caller=f"138{first + i:08d}") for i in range(size)]
    await sim.advance(2.0)
    for i, call in enumerate(handles):
        await ops.send(
            "Originate",
            [("Variable", f"ACD_CALLER={call.channel}")],
            Channel=f"PJSIP/{2000 + i}",
            Application="Bridge",
            Data=call.channel,
            Timeout="15000",
            CallerID=f'"{call.info().caller_num}" <{call.info().caller_num}>',
            Async="true",
        )
    await sim.advance(1.0)
    for i in range(size):
        sim.endpoint(str(2000 + i)).hold()
    await sim.advance(0.5)
    for i in range(size):
        sim.endpoint(str(2000 + i)).unhold()
    await sim.advance(0.5)
    for call in handles:
        call.hangup()
    await sim.advance(0.5)
    await ops.send("UserEvent", UserEvent="WaveDone")


@dataclass
class Run:
    events: int
    bare_seconds: float
    acd_events: float
    acd_seconds: float
    facts: int
    drained: float
    writer_seconds: float

    @property
    def bare_rate(self) -> float:
        return self.events / self.bare_seconds

    @property
    def acd_rate(self) -> float:
        return self.acd_events / self.acd_seconds

    @property
    def ratio(self) -> float:
        return self.acd_rate / self.bare_rate


async def measure(calls: int, wave: int) -> Run:
    config = SimConfig(
        port=0,
        users={"acd": SECRET, "bare": SECRET, "ops": SECRET},
        failed_login_delay=0,
        trunk_capacity=wave * 2,
        write_buffer_limit=1 << 31,
        default_endpoint=EndpointConfig(behaviour=Answer(after=0.3)),
    )
    async with PbxSimulator(config, clock=VirtualClock()) as sim:
        assert sim.ami_port is not None
        workdir = Path(tempfile.mkdtemp(prefix="ami-ingest-"))
        settings = AcdSettings(
            database_url=f"sqlite+aiosqlite:///{workdir / 'acd.db'}",
            platform=PlatformSettings(bus="memory"),
            ami_port=sim.ami_port,
            ami_username="acd",
            ami_secret=SECRET,
            ami_idle_timeout_seconds=3600,
            resync_interval_seconds=0,
            fact_queue_limit=10_000_000,
        )
        bus = InMemoryBus()
        await bus.start()
        app = create_app(settings, bus=bus)
        async with app.router.lifespan_context(app):
            service: AcdService = app.state.acd
            await wait_for(lambda: service.ami.connected, "the ACD to log in", 30)
            await service.wait_resynced()

            loop = asyncio.get_running_loop()
            _, bare = await loop.create_connection(BareReader, "127.0.0.1", sim.ami_port)
            assert bare.transport is not None
            bare.transport.write(f"Action: Login\r\nUsername: bare\r\nSecret: {SECRET}\r\nEvents: on\r\n\r\n".encode())
            await wait_for(lambda: bare.events >= 1, "the bare reader to log in", 30)  # FullyBooted
            ops = SimAmiClient()
            await ops.connect("127.0.0.1", sim.ami_port)
            await ops.login("ops", SECRET, events="off")

            bare_seconds = acd_seconds = 0.0
            acd_events = 0.0
            bare.events = 0
            played = 0
            while played < calls:
                size = min(wave, calls - played)
                service.ami.pause_reading()
                bare.transport.pause_reading()
                ended = service.model.ended_calls + size
                await play_wave(sim, ops, played, size)
                played += size

                bare.wanted_waves += 1
                bare.done = loop.create_future()
                started = time.perf_counter()
                bare.transport.resume_reading()
                await wait_for(bare.done.done, "the bare reader")
                bare_seconds += time.perf_counter() - started

                seen = frames_seen()
                started = time.perf_counter()
                service.ami.resume_reading()
                await wait_for(lambda: service.model.ended_calls >= ended, "the ACD")  # noqa: B023
                acd_seconds += time.perf_counter() - started
                acd_events += frames_seen() - seen
            await ops.close()
            bare.transport.close()
            started = time.perf_counter()
            await wait_for(lambda: not len(service.queue) and not service.writer._batch, "the outbox writer")
            drained = time.perf_counter() - started
            facts = service.writer.written_total
            writer_seconds = service.writer.busy_seconds
        await bus.close()
    return Run(bare.events, bare_seconds, acd_events, acd_seconds, facts, drained, writer_seconds)


async def main(calls: int, wave: int, repeat: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    runs = []
    for _ in range(repeat):
        run = await measure(calls, wave)
        runs.append(run)
        print(
            f"run {len(runs)}: bare {run.bare_rate:9,.0f} events/s, ACD {run.acd_rate:9,.0f} events/s, "
            f"ratio {run.ratio:.2f}; outbox writer {run.facts} facts in {run.writer_seconds:.2f} s of transactions "
            f"({run.facts / run.writer_seconds:,.0f}/s), done {run.drained:.3f} s after the last wave"
        )
    middle = sorted(runs, key=lambda r: r.ratio)[len(runs) // 2]
    print(f"{calls} calls in waves of {wave}: {middle.events} AMI events per run; the median run:")
    print(f"bare asyncio reader (frames + a dict per frame): {middle.bare_rate:10,.0f} events/s")
    print(f"ACD (reader + live model + call.* facts):        {middle.acd_rate:10,.0f} events/s")
    print(f"ratio ACD / bare reader: {middle.ratio:.2f}")
    if middle.acd_rate < 20_000 or middle.ratio < 0.5:
        print("below the aim (>= 20,000 events/s and >= 0.5 of the bare reader)", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--wave", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median one is reported")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.wave, args.repeat))
