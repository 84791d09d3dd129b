"""Routing configuration and the rules that decide where a waiting call goes (CORE-2).

The rules run in this order; the first that decides wins, and its name and reason are in the
decision (published as `call.routed`):

1. `blacklist` — the caller's number has an approved blacklist entry: blocked (AGENT-14).
2. `designated_number` — the caller's number is bound to an agent (CORE-2.4).
3. `owner` — a mobile whose patient has an owner agent (CORE-2.2).
   For 2 and 3: the agent available → offered to them; logged in but not available → the call
   waits for them up to the queue's `owner_wait_seconds` (`owner_wait`), then goes to the
   queue's groups (`owner_overflow`); logged out → the next rule.
4. `region` — the caller's city or province has designated agents (first available one) or
   groups (the call waits for those groups) (CORE-2.3).
5. `queue` — the queue of the called number (DNIS), its groups and strategy (CORE-2.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from acd.agents import AgentView, RoutableAgent, Strategy
from acd.regions import RegionLookup, normalize_number
from callcenter_common.contracts.acd import RoutingRule, RoutingTarget


@dataclass(frozen=True, slots=True)
class QueueConfig:
    queue_id: str
    name: str = ""
    priority: int = 0  # higher first, among every waiting call an agent could take
    groups: tuple[str, ...] = ()
    strategy: Strategy = "longest_idle"
    ring_timeout_seconds: int = 20
    max_wait_seconds: int | None = None
    overflow_queue_id: str | None = None
    overflow_callback: bool = False
    owner_wait_seconds: int = 30


@dataclass(frozen=True, slots=True)
class RegionTarget:
    groups: tuple[str, ...] = ()
    agent_work_numbers: tuple[str, ...] = ()


@dataclass(slots=True)
class RoutingConfig:
    queues: dict[str, QueueConfig] = field(default_factory=dict)
    dnis: dict[str, str] = field(default_factory=dict)  # called number → queue id
    default_queue_id: str | None = None
    designated: dict[str, str] = field(default_factory=dict)  # normalized caller number → agent work number
    regions: dict[str, RegionTarget] = field(default_factory=dict)  # city or province → target
    blocked: dict[str, int] = field(default_factory=dict)  # normalized number → approved blacklist entry id

    def queue_for(self, dnis: str) -> QueueConfig | None:
        queue_id = self.dnis.get(dnis) or self.default_queue_id
        return self.queues.get(queue_id) if queue_id else None


@dataclass(slots=True)
class Decision:
    rule: RoutingRule
    target: RoutingTarget
    reason: str
    queue: QueueConfig
    groups: tuple[str, ...] = ()
    agent: RoutableAgent | None = None  # offered now
    wait_for: RoutableAgent | None = None  # waits for this agent until `wait_seconds`
    wait_seconds: int = 0
    blacklist_entry: int | None = None


class RoutingRules:
    def __init__(self, agents: AgentView, regions: RegionLookup, owners: dict[str, str]) -> None:
        self.agents = agents
        self.regions = regions
        self.owners = owners  # normalized mobile → owner's work number (patient.owner_changed)

    def decide(self, config: RoutingConfig, queue: QueueConfig, caller_number: str) -> Decision:
        """Where a call of `caller_number` that reached `queue` goes now."""
        number = normalize_number(caller_number)
        entry = config.blocked.get(number)
        if entry is not None:
            return Decision(
                "blacklist", "blocked", f"{number} is blacklisted (entry {entry})", queue, blacklist_entry=entry
            )
        skipped: list[str] = []
        designated = config.designated.get(number)
        if designated is not None:
            decision = self._personal("designated_number", designated, queue, f"{number} is bound to {designated}")
            if decision is not None:
                return decision
            skipped.append(f"designated agent {designated} is logged out")
        owner = self.owners.get(number)
        if owner is not None:
            decision = self._personal("owner", owner, queue, f"owner of {number} is {owner}")
            if decision is not None:
                return decision
            skipped.append(f"owner {owner} is logged out")
        region = self.regions.region_of(number) if number else None
        if region is not None:
            for name in region.names():
                target = config.regions.get(name)
                if target is None:
                    continue
                for work_number in target.agent_work_numbers:
                    agent = self.agents.by_work_number.get(work_number)
                    if agent is not None and agent.available:
                        return Decision(
                            "region", "agent", f"{name}: designated agent {work_number}", queue, agent=agent
                        )
                if target.groups:
                    return Decision(
                        "region", "queue", f"{name} → groups {', '.join(target.groups)}", queue, target.groups
                    )
                skipped.append(f"no designated agent of {name} is available")
        reason = f"queue {queue.queue_id} ({queue.strategy})"
        if skipped:
            reason += "; " + "; ".join(skipped)
        return Decision("queue", "queue", reason, queue, queue.groups)

    def _personal(self, rule: RoutingRule, work_number: str, queue: QueueConfig, why: str) -> Decision | None:
        agent = self.agents.by_work_number.get(work_number)
        if agent is None or agent.state == "logged_out" or not agent.extension:
            return None
        if agent.available:
            return Decision(rule, "agent", f"{why}, available", queue, agent=agent)
        return Decision(
            "owner_wait",
            "agent",
            f"{why}, not available ({agent.state}{', ' + agent.held if agent.held else ''}); "
            f"waits up to {queue.owner_wait_seconds} s",
            queue,
            wait_for=agent,
            wait_seconds=queue.owner_wait_seconds,
        )
