"""Test helpers of the ACD (not fixtures): replaying shared/asterisk-traces into its reader and model,
and driving the ACD against the PBX simulator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from panoramisk.message import Message
from sqlalchemy import func, select
from testkit import wait_until

from acd.ami import AmiReader
from acd.calls import CallModel
from acd.models import bus_tables
from acd.notifier import CallNotifier, FactQueue, StagedFact
from acd.service import AcdService
from callcenter_common.bus import Bus
from callcenter_common.clock import ManualClock
from callcenter_common.events import Envelope
from pbxsim import PbxSimulator
from pbxsim.amiclient import AmiClient as SimAmiClient

TRACES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-traces"
EPOCH = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def received_chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """Each `<<` line of a trace as the bytes Asterisk sent (CRLF), with its frame's `t=` in ms."""
    t = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# t="):
            t = int(line[4:])
        elif line.startswith("<< ") or line == "<<":
            yield t, line[3:].encode() + b"\r\n"


@dataclass
class Replay:
    model: CallModel
    reader: AmiReader
    queue: FactQueue
    clock: ManualClock
    staged: list[Envelope] = field(default_factory=list)

    def feed(self, data: bytes, at_ms: int | None = None) -> None:
        if at_ms is not None:
            self.clock.set(EPOCH + timedelta(milliseconds=at_ms))
        self.reader.feed(data)
        while len(self.queue):
            fact: StagedFact = self.queue._items.popleft()
            self.staged.append(fact.envelope("acd"))

    def trace(self, name: str) -> Replay:
        for t, chunk in received_chunks(trace_path(name)):
            self.feed(chunk, t)
        return self

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.staged]

    def data(self, name: str, index: int = 0) -> dict[str, Any]:
        return [e.data for e in self.staged if e.name == name][index]

    def at_ms(self, value: str) -> int:
        return round((datetime.fromisoformat(value) - EPOCH).total_seconds() * 1000)


def new_replay() -> Replay:
    """A reader and model fed by hand, with the trace's `t=` as their clock."""
    clock = ManualClock(EPOCH)
    queue = FactQueue(10_000)
    model = CallModel(CallNotifier(queue), clock=clock)
    reader = AmiReader(
        wanted=model.handled_events,
        tracks_variable=model.tracks_variable,
        apply=model.apply,
        on_reply=lambda _text: None,
        is_pending=lambda _action_id: False,
    )
    return Replay(model, reader, queue, clock)


def trace_path(name: str) -> Path:
    return next(TRACES.glob(f"{name}-*.txt"))


def received_frames(name: str) -> list[str]:
    """The frames Asterisk sent in a trace, as text (the banner line left out)."""
    frames, current = [], []
    for _, chunk in received_chunks(trace_path(name)):
        line = chunk.decode()[:-2]
        if line.startswith("Asterisk Call Manager/"):
            continue
        if line:
            current.append(line)
        elif current:
            frames.append("\r\n".join(current))
            current = []
    return frames


class CallEventLog:
    """call.* envelopes as a consumer on the real broker takes them: once per event id.

    The outbox relay delivers at least once (a relay stopped between the broker's confirm and
    its delete sends those rows again after a restart); consumers skip an id seen before, as
    the platform's inbox does. A fact published twice would arrive under two ids."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.redelivered = 0
        self._seen: set[object] = set()

    async def handle(self, envelope: Envelope) -> None:
        if envelope.id in self._seen:
            self.redelivered += 1
            return
        self._seen.add(envelope.id)
        self.envelopes.append(envelope)

    def names(self, call_id: str | None = None) -> list[str]:
        calls = (e for e in self.envelopes if e.name.startswith("call."))
        return [e.name for e in calls if call_id is None or e.correlation_id == call_id]

    def has(self, name: str, call_id: str) -> bool:
        return any(e.name == name and e.correlation_id == call_id for e in self.envelopes)

    def one(self, name: str, call_id: str) -> dict[str, Any]:
        found = [e.data for e in self.envelopes if e.name == name and e.correlation_id == call_id]
        assert len(found) == 1, f"{len(found)} {name} for {call_id}: {self.names(call_id)}"
        return found[0]


# -- against the simulator ---------------------------------------------------------------------------

SECRET = "acd-test-secret"
OPS_SECRET = "ops-secret"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, poll: float = 0.02) -> None:
    """`testkit.wait_until` for a condition that needs a query to tell."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(poll)


async def everything_delivered(app: FastAPI, log: CallEventLog, bus: Bus) -> None:
    """Every fact the ACD found is committed, relayed and consumed (a marker sent after them came back)."""
    service: AcdService = app.state.acd
    runtime = app.state.runtime

    async def outbox_empty() -> bool:
        if len(service.queue) or service.writer._batch:
            return False
        async with runtime.db.session() as session:
            rows: int = (await session.execute(select(func.count()).select_from(bus_tables.outbox))).scalar_one()
        return rows == 0

    await eventually(outbox_empty)
    marker = Envelope(name="test.barrier", source="test", correlation_id=uuid.uuid4().hex)
    await bus.publish(marker)
    await wait_until(lambda: any(e.id == marker.id for e in log.envelopes))


async def started_acd(app: FastAPI) -> AcdService:
    service: AcdService = app.state.acd
    await wait_until(lambda: service.ami.connected)
    await service.wait_resynced()
    return service


async def originate(service: AcdService, caller_channel: str, extension: str, timeout_ms: int = 15_000) -> Message:
    """What the ACD's routing will do: ring an agent and bridge them with the caller (trace 01)."""
    answer = await service.ami.send(
        {
            "Action": "Originate",
            "Channel": f"PJSIP/{extension}",
            "Application": "Bridge",
            "Data": caller_channel,
            "Timeout": str(timeout_ms),
            "CallerID": '"13800138000" <13800138000>',
            "Variable": f"ACD_CALLER={caller_channel}",
        }
    )
    assert isinstance(answer, list)
    return answer[-1]


async def originate_behind_the_acds_back(sim: PbxSimulator, caller_channel: str, extension: str) -> None:
    """Another AMI user connects an agent while the ACD is away."""
    assert sim.ami_port is not None
    ops = SimAmiClient()
    await ops.connect("127.0.0.1", sim.ami_port)
    try:
        await ops.login("ops", OPS_SECRET, events="off")
        await ops.send(
            "Originate",
            [("Variable", f"ACD_CALLER={caller_channel}")],
            Channel=f"PJSIP/{extension}",
            Application="Bridge",
            Data=caller_channel,
            Timeout="5000",
            Async="true",
        )
    finally:
        await ops.close()


def model_view(service: AcdService) -> set[tuple[str, str, str, str | None]]:
    return {(c.uniqueid, c.name, c.linkedid, c.bridge_id) for c in service.model.channels.values()}


def pbx_view(sim: PbxSimulator) -> set[tuple[str, str, str, str | None]]:
    return {(c.uniqueid, c.name, c.linkedid, c.bridge_id) for c in sim.channels()}
