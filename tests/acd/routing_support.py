"""Helpers of the routing tests: agent-state events fed to the ACD, configuration over REST, and
a fake AMI edge for the router-level tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from acd.agents import AgentView
from acd.calls import Call
from acd.regions import RegionLookup
from acd.router import Offer, RoutedFact, Router, WaitingCall
from acd.rules import QueueConfig, RoutingConfig, RoutingRules
from acd.service import AcdService
from callcenter_common.contracts.acd import DequeueReason
from callcenter_common.contracts.agent_state import AgentStateChanged

START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def agent_event(work_number: str, extension: str, state: str, groups: list[str], at: datetime) -> AgentStateChanged:
    return AgentStateChanged(
        user_id=f"user-{work_number}",
        work_number=work_number,
        extension=extension,
        state=state,  # type: ignore[arg-type]
        previous_state="logged_out",
        groups=groups,
        changed_at=at,
    )


def set_agent(service: AcdService, work_number: str, extension: str, state: str, groups: list[str]) -> None:
    """What agent-state's `agent.state_changed` would tell the ACD (fed directly)."""
    service.copies.apply_agent_state(agent_event(work_number, extension, state, groups, service.clock.now()))


async def configure(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    queues: list[dict[str, Any]],
    dnis: dict[str, str],
) -> None:
    for queue in queues:
        response = await client.post("/queues", json=queue, headers=headers)
        assert response.status_code == 201, response.text
    for number, queue_id in dnis.items():
        response = await client.put(f"/dnis/{number}", json={"queue_id": queue_id}, headers=headers)
        assert response.status_code == 200, response.text


# -- router level ---------------------------------------------------------------------------------------


@dataclass
class FakeAmi:
    """The router's AMI edge, recording what it was asked to do."""

    offers: list[Offer] = field(default_factory=list)
    ringing: dict[str, Offer] = field(default_factory=dict)  # by call id, until the test answers or fails it
    blocked: list[str] = field(default_factory=list)
    called_back: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    picked: list[tuple[str, str]] = field(default_factory=list)

    def offer(self, offer: Offer) -> None:
        assert offer.call_id not in self.ringing, f"{offer.call_id} offered twice at once"
        assert offer.extension not in {o.extension for o in self.ringing.values()}, f"{offer.extension} offered twice"
        self.offers.append(offer)
        self.ringing[offer.call_id] = offer

    def block(self, waiting: WaitingCall, blacklist_entry: int | None) -> None:
        self.blocked.append(waiting.call_id)

    def call_back(self, waiting: WaitingCall) -> None:
        self.called_back.append(waiting.call_id)

    def cancel_offer(self, waiting: WaitingCall) -> None:
        self.cancelled.append(waiting.call_id)

    def pick_up(self, waiting: WaitingCall, extension: str) -> None:
        self.picked.append((waiting.call_id, extension))


@dataclass
class FakeFacts:
    routed: list[tuple[str, RoutedFact]] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    dequeued: dict[str, list[DequeueReason]] = field(default_factory=dict)
    callbacks: list[str] = field(default_factory=list)

    def call_routed(self, waiting: WaitingCall, decision: RoutedFact, at: datetime) -> None:
        self.routed.append((waiting.call_id, decision))

    def call_queued(self, waiting: WaitingCall, at: datetime) -> None:
        self.queued.append(waiting.call_id)

    def call_dequeued(
        self, waiting: WaitingCall, reason: DequeueReason, agent_extension: str | None, at: datetime
    ) -> None:
        self.dequeued.setdefault(waiting.call_id, []).append(reason)

    def callback_requested(self, waiting: WaitingCall, reason: str, at: datetime) -> None:
        self.callbacks.append(waiting.call_id)


@dataclass
class RouterBench:
    router: Router
    agents: AgentView
    ami: FakeAmi
    facts: FakeFacts
    owners: dict[str, str]

    def call(self, call_id: str, caller: str, dnis: str, at: datetime) -> Call:
        call = Call(call_id, call_id, f"PJSIP/trunk-{call_id}", "inbound", at, caller_number=caller, dnis=dnis)
        self.router.call_waiting(call, call.main_channel, at)
        return call

    def agent(self, work_number: str, state: str, groups: list[str], at: datetime) -> None:
        self.agents.apply_state(
            user_id=work_number,
            work_number=work_number,
            extension=work_number,
            state=state,
            groups=groups,
            changed_at=at,
        )
        self.router.agent_changed(at)


def router_bench(queues: list[QueueConfig], dnis: dict[str, str], **config: Any) -> RouterBench:
    agents = AgentView()
    owners: dict[str, str] = {}
    ami, facts = FakeAmi(), FakeFacts()
    routing = RoutingConfig(queues={q.queue_id: q for q in queues}, dnis=dnis, **config)
    router = Router(routing, agents, RoutingRules(agents, RegionLookup(), owners), ami, facts)
    return RouterBench(router, agents, ami, facts, owners)
