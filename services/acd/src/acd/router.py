"""Waiting calls and offers: the ACD's routing state machine, synchronous and without I/O.

handler → rules → action: the AMI handlers in `service.py` tell the router that a call waits
(`call_waiting`), that an offer ended (`offer_answered` / `offer_failed`), that a call ended
(`call_ended`) and that time passed (`tick`); agent events reach it through `agent_changed`.
The rules (`rules.py`) decide; the router keeps the invariants and asks `RoutingActions`
(the AMI edge) to act:

- an agent is offered at most one call (`reserved_for`), a call to at most one agent
  (`offered_to`); a reservation ends with the offer's result, nothing else;
- every call the router takes ends `answered`, `abandoned`, `overflowed` (to a call-back) or
  `blocked` (`call.dequeued`), or is still waiting / offered.

Waiting calls sit in buckets: one per agent a call waits for, one per set of groups. Each
bucket is a heap by (-priority, arrival); the groups → buckets index answers "which waiting
call does this agent take" by peeking a few bucket tops. Stale heap entries (a call offered,
re-queued or gone) are skipped by version.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from prometheus_client import Counter

from acd.agents import AgentView, RoutableAgent, Strategy
from acd.calls import Call
from acd.rules import Decision, QueueConfig, RoutingConfig, RoutingRules
from callcenter_common.contracts.acd import DequeueReason, RoutingRule, RoutingTarget

ROUTING_DECISIONS = Counter("acd_routing_decisions_total", "call.routed decisions", ["rule"])
BLOCKED_CALLS = Counter("acd_blocked_calls_total", "Calls hung up because the caller is blacklisted")

# abandoned / picked: over for routing, but an agent's offer is still out; its result ends the reservation.
CallState = Literal["waiting", "offered", "abandoned", "picked", "done"]
BucketKey = tuple[str, ...]


@dataclass(slots=True, eq=False)
class WaitingCall:
    call: Call
    caller_channel: str
    queue: QueueConfig
    priority: int
    seq: int
    first_routed_at: datetime
    groups: tuple[str, ...] = ()
    strategy: Strategy = "longest_idle"
    wait_for: RoutableAgent | None = None
    wait_until: datetime | None = None
    max_wait_at: datetime | None = None
    state: CallState = "waiting"
    offered_to: RoutableAgent | None = None
    rule: RoutingRule = "queue"
    version: int = 0
    visited: set[str] = field(default_factory=set)

    @property
    def call_id(self) -> str:
        return self.call.call_id

    @property
    def order(self) -> tuple[int, int]:
        return (-self.priority, self.seq)


@dataclass(frozen=True, slots=True)
class Offer:
    call_id: str
    caller_channel: str
    caller_number: str
    extension: str
    ring_timeout_ms: int


class RoutingActions(Protocol):
    """What the router asks of the AMI edge; each returns at once (the edge works in the background)."""

    def offer(self, offer: Offer) -> None: ...

    def block(self, waiting: WaitingCall, blacklist_entry: int | None) -> None: ...

    def call_back(self, waiting: WaitingCall) -> None: ...

    def cancel_offer(self, waiting: WaitingCall) -> None: ...

    def pick_up(self, waiting: WaitingCall, extension: str) -> None: ...


class RoutingFacts(Protocol):
    def call_routed(self, waiting: WaitingCall, decision: RoutedFact, at: datetime) -> None: ...

    def call_queued(self, waiting: WaitingCall, at: datetime) -> None: ...

    def call_dequeued(
        self, waiting: WaitingCall, reason: DequeueReason, agent_extension: str | None, at: datetime
    ) -> None: ...

    def callback_requested(self, waiting: WaitingCall, reason: str, at: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class RoutedFact:
    rule: RoutingRule
    target: RoutingTarget
    reason: str
    queue: str | None
    groups: tuple[str, ...] = ()
    agent: RoutableAgent | None = None


@dataclass(order=True, slots=True)
class _Waiting:
    order: tuple[int, int]
    version: int = field(compare=False)
    waiting: WaitingCall = field(compare=False)


@dataclass(order=True, slots=True)
class _Timer:
    when: datetime
    seq: int
    version: int = field(compare=False)
    kind: Literal["personal", "max_wait"] = field(compare=False)
    waiting: WaitingCall = field(compare=False)


class Router:
    def __init__(
        self,
        config: RoutingConfig,
        agents: AgentView,
        rules: RoutingRules,
        actions: RoutingActions,
        facts: RoutingFacts,
    ) -> None:
        self.config = config
        self.agents = agents
        self.rules = rules
        self.actions = actions
        self.facts = facts
        self.calls: dict[str, WaitingCall] = {}
        self._buckets: dict[BucketKey, list[_Waiting]] = {}
        self._by_group: dict[str, set[BucketKey]] = {}
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self.outcomes: dict[DequeueReason, int] = {"answered": 0, "abandoned": 0, "overflowed": 0, "blocked": 0}

    # -- handlers -----------------------------------------------------------------------------------
    def call_waiting(self, call: Call, caller_channel: str, at: datetime) -> WaitingCall | None:
        """A caller sits in the waiting context (music on hold): decide, then offer or queue."""
        if call.call_id in self.calls:
            return None
        queue = self.config.queue_for(call.dnis)
        if queue is None:
            return None
        waiting = WaitingCall(call, caller_channel, queue, queue.priority, next(self._seq), at, strategy=queue.strategy)
        waiting.visited.add(queue.queue_id)
        if queue.max_wait_seconds:
            waiting.max_wait_at = at + timedelta(seconds=queue.max_wait_seconds)
        self.calls[call.call_id] = waiting
        call.variables["ACD_QUEUE"] = queue.queue_id
        self._apply(waiting, self.rules.decide(self.config, queue, call.caller_number), at)
        return waiting

    def offer_answered(self, call_id: str, at: datetime, extension: str | None = None) -> None:
        """An agent (`extension`; None: the one offered) answered and is bridged with the caller."""
        waiting = self.calls.get(call_id)
        if waiting is None or waiting.offered_to is None:
            return
        agent = waiting.offered_to
        if extension is not None and extension != agent.extension:
            return  # someone else (a pick-up): the offered agent's own result ends its reservation
        waiting.offered_to = None
        if waiting.state == "offered":
            self.agents.release(agent, "on_call", at)
            self._finish(waiting, "answered", agent.extension, at)
        else:  # the caller left while it rang: Bridge() found nobody
            self.agents.release(agent, None, at)
            self._forget(waiting)
        self._serve_available(at)

    def offer_failed(self, call_id: str, at: datetime, *, agent_missed: bool) -> None:
        """No answer or busy (`agent_missed`: held out until agent-state says idle again), or the AMI failed."""
        waiting = self.calls.get(call_id)
        if waiting is None or waiting.offered_to is None:
            return
        agent = waiting.offered_to
        waiting.offered_to = None
        if waiting.state != "offered":  # the caller left meanwhile: the agent is not to blame
            self.agents.release(agent, None, at)
            self._forget(waiting)
            self._serve_available(at)
            return
        self.agents.release(agent, "missed_offer" if agent_missed else None, at)
        if waiting.wait_for is not None:
            waiting.wait_for, waiting.wait_until = None, None
            waiting.groups = waiting.queue.groups
        # Back in its place first: an agent freed just now takes the best call it may take, maybe another.
        self._enqueue(waiting, at, announce=False)
        self._serve_available(at)
        if waiting.offered_to is None:  # no freed agent took it
            why = f"{agent.work_number} did not answer" if agent_missed else "the offer failed"
            self._dispatch(waiting, at, rule="retry", why=why, queued=True)

    def call_ended(self, call_id: str, at: datetime) -> None:
        """The call is gone (the caller hung up, or a resync found it gone)."""
        waiting = self.calls.get(call_id)
        if waiting is None or waiting.state in ("abandoned", "picked", "done"):
            return
        if waiting.state == "offered":
            waiting.state = "abandoned"
            waiting.version += 1
            self.actions.cancel_offer(waiting)
            self._count("abandoned")
            self.facts.call_dequeued(waiting, "abandoned", None, at)
            return  # forgotten when the offer's result comes, which frees the agent
        self._finish(waiting, "abandoned", None, at)

    def pickup(self, call_id: str, picker: RoutableAgent, at: datetime) -> str | None:
        """An agent takes a call ringing at another agent of its groups (AGENT-13); None, or why not."""
        waiting = self.calls.get(call_id)
        if waiting is None or waiting.state != "offered" or waiting.offered_to is None:
            return "call.not_ringing"
        if waiting.offered_to is picker:
            return "call.ringing_at_you"
        groups = set(waiting.groups or waiting.queue.groups)
        if waiting.wait_for is None and not groups & picker.groups:
            return "call.not_your_group"
        if picker.reserved_for is not None or picker.state == "logged_out" or not picker.extension:
            return "agent.not_free"
        waiting.state = "picked"
        waiting.version += 1
        self._routed(waiting, RoutedFact("pickup", "agent", f"picked up by {picker.work_number}", None, (), picker), at)
        self.agents.release(picker, "on_call", at)
        self.actions.cancel_offer(waiting)
        self.actions.pick_up(waiting, picker.extension)
        self._count("answered")
        self.facts.call_dequeued(waiting, "answered", picker.extension, at)
        return None

    def agent_changed(self, at: datetime) -> None:
        """After agent events were applied to the view: offer waiting calls to agents now available."""
        self._serve_available(at)

    def reconfigure(self, config: RoutingConfig) -> None:
        """New queues and rules apply to the next decision; waiting calls keep their place."""
        self.config = config

    def tick(self, at: datetime) -> None:
        """Timers due: personal waits that end and maximum waits that overflow."""
        while self._timers and self._timers[0].when <= at:
            timer = heapq.heappop(self._timers)
            waiting = timer.waiting
            if timer.version != waiting.version or waiting.state != "waiting":
                continue  # offered meanwhile: a failed offer queues it again, with its deadlines
            if timer.kind == "personal":
                self._to_queue_groups(waiting, "owner_overflow", "waited for the personal agent long enough", at)
            else:
                self._overflow(waiting, at)
        self._serve_available(at)

    # -- decisions ----------------------------------------------------------------------------------
    def _apply(self, waiting: WaitingCall, decision: Decision, at: datetime) -> None:
        waiting.rule = decision.rule
        if decision.target == "blocked":
            self._routed(waiting, RoutedFact(decision.rule, "blocked", decision.reason, decision.queue.queue_id), at)
            BLOCKED_CALLS.inc()
            self.actions.block(waiting, decision.blacklist_entry)
            self._finish(waiting, "blocked", None, at)
            return
        if decision.agent is not None:
            self._offer(waiting, decision.agent, decision.rule, decision.reason, at)
            return
        if decision.wait_for is not None:
            waiting.wait_for = decision.wait_for
            waiting.wait_until = at + timedelta(seconds=decision.wait_seconds)
            fact = RoutedFact(decision.rule, "agent", decision.reason, waiting.queue.queue_id, agent=decision.wait_for)
            self._routed(waiting, fact, at)
            self._enqueue(waiting, at)
            return
        waiting.groups = decision.groups
        self._dispatch(waiting, at, rule=decision.rule, why=decision.reason)

    def _dispatch(
        self, waiting: WaitingCall, at: datetime, *, rule: RoutingRule, why: str, queued: bool = False
    ) -> None:
        """Offer to the first available agent of the call's groups, else wait for them."""
        agent = self.agents.first_available(waiting.groups, waiting.strategy) if waiting.wait_for is None else None
        if agent is not None:
            self._offer(waiting, agent, rule, why, at)
            return
        queue_id = waiting.queue.queue_id
        self._routed(waiting, RoutedFact(rule, "queue", why, queue_id, waiting.groups), at)
        if not queued:
            self._enqueue(waiting, at)

    def _to_queue_groups(self, waiting: WaitingCall, rule: RoutingRule, why: str, at: datetime) -> None:
        waiting.wait_for, waiting.wait_until = None, None
        waiting.groups = waiting.queue.groups
        waiting.version += 1
        self._dispatch(waiting, at, rule=rule, why=why)

    def _overflow(self, waiting: WaitingCall, at: datetime) -> None:
        queue = waiting.queue
        target = self.config.queues.get(queue.overflow_queue_id or "")
        if target is not None and target.queue_id not in waiting.visited:
            waiting.visited.add(target.queue_id)
            waiting.queue, waiting.priority, waiting.strategy = target, target.priority, target.strategy
            waiting.call.variables["ACD_QUEUE"] = target.queue_id
            waiting.max_wait_at = at + timedelta(seconds=target.max_wait_seconds) if target.max_wait_seconds else None
            waiting.wait_for, waiting.wait_until = None, None
            waiting.groups = target.groups
            waiting.version += 1
            why = f"waited {queue.max_wait_seconds} s in {queue.queue_id}; overflows to {target.queue_id}"
            self._dispatch(waiting, at, rule="overflow", why=why)
            return
        if queue.overflow_callback:
            reason = f"waited {queue.max_wait_seconds} s in {queue.queue_id}; call-back"
            self._routed(waiting, RoutedFact("overflow", "callback", reason, queue.queue_id), at)
            self.facts.callback_requested(waiting, "max_wait", at)
            self.actions.call_back(waiting)
            self._finish(waiting, "overflowed", None, at)
            return
        waiting.max_wait_at = None  # nowhere to go: it keeps its place

    def _offer(self, waiting: WaitingCall, agent: RoutableAgent, rule: RoutingRule, why: str, at: datetime) -> None:
        assert agent.available and agent.extension and waiting.offered_to is None
        waiting.state = "offered"
        waiting.offered_to = agent
        waiting.version += 1
        self.agents.reserve(agent, waiting.call_id)
        queue_id = waiting.queue.queue_id
        self._routed(waiting, RoutedFact(rule, "agent", why, queue_id, waiting.groups, agent), at)
        self.actions.offer(
            Offer(
                waiting.call_id,
                waiting.caller_channel,
                waiting.call.caller_number,
                agent.extension,
                waiting.queue.ring_timeout_seconds * 1000,
            )
        )

    def _routed(self, waiting: WaitingCall, fact: RoutedFact, at: datetime) -> None:
        ROUTING_DECISIONS.labels(fact.rule).inc()
        self.facts.call_routed(waiting, fact, at)

    # -- waiting calls ------------------------------------------------------------------------------
    def _enqueue(self, waiting: WaitingCall, at: datetime, *, announce: bool = True) -> None:
        waiting.state = "waiting"
        waiting.version += 1
        key: BucketKey = ("agent", waiting.wait_for.work_number) if waiting.wait_for else ("groups", *waiting.groups)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = []
            if waiting.wait_for is None:
                for group in waiting.groups:
                    self._by_group.setdefault(group, set()).add(key)
        heapq.heappush(bucket, _Waiting(waiting.order, waiting.version, waiting))
        self._arm(waiting)
        if announce:
            self.facts.call_queued(waiting, at)

    def _arm(self, waiting: WaitingCall) -> None:
        if waiting.wait_until is not None:
            heapq.heappush(
                self._timers, _Timer(waiting.wait_until, next(self._seq), waiting.version, "personal", waiting)
            )
        if waiting.max_wait_at is not None:
            heapq.heappush(
                self._timers, _Timer(waiting.max_wait_at, next(self._seq), waiting.version, "max_wait", waiting)
            )

    def _top(self, key: BucketKey) -> _Waiting | None:
        bucket = self._buckets.get(key)
        while bucket:
            top = bucket[0]
            if top.version == top.waiting.version and top.waiting.state == "waiting":
                return top
            heapq.heappop(bucket)
        return None

    def _serve_available(self, at: datetime) -> None:
        for agent in self.agents.take_newly_available():
            if not agent.available:
                continue
            best: _Waiting | None = None
            keys: list[BucketKey] = [("agent", agent.work_number)]
            for group in agent.groups:
                keys.extend(self._by_group.get(group, ()))
            for key in keys:
                top = self._top(key)
                if top is not None and (best is None or top < best):
                    best = top
            if best is not None:
                waiting = best.waiting
                rule: RoutingRule = waiting.rule if waiting.wait_for is not None else "queue"
                self._offer(waiting, agent, rule, f"{agent.work_number} became available", at)

    def _finish(self, waiting: WaitingCall, reason: DequeueReason, extension: str | None, at: datetime) -> None:
        self._count(reason)
        self.facts.call_dequeued(waiting, reason, extension, at)
        self._forget(waiting)

    def _forget(self, waiting: WaitingCall) -> None:
        waiting.state = "done"
        waiting.version += 1
        self.calls.pop(waiting.call_id, None)

    def _count(self, reason: DequeueReason) -> None:
        self.outcomes[reason] += 1

    # -- views ----------------------------------------------------------------------------------------
    def waiting_calls(self) -> list[WaitingCall]:
        """Calls waiting or ringing an agent, best first."""
        return sorted(self.calls.values(), key=lambda w: w.order)
