"""Load scenarios: place calls at a rate against the simulator, with a trivial ACD.

    python -m pbxsim.scenario --calls 200 --rate 5 --agents 10 --answer-ms 300 --abandon-ratio 0.1

The ACD here is an AMI client over TCP like the real one: it queues callers that reach
MusicOnHold in [waiting] and connects each to a free agent as trace 01 does
(`Originate PJSIP/<agent> Application=Bridge Data=<caller>`, then `MixMonitor`). Callers
hang up after `--talk-seconds` once connected; with `--abandon-ratio` a share of them gives up
after `--patience` seconds in the queue. `--virtual` runs on virtual time (instant, exact);
without it the run takes real time, which is what benchmarks want.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sys
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbxsim.amiclient import AmiClient, Frame
from pbxsim.clock import RealClock, VirtualClock
from pbxsim.config import Answer, EndpointConfig, SimConfig
from pbxsim.simulator import CallHandle, PbxSimulator


@dataclass
class ScenarioConfig:
    calls: int = 20
    rate: float = 2.0  # calls per second
    agents: int = 5
    first_agent: int = 2001
    answer_ms: int = 300
    talk_seconds: float = 5.0
    abandon_ratio: float = 0.0
    patience: float = 10.0
    dnis: str = "4008001234"
    agi_url: str | None = None
    trunk_capacity: int = 30
    record: bool = False
    recordings_dir: Path = Path("var/recordings")
    virtual: bool = False
    seed: int = 1
    timeout: float = 3600.0  # seconds (virtual or real) before the run gives up


@dataclass
class ScenarioResult:
    offered: int = 0
    rejected: int = 0
    connected: int = 0
    completed: int = 0
    abandoned: int = 0
    failed_originates: int = 0
    events: int = 0
    waits: list[float] = field(default_factory=list)
    elapsed: float = 0.0  # seconds of call time (virtual or real)
    wall_seconds: float = 0.0

    def summary(self) -> str:
        mean_wait = sum(self.waits) / len(self.waits) if self.waits else 0.0
        rate = self.events / self.wall_seconds if self.wall_seconds > 0 else 0.0
        return "\n".join(
            [
                f"calls offered      {self.offered}",
                f"rejected (trunk)   {self.rejected}",
                f"connected to agent {self.connected}",
                f"completed          {self.completed}",
                f"abandoned          {self.abandoned}",
                f"failed originates  {self.failed_originates}",
                f"mean / max wait    {mean_wait:.2f} s / {max(self.waits, default=0.0):.2f} s",
                f"AMI events read    {self.events} ({rate:,.0f}/s over {self.wall_seconds:.2f} s wall, "
                f"{self.elapsed:.1f} s call time)",
            ]
        )


class TrivialAcd:
    """First come, first served: the longest-waiting caller gets the longest-idle agent."""

    def __init__(self, client: AmiClient, agents: list[str], record: bool) -> None:
        self.client = client
        self.free: deque[str] = deque(agents)
        self.queue: deque[str] = deque()
        self.agent_of: dict[str, str] = {}  # agent channel -> extension
        self.record = record
        self.failed = 0
        self.tasks: set[asyncio.Task[object]] = set()
        client.on_event = self.on_event

    def on_event(self, frame: Frame) -> None:
        event = frame.event
        channel = frame.get("Channel") or ""
        if event == "MusicOnHoldStart" and frame.get("Context") == "waiting":
            self.queue.append(channel)
        elif event == "Hangup":
            if channel in self.queue:
                self.queue.remove(channel)
            agent = self.agent_of.pop(channel, None)
            if agent is not None:
                self.free.append(agent)
        elif event == "OriginateResponse":
            agent, _, caller = (frame.get("ActionID") or "").partition("|")
            if frame.get("Response") == "Success":
                self.agent_of[channel] = agent
                if self.record:
                    self._spawn(
                        self.client.action("MixMonitor", Channel=caller, File=f"{caller.replace('/', '-')}.wav")
                    )
            else:
                self.failed += 1
                self.free.append(agent)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.free and self.queue:
            agent, caller = self.free.popleft(), self.queue.popleft()
            self._spawn(
                self.client.action(
                    "Originate",
                    ActionID=f"{agent}|{caller}",
                    Channel=f"PJSIP/{agent}",
                    Application="Bridge",
                    Data=caller,
                    Timeout="15000",
                    Async="true",
                )
            )

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def idle(self) -> None:
        """Until every action sent is answered and every event before that is handled."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self.client.ping_barrier()


