"""The routable view of agents: a local copy fed by `agent.state_changed` (and, at start-up,
agent-state's `GET /agents/routable`), indexed for the one question routing asks: which
available agent of these groups comes first under this strategy?

Per group and strategy a heap of available agents; an agent that changes gets a new version
and is pushed again, entries of older versions are dropped when they reach the top (and the
heap is rebuilt when stale entries outnumber live ones). No decision scans all agents.

Availability is agent-state's `idle` *and* the ACD's own marks: reserved for an offer,
or held after an answered or missed offer until agent-state reports `idle` again with a
`changed_at` later than the mark (the ACD publishes no agent state of its own).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

Strategy = Literal["longest_idle", "fewest_calls", "round_robin"]
STRATEGIES: tuple[Strategy, ...] = ("longest_idle", "fewest_calls", "round_robin")
HoldReason = Literal["on_call", "missed_offer"]


@dataclass(slots=True, eq=False)
class RoutableAgent:
    user_id: str
    work_number: str
    extension: str | None
    state: str
    groups: frozenset[str]
    idle_since: datetime
    changed_at: datetime
    calls_today: int = 0
    calls_day: date | None = None
    last_offered: int = 0
    reserved_for: str | None = None
    held: HoldReason | None = None
    held_since: datetime | None = None
    version: int = 0

    @property
    def available(self) -> bool:
        return self.state == "idle" and bool(self.extension) and self.reserved_for is None and self.held is None


@dataclass(order=True, slots=True)
class _Entry:
    key: tuple[float, ...]
    seq: int
    version: int = field(compare=False)
    agent: RoutableAgent = field(compare=False)


class AgentView:
    def __init__(self) -> None:
        self.by_work_number: dict[str, RoutableAgent] = {}
        self.by_extension: dict[str, RoutableAgent] = {}
        self._heaps: dict[tuple[str, Strategy], list[_Entry]] = {}
        self._seq = itertools.count()
        self._offers = itertools.count(1)
        self.on_available: list[RoutableAgent] = []  # agents that became available since the router last looked

    def identity_of(self, extension: str) -> tuple[str, str] | None:
        """(user id, work number) of the agent logged in on `extension`, if any."""
        agent = self.by_extension.get(extension)
        if agent is None or agent.state == "logged_out":
            return None
        return agent.user_id, agent.work_number

    # -- updates ----------------------------------------------------------------------------------
    def apply_state(
        self,
        *,
        user_id: str,
        work_number: str,
        extension: str | None,
        state: str,
        groups: Iterable[str],
        changed_at: datetime,
    ) -> RoutableAgent | None:
        """One agent.state_changed (or routable row); an event older than the last applied one changes nothing."""
        agent = self.by_work_number.get(work_number)
        if agent is not None and changed_at < agent.changed_at:
            return None
        if agent is None:
            agent = RoutableAgent(user_id, work_number, extension, state, frozenset(groups), changed_at, changed_at)
            self.by_work_number[work_number] = agent
        else:
            if agent.extension and self.by_extension.get(agent.extension) is agent:
                del self.by_extension[agent.extension]
            was_idle = agent.state == "idle"
            agent.user_id, agent.extension, agent.groups = user_id, extension, frozenset(groups)
            agent.state, agent.changed_at = state, changed_at
            if state == "idle" and not was_idle:
                agent.idle_since = changed_at
        held_since = agent.held_since
        if state == "idle" and held_since is not None and changed_at > held_since:
            agent.held, agent.held_since = None, None
            agent.idle_since = changed_at
        if state == "logged_out":
            agent.held, agent.held_since = None, None
        if extension:
            self.by_extension[extension] = agent
        self._changed(agent)
        return agent

    def reserve(self, agent: RoutableAgent, call_id: str) -> None:
        agent.reserved_for = call_id
        agent.last_offered = next(self._offers)
        self._changed(agent)

    def release(self, agent: RoutableAgent, hold: HoldReason | None, at: datetime) -> None:
        """The offer is over; `hold` keeps the agent out of routing until agent-state says idle again."""
        agent.reserved_for = None
        if hold is not None:
            agent.held, agent.held_since = hold, at
            if hold == "on_call":
                today = at.date()
                agent.calls_today = agent.calls_today + 1 if agent.calls_day == today else 1
                agent.calls_day = today
        self._changed(agent)

    def _changed(self, agent: RoutableAgent) -> None:
        agent.version += 1
        if not agent.available:
            return
        idle = agent.idle_since.timestamp()
        for group in agent.groups:
            for strategy in STRATEGIES:
                heap = self._heaps.setdefault((group, strategy), [])
                heapq.heappush(heap, _Entry(self._key(agent, strategy, idle), next(self._seq), agent.version, agent))
                if len(heap) > 64 and len(heap) > 4 * len(self.by_work_number):
                    self._compact(group, strategy)
        self.on_available.append(agent)

    @staticmethod
    def _key(agent: RoutableAgent, strategy: Strategy, idle: float) -> tuple[float, ...]:
        if strategy == "fewest_calls":
            return (float(agent.calls_today), idle)
        if strategy == "round_robin":
            return (float(agent.last_offered), idle)
        return (idle,)

    def _compact(self, group: str, strategy: Strategy) -> None:
        heap = [e for e in self._heaps[(group, strategy)] if self._valid(e, group)]
        heapq.heapify(heap)
        self._heaps[(group, strategy)] = heap

    @staticmethod
    def _valid(entry: _Entry, group: str) -> bool:
        agent = entry.agent
        return entry.version == agent.version and agent.available and group in agent.groups

    # -- questions --------------------------------------------------------------------------------
    def first_available(self, groups: Iterable[str], strategy: Strategy) -> RoutableAgent | None:
        """The agent the strategy puts first among the available agents of any of `groups`."""
        best: _Entry | None = None
        for group in groups:
            heap = self._heaps.get((group, strategy))
            if not heap:
                continue
            while heap and not self._valid(heap[0], group):
                heapq.heappop(heap)
            if heap and (best is None or heap[0] < best):
                best = heap[0]
        return best.agent if best is not None else None

    def take_newly_available(self) -> list[RoutableAgent]:
        agents, self.on_available = self.on_available, []
        return [a for a in agents if a.available]
