"""Routing (issue #6) end to end: the ACD against the PBX simulator over TCP, with real PostgreSQL
and RabbitMQ. Queues and rules are configured over REST; agent states are fed as agent-state's
events (directly, or over the broker where the consumer is the point). The ACD runs on a
ManualClock: personal waits and maximum waits pass by `clock.advance` + `router.tick`."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from acd_support import OPS_SECRET, SECRET, CallEventLog, eventually, everything_delivered, started_acd
from fastapi import FastAPI
from routing_support import START, agent_event, configure, set_agent
from testkit import auth_header, wait_until

from acd.config import AcdSettings
from acd.main import create_app
from acd.router import Offer
from acd.service import AcdService
from callcenter_common.auth import TokenIssuer
from callcenter_common.bus import RabbitBus
from callcenter_common.clock import ManualClock
from callcenter_common.contracts.patient import PatientOwnerChanged
from callcenter_common.events import Envelope
from pbxsim import Answer, Busy, EndpointConfig, Manual, PbxSimulator, SimConfig

RunApp = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]
GENERAL = {"queue_id": "general", "priority": 1, "groups": ["g1", "gz"], "owner_wait_seconds": 30}


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[PbxSimulator]:
    config = SimConfig(
        port=0,
        users={"acd": SECRET, "ops": OPS_SECRET},
        failed_login_delay=0,
        answer_seconds=0.01,
        recordings_dir=tmp_path,
        endpoints={
            **{str(ext): EndpointConfig(behaviour=Answer(after=0.02)) for ext in range(1001, 1010)},
            "1099": EndpointConfig(behaviour=Busy()),
            "1050": EndpointConfig(behaviour=Manual()),
        },
    )
    async with PbxSimulator(config) as simulator:
        yield simulator


class Routing:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, log: CallEventLog, listener: RabbitBus) -> None:
        self.app, self.client, self.log, self.listener = app, client, log, listener
        self.service: AcdService = app.state.acd
        assert isinstance(self.service.clock, ManualClock)
        self.clock: ManualClock = self.service.clock

    def routed(self, call_id: str) -> list[tuple[str, str, str | None]]:
        return [
            (e.data["rule"], e.data["target"], e.data["agent_extension"])
            for e in self.log.envelopes
            if e.name == "call.routed" and e.correlation_id == call_id
        ]

    def passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.service.router.tick(self.clock.now())

    async def delivered(self) -> None:
        await everything_delivered(self.app, self.log, self.listener)


@pytest.fixture
async def routing(
    acd_settings: AcdSettings,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
    tokens: TokenIssuer,
) -> AsyncIterator[Routing]:
    log, listener = call_events
    listener.subscribe(
        "test-acd-routing-listener", ["call.routed", "call.queued", "call.dequeued", "callback.requested"], log.handle
    )
    app = create_app(acd_settings, clock=ManualClock(START))
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app) as client:
        await started_acd(app)
        yield Routing(app, client, log, listener)


def supervisor(tokens: TokenIssuer) -> dict[str, str]:
    return auth_header(tokens.issue(user_id="sup", work_number="S1", roles=["supervisor"]))


async def test_core_2_2_owner_busy_call_waits_then_overflows(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service = routing.service
    await configure(routing.client, supervisor(tokens), [GENERAL], {"4008001234": "general"})
    # Over the broker, as agent-state and patient publish them (queue acd.routing, idempotent by id).
    owner = PatientOwnerChanged(
        patient_id=7,
        mobile="+86 138 0013 8000",
        owner_user_id="user-A1",
        owner_work_number="A1",
        kind="assigned",  # type: ignore[arg-type]
        changed_at=START,
    )
    owner_envelope = owner.envelope("patient")
    for envelope in (
        owner_envelope,
        owner_envelope,  # redelivered: changes nothing
        agent_event("A1", "1001", "talking", ["g1"], START).envelope("agent-state"),
        agent_event("A2", "1002", "idle", ["g1"], START).envelope("agent-state"),
    ):
        await routing.listener.publish(envelope)
    await wait_until(lambda: {"A1", "A2"} <= service.agents.by_work_number.keys() and bool(service.owners))

    call = await sim.inbound_call(caller="13800138000", dnis="4008001234")
    await wait_until(lambda: call.linkedid in service.router.calls)
    waiting = service.router.calls[call.linkedid]
    assert (waiting.state, waiting.wait_for and waiting.wait_for.work_number) == ("waiting", "A1")
    routing.passes(29)
    assert service.router.calls[call.linkedid].state == "waiting" and not call.bridged
    routing.passes(2)
    await wait_until(lambda: call.bridged)
    await wait_until(lambda: routing.log.has("call.answered", call.linkedid))
    call.hangup()
    await wait_until(lambda: routing.log.has("call.ended", call.linkedid))
    await routing.delivered()

    assert routing.routed(call.linkedid) == [("owner_wait", "agent", "1001"), ("owner_overflow", "agent", "1002")]
    answered = routing.log.one("call.answered", call.linkedid)
    # Who was on the phone, from agent-state's feed: patient makes them the owner (WO-3.4).
    assert (answered["agent_extension"], answered["agent_work_number"]) == ("1002", "A2")
    assert answered["agent_user_id"] == routing.service.agents.by_work_number["A2"].user_id
    assert routing.log.one("call.ended", call.linkedid)["agent_work_number"] == "A2"
    dequeued = routing.log.one("call.dequeued", call.linkedid)
    assert (dequeued["reason"], dequeued["waited_seconds"]) == ("answered", 31.0)
    assert service.agents.by_work_number["A2"].held == "on_call"
    assert any(r.name == f"inbound-{call.uniqueid}.wav" for r in sim.recordings())  # CORE-4


async def test_core_2_1_higher_priority_dnis_is_answered_first_by_next_free_agent(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service = routing.service
    queues = [
        {"queue_id": "low", "priority": 1, "groups": ["g1"]},
        {"queue_id": "high", "priority": 5, "groups": ["g1"]},
    ]
    await configure(routing.client, supervisor(tokens), queues, {"4008001111": "low", "4008002222": "high"})
    set_agent(service, "A1", "1001", "talking", ["g1"])

    low = await sim.inbound_call(caller="13900000001", dnis="4008001111")
    await wait_until(lambda: low.linkedid in service.router.calls)
    routing.passes(5)
    high = await sim.inbound_call(caller="13900000002", dnis="4008002222")
    await wait_until(lambda: high.linkedid in service.router.calls)

    routing.clock.advance(1)
    set_agent(service, "A1", "1001", "idle", ["g1"])
    await wait_until(lambda: high.bridged)
    assert not low.bridged and service.router.calls[low.linkedid].state == "waiting"
    high.hangup()
    await wait_until(lambda: routing.log.has("call.ended", high.linkedid))
    routing.clock.advance(1)
    set_agent(service, "A1", "1001", "idle", ["g1"])  # after-call work over
    await wait_until(lambda: low.bridged)
    low.hangup()
    await wait_until(lambda: routing.log.has("call.ended", low.linkedid))
    await routing.delivered()

    answered = [e.correlation_id for e in routing.log.envelopes if e.name == "call.answered"]
    assert answered == [high.linkedid, low.linkedid]
    queued = {e.correlation_id: e.data for e in routing.log.envelopes if e.name == "call.queued"}
    assert (queued[low.linkedid]["priority"], queued[high.linkedid]["priority"]) == (1, 5)


async def test_agent_14_blacklisted_caller_never_reaches_an_agent(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service, client = routing.service, routing.client
    await configure(client, supervisor(tokens), [GENERAL], {"4008001234": "general"})
    set_agent(service, "A1", "1001", "idle", ["g1"])
    agent = auth_header(tokens.issue(user_id="user-A1", work_number="A1", roles=["agent"], extension="1001"))
    lead = auth_header(tokens.issue(user_id="lead", work_number="L1", roles=["team_lead"]))

    asked = await client.post("/blacklist", json={"number": "+86 139-0000-6666", "reason": "abusive"}, headers=agent)
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    entry = asked.json()["id"]
    assert (await client.post(f"/blacklist/{entry}/approve", headers=agent)).status_code == 403
    assert service.router.config.blocked == {}  # a request blocks nothing
    approved = await client.post(f"/blacklist/{entry}/approve", headers=lead)
    assert approved.json()["status"] == "approved"

    call = await sim.inbound_call(caller="13900006666", dnis="4008001234")
    await wait_until(lambda: routing.log.has("call.ended", call.linkedid))
    await routing.delivered()

    assert routing.routed(call.linkedid) == [("blacklist", "blocked", None)]
    assert not routing.log.has("call.ringing", call.linkedid) and not routing.log.has("call.answered", call.linkedid)
    assert routing.log.one("call.dequeued", call.linkedid)["reason"] == "blocked"
    assert service.agents.by_work_number["A1"].available
    listed = await client.get("/blacklist", params={"status": "approved"}, headers=lead)
    assert [(e["number"], e["decided_by"]) for e in listed.json()["items"]] == [("13900006666", "lead")]

    async def counted() -> bool:
        rows = (await client.get("/blacklist", headers=lead)).json()["items"]
        return bool(rows[0]["blocked_calls"] == 1)

    await eventually(counted)


async def test_core_2_3_guangzhou_mobile_goes_to_the_guangzhou_group(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service, client = routing.service, routing.client
    headers = supervisor(tokens)
    await configure(client, headers, [GENERAL], {"4008001234": "general"})
    assert (await client.put("/region-rules/广州", json={"groups": ["gz"]}, headers=headers)).status_code == 200
    set_agent(service, "A1", "1001", "idle", ["g1"])  # idle longest: the queue's strategy would pick A1
    routing.clock.advance(10)
    set_agent(service, "A2", "1002", "idle", ["gz"])

    guangzhou = await sim.inbound_call(caller="13802880000", dnis="4008001234")  # `phone`: 广东 广州
    await wait_until(lambda: guangzhou.bridged)
    beijing = await sim.inbound_call(caller="13800138000", dnis="4008001234")  # `phone`: 北京
    await wait_until(lambda: beijing.bridged)
    for call in (guangzhou, beijing):
        call.hangup()
        await wait_until(lambda c=call: routing.log.has("call.ended", c.linkedid))  # type: ignore[misc]
    await routing.delivered()

    assert routing.routed(guangzhou.linkedid) == [("region", "agent", "1002")]
    assert routing.routed(beijing.linkedid) == [("queue", "agent", "1001")]
    reason = next(e.data["reason"] for e in routing.log.envelopes if e.name == "call.routed")
    assert reason == "广州 → groups gz"


async def test_core_2_4_designated_number_goes_to_its_agent(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service, client = routing.service, routing.client
    headers = supervisor(tokens)
    await configure(client, headers, [GENERAL], {"4008001234": "general"})
    rule = await client.put("/number-rules/8613912345678", json={"agent_work_number": "A2"}, headers=headers)
    assert rule.json() == {"caller_number": "13912345678", "agent_work_number": "A2"}
    set_agent(service, "A1", "1001", "idle", ["g1"])
    routing.clock.advance(10)
    set_agent(service, "A2", "1002", "idle", ["g1"])

    call = await sim.inbound_call(caller="13912345678", dnis="4008001234")
    await wait_until(lambda: call.bridged)
    call.hangup()
    await wait_until(lambda: routing.log.has("call.ended", call.linkedid))
    await routing.delivered()

    assert routing.routed(call.linkedid) == [("designated_number", "agent", "1002")]
    assert routing.log.one("call.answered", call.linkedid)["agent_extension"] == "1002"


async def test_core_2_1_busy_agent_is_held_and_the_call_goes_to_the_next_agent(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service = routing.service
    await configure(routing.client, supervisor(tokens), [GENERAL], {"4008001234": "general"})
    set_agent(service, "A9", "1099", "idle", ["g1"])  # idle longest; its phone answers 486
    routing.clock.advance(5)
    set_agent(service, "A1", "1001", "idle", ["g1"])

    call = await sim.inbound_call(caller="13900000003", dnis="4008001234")
    await wait_until(lambda: call.bridged)
    call.hangup()
    await wait_until(lambda: routing.log.has("call.ended", call.linkedid))
    await routing.delivered()

    assert routing.routed(call.linkedid) == [("queue", "agent", "1099"), ("retry", "agent", "1001")]
    # 486 before ringing: no call.ringing, so no call.agent_missed either (the core's rule); the OriginateResponse
    # (Reason 0) is what moved the call on.
    assert [e.data["agent_extension"] for e in routing.log.envelopes if e.name == "call.ringing"] == ["1001"]
    busy_agent = service.agents.by_work_number["A9"]
    assert (busy_agent.available, busy_agent.held) == (False, "missed_offer")
    routing.clock.advance(1)
    set_agent(service, "A9", "1099", "idle", ["g1"])  # the agent (or agent-state) says idle again
    assert busy_agent.available


async def test_core_2_1_caller_abandons_while_queued_then_max_wait_overflows_to_callback(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service = routing.service
    queue = {"queue_id": "general", "groups": ["g1"], "max_wait_seconds": 60, "overflow_callback": True}
    await configure(routing.client, supervisor(tokens), [queue], {"4008001234": "general"})

    gone = await sim.inbound_call(caller="13900000004", dnis="4008001234")
    await wait_until(lambda: gone.linkedid in service.router.calls)
    routing.passes(12)
    gone.hangup()
    await wait_until(lambda: routing.log.has("call.ended", gone.linkedid))
    stays = await sim.inbound_call(caller="13900000005", dnis="4008001234")
    await wait_until(lambda: stays.linkedid in service.router.calls)
    routing.passes(61)
    await wait_until(lambda: stays.hungup)
    await routing.delivered()

    abandoned = routing.log.one("call.dequeued", gone.linkedid)
    assert (abandoned["reason"], abandoned["waited_seconds"]) == ("abandoned", 12.0)
    assert routing.log.one("call.ended", gone.linkedid)["outcome"] == "abandoned"
    assert routing.routed(stays.linkedid)[-1] == ("overflow", "callback", None)
    assert routing.log.one("call.dequeued", stays.linkedid)["reason"] == "overflowed"
    assert not service.router.calls


async def test_core_2_random_calls_end_to_end_no_double_offer_no_lost_call(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service = routing.service
    rng = random.Random(20261130)
    queues = [{"queue_id": f"q{i}", "priority": i, "groups": [f"g{i % 2}"]} for i in range(3)]
    await configure(routing.client, supervisor(tokens), queues, {f"40080000{i}": f"q{i}" for i in range(3)})
    agents = {f"A{i}": (str(1001 + i), [f"g{i % 2}"]) for i in range(4)}
    for work_number, (extension, groups) in agents.items():
        set_agent(service, work_number, extension, "idle", groups)

    ringing: dict[str, str] = {}
    overlaps: list[str] = []
    offer = service.actions.offer

    def watched(o: Offer) -> None:
        if o.extension in ringing.values() or o.call_id in ringing:
            overlaps.append(o.call_id)
        ringing[o.call_id] = o.extension
        offer(o)

    service.actions.offer = watched  # type: ignore[method-assign,assignment]
    calls = []
    for n in range(24):
        call = await sim.inbound_call(caller=f"139{n:08d}", dnis=f"40080000{rng.randrange(3)}")
        calls.append(call)
        await wait_until(lambda c=call: routing.log.has("call.started", c.linkedid))  # type: ignore[misc]
        for other in calls:
            if other.bridged and not other.hungup and rng.random() < 0.5:
                other.hangup()
                ringing.pop(other.linkedid, None)
            elif not other.bridged and not other.hungup and rng.random() < 0.15:
                other.hangup()  # abandons
        for work_number, (extension, groups) in agents.items():
            agent = service.agents.by_work_number[work_number]
            if agent.held is not None and rng.random() < 0.6:
                routing.clock.advance(0.5)
                for call_id in [c for c, e in ringing.items() if e == extension]:
                    del ringing[call_id]
                set_agent(service, work_number, extension, "idle", groups)
        await wait_until(lambda: all(w.state != "offered" for w in service.router.calls.values()))
        ringing.clear()
    for work_number, (extension, groups) in agents.items():
        set_agent(service, work_number, extension, "talking", groups)
    for n in range(2):  # nobody is free: these wait, then abandon
        calls.append(await sim.inbound_call(caller=f"137{n:08d}", dnis="400800000"))
    await wait_until(lambda: all(c.linkedid in service.router.calls for c in calls[-2:]))
    for call in calls:
        if not call.hungup:
            call.hangup()
    await wait_until(lambda: all(routing.log.has("call.ended", c.linkedid) for c in calls))
    await wait_until(lambda: not service.router.calls)
    await routing.delivered()

    assert overlaps == []
    dequeued = [e for e in routing.log.envelopes if e.name == "call.dequeued"]
    reasons = {c.linkedid: [e.data["reason"] for e in dequeued if e.correlation_id == c.linkedid] for c in calls}
    assert all(len(r) == 1 for r in reasons.values()), reasons
    assert {r[0] for r in reasons.values()} == {"answered", "abandoned"}
    assert all(a.reserved_for is None for a in service.agents.by_work_number.values())
    answered = {c.linkedid for c in calls if routing.log.has("call.answered", c.linkedid)}
    assert answered == {cid for cid, r in reasons.items() if r == ["answered"]}


async def test_core_2_1_queues_are_configured_by_rest_and_applied_without_restart(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service, client = routing.service, routing.client
    headers = supervisor(tokens)
    agent = auth_header(tokens.issue(user_id="user-A1", work_number="A1", roles=["agent"], groups=["g1"]))
    await configure(client, headers, [GENERAL], {"4008001234": "general"})
    assert (await client.post("/queues", json={"queue_id": "x"}, headers=agent)).status_code == 403
    bad = await client.post("/queues", json={"queue_id": "y", "overflow_queue_id": "nope"}, headers=headers)
    assert (bad.status_code, bad.json()["field"]) == (422, "overflow_queue_id")
    bad = await client.post("/queues", json={"queue_id": "y", "strategy": "ring_all"}, headers=headers)
    assert bad.status_code == 422
    assert (await client.delete("/queues/general", headers=headers)).status_code == 409  # a number is bound to it

    changed = await client.patch("/queues/general", json={"priority": 9, "groups": ["g7"]}, headers=headers)
    assert changed.json()["priority"] == 9
    assert service.router.config.queues["general"].priority == 9  # the next decision uses it
    set_agent(service, "A7", "1007", "talking", ["g7"])
    call = await sim.inbound_call(caller="13900000008", dnis="4008001234")
    await wait_until(lambda: call.linkedid in service.router.calls)

    waiting = (await client.get("/waiting-calls", headers=agent)).json()
    assert waiting == []  # not a call of the agent's groups
    waiting = (await client.get("/waiting-calls", headers=headers)).json()
    assert [(w["queue"], w["priority"], w["status"], w["groups"]) for w in waiting] == [
        ("general", 9, "waiting", ["g7"])
    ]
    figures = (await client.get("/queue-figures", headers=headers)).json()
    assert [(f["queue_id"], f["waiting"], f["available_agents"]) for f in figures] == [("general", 1, 0)]
    agents = (await client.get("/routable-agents", headers=headers)).json()
    assert [(a["work_number"], a["state"], a["available"]) for a in agents] == [("A7", "talking", False)]
    assert (await client.get("/routable-agents", headers=agent)).status_code == 403

    routing.clock.advance(3)
    set_agent(service, "A7", "1007", "idle", ["g7"])
    await wait_until(lambda: call.bridged)
    call.hangup()
    await wait_until(lambda: routing.log.has("call.ended", call.linkedid))
    assert (await client.delete("/dnis/4008001234", headers=headers)).status_code == 204
    assert (await client.delete("/queues/general", headers=headers)).status_code == 204
    assert service.router.config.queues == {} and service.router.config.dnis == {}


async def test_agent_22_agent_11_lost_calls_are_listed_and_ask_for_a_call_back(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service, client = routing.service, routing.client
    headers = supervisor(tokens)
    queue = {"queue_id": "general", "groups": ["g1"], "max_wait_seconds": 60, "overflow_callback": True}
    await configure(client, headers, [queue], {"4008001234": "general"})
    set_agent(service, "A5", "1050", "idle", ["g1"])  # its phone rings until the test says

    rang = await sim.inbound_call(caller="13900000011", dnis="4008001234")
    await wait_until(lambda: routing.log.has("call.ringing", rang.linkedid))
    rang.hangup()  # abandons while 1050 rings: the ACD hangs the ringing leg up
    await wait_until(lambda: routing.log.has("call.agent_missed", rang.linkedid))
    await wait_until(lambda: service.agents.by_work_number["A5"].available)  # not held: not its fault
    set_agent(service, "A5", "1050", "busy", ["g1"])
    overflowed = await sim.inbound_call(caller="13900000012", dnis="4008001234")
    await wait_until(lambda: overflowed.linkedid in service.router.calls)
    routing.passes(61)
    await wait_until(lambda: routing.log.has("call.ended", overflowed.linkedid))
    await routing.delivered()

    assert routing.log.one("call.agent_missed", rang.linkedid)["reason"] == "cancelled"
    assert routing.log.one("callback.requested", rang.linkedid)["reason"] == "abandoned"
    assert routing.log.one("callback.requested", overflowed.linkedid)["reason"] == "max_wait"  # once, not twice
    lost = (await client.get("/missed-calls", headers=headers)).json()["items"]
    assert [(m["call_id"], m["kind"], m["agent_extension"], m["queue"]) for m in lost] == [
        (rang.linkedid, "agent_missed", "1050", "general"),
        (rang.linkedid, "abandoned", None, "general"),
    ]
    only = await client.get(
        "/missed-calls", params={"kind": "abandoned", "caller_number": "13900000011"}, headers=headers
    )
    assert [m["kind"] for m in only.json()["items"]] == ["abandoned"]
    own = auth_header(tokens.issue(user_id="user-A5", work_number="A5", roles=["agent"], extension="1050"))
    other = auth_header(tokens.issue(user_id="user-A6", work_number="A6", roles=["agent"], extension="1006"))
    assert [m["kind"] for m in (await client.get("/missed-calls", headers=own)).json()["items"]] == ["agent_missed"]
    assert (await client.get("/missed-calls", headers=other)).json()["items"] == []


async def test_core_6_live_figures_are_pushed_to_supervisors(
    acd_settings: AcdSettings,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
    tokens: TokenIssuer,
    sim: PbxSimulator,
) -> None:
    log, listener = call_events
    listener.subscribe("test-acd-figures", ["queue.figures_updated"], log.handle)
    app = create_app(acd_settings.model_copy(update={"figures_seconds": 0.05}), clock=ManualClock(START))
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app) as client:
        service = await started_acd(app)
        await configure(client, supervisor(tokens), [GENERAL], {"4008001234": "general"})
        set_agent(service, "A1", "1001", "talking", ["g1"])
        call = await sim.inbound_call(caller="13900000013", dnis="4008001234")
        await wait_until(lambda: call.linkedid in service.router.calls)
        service.clock.advance(7)  # type: ignore[attr-defined]

        def pushed() -> list[Envelope]:
            return [e for e in log.envelopes if e.name == "queue.figures_updated" and e.data["queues"][0]["waiting"]]

        await wait_until(lambda: bool(pushed()))
        figures = pushed()[-1]
        assert figures.audience is not None and figures.audience.group_ids == ("supervisors",)
        assert figures.data["queues"] == [
            {"queue_id": "general", "waiting": 1, "offered": 0, "longest_wait_seconds": 7.0, "available_agents": 0}
        ]
        assert figures.data["agents_by_state"] == {"talking": 1}
        call.hangup()
        await wait_until(lambda: not service.router.calls)


async def test_agent_13_agent_picks_up_a_call_ringing_at_another_agent_of_its_group(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service, client = routing.service, routing.client
    await configure(client, supervisor(tokens), [GENERAL], {"4008001234": "general"})
    set_agent(service, "A5", "1050", "idle", ["g1"])  # idle longest: offered first; its phone just rings
    routing.clock.advance(1)
    set_agent(service, "A6", "1006", "idle", ["other"])
    set_agent(service, "A1", "1001", "talking", ["g1"])
    call = await sim.inbound_call(caller="13900000014", dnis="4008001234")
    await wait_until(lambda: routing.log.has("call.ringing", call.linkedid))

    def as_agent(work_number: str, extension: str) -> dict[str, str]:
        return auth_header(tokens.issue(user_id=f"user-{work_number}", work_number=work_number, extension=extension))

    outsider = await client.post(f"/calls/{call.linkedid}/pickup", headers=as_agent("A6", "1006"))
    assert (outsider.status_code, outsider.json()["code"]) == (403, "call.not_your_group")
    picked = await client.post(f"/calls/{call.linkedid}/pickup", headers=as_agent("A1", "1001"))
    assert picked.status_code == 204
    await wait_until(lambda: call.bridged)
    await wait_until(lambda: routing.log.has("call.agent_missed", call.linkedid))
    await wait_until(lambda: service.agents.by_work_number["A5"].available)  # its leg was hung up, not its fault
    again = await client.post(f"/calls/{call.linkedid}/pickup", headers=as_agent("A1", "1001"))
    assert again.status_code == 409
    call.hangup()
    await wait_until(lambda: routing.log.has("call.ended", call.linkedid))
    await routing.delivered()

    assert routing.routed(call.linkedid) == [("queue", "agent", "1050"), ("pickup", "agent", "1001")]
    assert routing.log.one("call.answered", call.linkedid)["agent_extension"] == "1001"
    assert routing.log.one("call.agent_missed", call.linkedid)["agent_extension"] == "1050"
    dequeued = routing.log.one("call.dequeued", call.linkedid)
    assert (dequeued["reason"], dequeued["agent_extension"]) == ("answered", "1001")
    assert service.agents.by_work_number["A1"].held == "on_call" and not service.router.calls


async def test_core_2_1_caller_waiting_before_the_acd_started_is_routed_once_its_number_is_bound(
    acd_settings: AcdSettings,
    call_events: tuple[CallEventLog, RabbitBus],
    run_app: RunApp,
    cleanup_bus: Callable[[RabbitBus], None],
    tokens: TokenIssuer,
    sim: PbxSimulator,
) -> None:
    log, _listener = call_events
    call = await sim.inbound_call(caller="13900000015", dnis="4008001234")
    await wait_until(lambda: call.waiting)
    app = create_app(acd_settings, clock=ManualClock(START))
    cleanup_bus(app.state.runtime.bus)
    async with run_app(app) as client:
        service = await started_acd(app)
        assert call.linkedid in service.model.calls and not service.router.calls  # the resync saw it; no queue yet
        set_agent(service, "A1", "1001", "idle", ["g1"])
        await configure(client, supervisor(tokens), [GENERAL], {"4008001234": "general"})
        await wait_until(lambda: call.bridged)
        call.hangup()
        await wait_until(lambda: log.has("call.ended", call.linkedid))


async def test_agent_12_agent_sees_calls_waiting_in_its_queues_with_wait_and_region(
    routing: Routing, tokens: TokenIssuer, sim: PbxSimulator
) -> None:
    service, client = routing.service, routing.client
    await configure(client, supervisor(tokens), [GENERAL], {"4008001234": "general"})
    set_agent(service, "A1", "1001", "talking", ["g1"])  # nobody free: the call waits
    mine = auth_header(tokens.issue(user_id="user-A1", work_number="A1", roles=["agent"], groups=["g1"]))
    other = auth_header(tokens.issue(user_id="user-B1", work_number="B1", roles=["agent"], groups=["g9"]))

    call = await sim.inbound_call(caller="13802880000", dnis="4008001234")
    await wait_until(lambda: call.linkedid in service.router.calls)
    routing.clock.advance(12)

    waiting = (await client.get("/waiting-calls", headers=mine)).json()
    assert [(w["call_id"], w["caller_number"], w["queue"], w["status"]) for w in waiting] == [
        (call.linkedid, "13802880000", "general", "waiting")
    ]
    assert waiting[0]["waited_seconds"] == pytest.approx(12, abs=1)
    assert "广州" in (waiting[0]["region"] or "")
    assert (await client.get("/waiting-calls", headers=other)).json() == []  # not a queue B1 serves

    call.hangup()
    await wait_until(lambda: call.linkedid not in service.router.calls)
    assert (await client.get("/waiting-calls", headers=mine)).json() == []