async def run_scenario(config: ScenarioConfig) -> ScenarioResult:
    rng = random.Random(config.seed)
    agents = [str(config.first_agent + i) for i in range(config.agents)]
    sim_config = SimConfig(
        port=0,
        users={"acd": "acd"},
        failed_login_delay=0,
        agi_url=config.agi_url,
        trunk_capacity=config.trunk_capacity,
        recordings_dir=config.recordings_dir,
        endpoints={a: EndpointConfig(Answer(config.answer_ms / 1000), f"Agent {a}", a) for a in agents},
    )
    clock = VirtualClock() if config.virtual else RealClock()
    sim = PbxSimulator(sim_config, clock)
    result = ScenarioResult()
    calls: list[CallHandle] = []
    by_channel: dict[str, CallHandle] = {}
    arrivals: dict[str, float] = {}
    started_wall = time.perf_counter()
    await sim.start()
    client = AmiClient()
    try:
        assert sim.ami_port is not None
        await client.connect("127.0.0.1", sim.ami_port)
        await client.login("acd", "acd")
        acd = TrivialAcd(client, agents, config.record)
        start = clock.now()

        def watch(frame: Frame) -> None:
            acd.on_event(frame)
            if frame.event == "BridgeEnter" and frame.get("Channel") in arrivals:
                caller = frame["Channel"]
                result.connected += 1
                result.waits.append(clock.now() - arrivals.pop(caller))
                handle = by_channel[caller]
                clock.call_later(config.talk_seconds, functools.partial(hang_up, handle, completed=True))

        client.on_event = watch

        def hang_up(handle: CallHandle, *, completed: bool) -> None:
            if handle.hungup:
                return
            if completed:
                result.completed += 1
            else:
                result.abandoned += 1
            handle.hangup()

        def give_up(handle: CallHandle) -> None:
            if not handle.hungup and not handle.bridged:
                arrivals.pop(handle.channel, None)
                hang_up(handle, completed=False)

        async def arrive() -> None:
            handle = await sim.inbound_call(f"1380013{len(calls):04d}", config.dnis)
            calls.append(handle)
            result.offered += 1
            if handle.rejected:
                result.rejected += 1
                return
            arrivals[handle.channel] = clock.now()
            by_channel[handle.channel] = handle
            if rng.random() < config.abandon_ratio:
                clock.call_later(config.patience, lambda: give_up(handle))

        for i in range(config.calls):
            clock.call_later(i / config.rate if config.rate > 0 else 0.0, lambda: sim.pbx.spawn(arrive()))

        def finished() -> bool:
            return len(calls) == config.calls and sim.trunk_in_use == 0

        if isinstance(clock, VirtualClock):
            while not finished():
                await acd.idle()
                await sim.settle()
                if finished() or not await sim.step():
                    break
                if clock.now() - start > config.timeout:
                    break
        else:
            await sim.run_until(finished, config.timeout)
        await acd.idle()
        result.failed_originates = acd.failed
        result.elapsed = clock.now() - start
        result.events = len(client.events())
    finally:
        await client.close()
        await sim.stop()
    result.wall_seconds = time.perf_counter() - started_wall
    return result


def parse_args(argv: list[str] | None) -> ScenarioConfig:
    parser = argparse.ArgumentParser(prog="python -m pbxsim.scenario", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0, help="calls per second")
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--answer-ms", type=int, default=300, help="agent phones answer after this long")
    parser.add_argument("--talk-seconds", type=float, default=5.0)
    parser.add_argument("--abandon-ratio", type=float, default=0.0, help="share of callers with limited patience")
    parser.add_argument("--patience", type=float, default=10.0, help="seconds such a caller waits in the queue")
    parser.add_argument("--dnis", default="4008001234")
    parser.add_argument("--agi-url", default=None, help="run the IVR on this FastAGI server first")
    parser.add_argument("--trunk-capacity", type=int, default=30)
    parser.add_argument("--record", action="store_true", help="MixMonitor every connected call")
    parser.add_argument("--recordings-dir", type=Path, default=Path("var/recordings"))
    parser.add_argument("--virtual", action="store_true", help="run on virtual time (instant)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return ScenarioConfig(
        calls=args.calls,
        rate=args.rate,
        agents=args.agents,
        answer_ms=args.answer_ms,
        talk_seconds=args.talk_seconds,
        abandon_ratio=args.abandon_ratio,
        patience=args.patience,
        dnis=args.dnis,
        agi_url=args.agi_url,
        trunk_capacity=args.trunk_capacity,
        record=args.record,
        recordings_dir=args.recordings_dir,
        virtual=args.virtual,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    result = asyncio.run(run_scenario(parse_args(argv)))
    sys.stdout.write(result.summary() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
