"""The call.* events: one method per business fact, and the writer that puts them in the outbox.

The model calls `CallNotifier` from the AMI reader, so its methods only build the event and
queue it with what the database must remember of the call. `OutboxWriter` drains the queue
in batches: each batch is one transaction that stages its events in the outbox and updates
the announced calls, so a restart never publishes a fact twice and a broker outage loses
none (the outbox relay sends them when the broker is back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from acd.calls import Call, Channel
from acd.repository import CallRepository, remembered
from acd.router import RoutedFact, WaitingCall
from callcenter_common.contracts.acd import (
    AgentRef,
    CallAgentMissed,
    CallAnswered,
    CallbackRequested,
    CallDequeued,
    CallEnded,
    CallHeld,
    CallQueued,
    CallResumed,
    CallRinging,
    CallRouted,
    CallStarted,
    CallTransferred,
    DequeueReason,
    MissedReason,
)
from callcenter_common.events import Envelope, Event
from callcenter_common.service import ServiceRuntime

log = logging.getLogger("acd.notifier")

CALL_EVENTS_PUBLISHED = Counter("acd_call_events_published_total", "call.* events committed to the outbox", ["name"])


@dataclass(slots=True)
class StagedFact:
    """A fact as the reader leaves it: the contract and its values, taken when it happened.

    The pydantic event and its envelope are built by the writer, off the AMI reader."""

    contract: type[Event]
    fields: dict[str, Any]
    call: Call
    facts: frozenset[str]  # the call's facts up to and including this one
    at: datetime
    ended: bool = False
    remember: bool = True  # False: a routing fact, which changes nothing a restart must know
    missed: dict[str, Any] | None = None  # a lost call to list (AGENT-11, AGENT-22), in the same transaction

    def envelope(self, source: str) -> Envelope:
        event = self.contract(**self.fields)
        return event.envelope(source, correlation_id=self.call.call_id, occurred_at=self.at)


class FactQueue:
    """Facts on their way to the database. Bounded: when full, `on_full` (the AMI reader pauses)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[StagedFact] = deque()
        self._wake = asyncio.Event()
        self.full = False
        self.on_full: Callable[[], None] = lambda: None
        self.on_drained: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, fact: StagedFact) -> None:
        self._items.append(fact)
        self._wake.set()
        if not self.full and len(self._items) >= self.limit:
            self.full = True
            log.warning("%d call facts wait for the database; pausing the AMI reader", len(self._items))
            self.on_full()

    async def wait(self) -> None:
        while not self._items:
            self._wake.clear()
            await self._wake.wait()

    def take(self, most: int) -> list[StagedFact]:
        return [self._items.popleft() for _ in range(min(most, len(self._items)))]

    def written(self) -> None:
        if self.full and len(self._items) <= self.limit // 2:
            self.full = False
            log.info("the database caught up; resuming the AMI reader")
            self.on_drained()


AgentOf = Callable[[str], tuple[str, str] | None]  # extension -> (user id, work number)


def _no_agent(_extension: str) -> tuple[str, str] | None:
    return None


class CallNotifier:
    def __init__(self, queue: FactQueue, agent_of: AgentOf = _no_agent) -> None:
        self.queue = queue
        # Who is logged in on an extension (agent-state's feed): patient ownership and reports
        # need the agent's user id and work number, not only the phone.
        self.agent_of = agent_of

    def _stage(
        self,
        call: Call,
        contract: type[Event],
        at: datetime,
        *,
        ended: bool = False,
        missed: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        fields.update(call_id=call.call_id, caller_number=call.caller_number, dnis=call.dnis, direction=call.direction)
        extension = fields.get("agent_extension")
        if extension and issubclass(contract, AgentRef) and (agent := self.agent_of(extension)) is not None:
            fields.update(agent_user_id=agent[0], agent_work_number=agent[1])
        self.queue.put(StagedFact(contract, fields, call, frozenset(call.facts), at, ended, missed=missed))

    @staticmethod
    def _missed_row(
        call: Call, kind: str, reason: str, waited: float, at: datetime, agent: str | None
    ) -> dict[str, Any]:
        return {
            "call_id": call.call_id,
            "kind": kind,
            "caller_number": call.caller_number,
            "dnis": call.dnis,
            "queue": call.variables.get("ACD_QUEUE"),
            "agent_extension": agent,
            "reason": reason,
            "waited_seconds": waited,
            "at": at,
        }

    def call_started(self, call: Call, at: datetime) -> None:
        self._stage(
            call, CallStarted, at, caller_name=call.caller_name, channel=call.main_channel, started_at=call.started_at
        )

    def call_ringing(self, call: Call, leg: Channel, at: datetime) -> None:
        self._stage(call, CallRinging, at, agent_extension=leg.extension, agent_channel=leg.name, ringing_at=at)

    def call_answered(self, call: Call, leg: Channel, at: datetime, *, first: bool) -> None:
        self._stage(
            call,
            CallAnswered,
            at,
            agent_extension=leg.extension,
            agent_channel=leg.name,
            answered_at=at,
            wait_seconds=max((at - call.started_at).total_seconds(), 0.0),
            first_answer=first,
        )

    def call_agent_missed(self, call: Call, leg: Channel, reason: MissedReason, cause: int, at: datetime) -> None:
        rang = leg.ringing_at or at
        ring_seconds = max((at - rang).total_seconds(), 0.0)
        self._stage(
            call,
            CallAgentMissed,
            at,
            missed=self._missed_row(call, "agent_missed", reason, ring_seconds, at, leg.extension),
            agent_extension=leg.extension,
            agent_channel=leg.name,
            reason=reason,
            cause=cause,
            ringing_at=rang,
            missed_at=at,
            ring_seconds=ring_seconds,
        )

    def call_held(self, call: Call, agent_extension: str | None, at: datetime) -> None:
        self._stage(call, CallHeld, at, agent_extension=agent_extension, held_at=at)

    def call_resumed(self, call: Call, agent_extension: str | None, at: datetime) -> None:
        self._stage(call, CallResumed, at, agent_extension=agent_extension, resumed_at=at)

    def call_transferred(
        self,
        call: Call,
        kind: Literal["blind", "attended"],
        target: str,
        agent_extension: str | None,
        at: datetime,
    ) -> None:
        self._stage(
            call, CallTransferred, at, agent_extension=agent_extension, kind=kind, target=target, transferred_at=at
        )

    def call_ended(self, call: Call, at: datetime, *, by_resync: bool) -> None:
        self._stage(
            call,
            CallEnded,
            at,
            ended=True,
            agent_extension=call.agent_extension,
            agent_channel=call.agent_channel,
            outcome=call.outcome,
            hangup_by=call.hangup_by or "unknown",
            cause=call.cause,
            cause_text=call.cause_text,
            started_at=call.started_at,
            answered_at=call.answered_at,
            ended_at=at,
            wait_seconds=call.wait_seconds,
            talk_seconds=call.talk_seconds,
            seen_by_resync=by_resync,
        )

    def lost_call(self, call: Call, at: datetime) -> None:
        """A lost inbound call is listed and asks for a call-back (AGENT-22), unless it was blocked or overflowed."""
        lost = call.direction == "inbound" and call.outcome in ("abandoned", "unanswered") and call.caller_number
        if lost and not call.facts & {"dequeued:blocked", "dequeued:overflowed"}:
            row = self._missed_row(call, call.outcome, call.outcome, call.wait_seconds, at, None)
            fields = {
                "call_id": call.call_id,
                "caller_number": call.caller_number,
                "dnis": call.dnis,
                "queue": row["queue"],
                "reason": call.outcome,
                "requested_at": at,
            }
            self.queue.put(
                StagedFact(CallbackRequested, fields, call, frozenset(call.facts), at, remember=False, missed=row)
            )


class RoutingNotifier:
    """The routing facts (`call.routed`, `call.queued`, `call.dequeued`, `callback.requested`), queued as call facts."""

    def __init__(self, queue: FactQueue) -> None:
        self.queue = queue

    def _stage(self, waiting: WaitingCall, contract: type[Event], at: datetime, **fields: Any) -> None:
        call = waiting.call
        fields.setdefault("call_id", call.call_id)
        fields.update(dnis=call.dnis)
        if contract is not CallbackRequested:
            fields.update(direction=call.direction)
        fields.update(caller_number=call.caller_number)
        self.queue.put(StagedFact(contract, fields, call, frozenset(call.facts), at, remember=False))

    def call_routed(self, waiting: WaitingCall, decision: RoutedFact, at: datetime) -> None:
        agent = decision.agent
        self._stage(
            waiting,
            CallRouted,
            at,
            rule=decision.rule,
            target=decision.target,
            queue=decision.queue,
            groups=list(decision.groups),
            agent_extension=agent.extension if agent else None,
            agent_work_number=agent.work_number if agent else None,
            reason=decision.reason,
            routed_at=at,
        )

    def call_queued(self, waiting: WaitingCall, at: datetime) -> None:
        self._stage(waiting, CallQueued, at, queue=waiting.queue.queue_id, priority=waiting.priority, queued_at=at)

    def call_dequeued(
        self, waiting: WaitingCall, reason: DequeueReason, agent_extension: str | None, at: datetime
    ) -> None:
        if reason in ("blocked", "overflowed"):
            waiting.call.facts.add(f"dequeued:{reason}")  # its end is no lost call: no second call-back
        self._stage(
            waiting,
            CallDequeued,
            at,
            queue=waiting.queue.queue_id,
            reason=reason,
            agent_extension=agent_extension,
            waited_seconds=max((at - waiting.first_routed_at).total_seconds(), 0.0),
            dequeued_at=at,
        )

    def callback_requested(self, waiting: WaitingCall, reason: str, at: datetime) -> None:
        self._stage(
            waiting,
            CallbackRequested,
            at,
            queue=waiting.queue.queue_id,
            reason=reason,
            requested_at=at,
        )


class OutboxWriter:
    """Drains the fact queue into the outbox, a batch per transaction, retrying while the database is away."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        queue: FactQueue,
        repository: CallRepository,
        *,
        batch_size: int = 500,
        linger_seconds: float = 0.0,
        retry_max_seconds: float = 5.0,
    ) -> None:
        self.runtime = runtime
        self.queue = queue
        self.repository = repository
        self.batch_size = batch_size
        self.linger_seconds = linger_seconds
        self.retry_max_seconds = retry_max_seconds
        self._task: asyncio.Task[None] | None = None
        self._batch: list[StagedFact] = []
        self._idle = asyncio.Event()
        self.source = runtime.name
        self.written_total = 0
        self.busy_seconds = 0.0  # in successful transactions

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="acd-outbox-writer")

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Write what is queued (within `flush_timeout`), then stop."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(flush_timeout):
                while len(self.queue) or self._batch:
                    self._idle.clear()
                    await self._idle.wait()
        except TimeoutError:
            log.error("%d call facts were not written before stopping", len(self.queue) + len(self._batch))
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._batch:
                if not len(self.queue):
                    self._idle.set()
                await self.queue.wait()
                if self.linger_seconds and len(self.queue) < self.batch_size:
                    # In a burst, fewer and larger transactions leave more of the loop to the AMI reader.
                    await asyncio.sleep(self.linger_seconds)
                self._batch = self.queue.take(self.batch_size)
            started = time.perf_counter()
            try:
                await self._write(self._batch)
            except (OSError, SQLAlchemyError) as exc:
                failures += 1
                delay = min(0.05 * 2**failures, self.retry_max_seconds)
                log.warning("writing %d call facts failed (%s); retrying in %.1fs", len(self._batch), exc, delay)
                await asyncio.sleep(delay)
                continue
            except Exception:
                # Never die quietly: the facts would pile up unseen.
                failures += 1
                delay = min(0.05 * 2**failures, self.retry_max_seconds)
                log.exception("writing %d call facts failed; retrying in %.1fs", len(self._batch), delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.busy_seconds += time.perf_counter() - started
            self._batch = []
            self.queue.written()
            if not len(self.queue):
                self._idle.set()

    async def _write(self, batch: list[StagedFact]) -> None:
        envelopes: list[Envelope] = []
        missed: list[dict[str, Any]] = []
        states: dict[str, dict[str, Any]] = {}
        ended: set[str] = set()
        for fact in batch:
            try:
                envelopes.append(fact.envelope(self.source))
            except ValidationError:
                # A bug, not an outage: keep the rest flowing and say which fact was lost.
                log.exception("call fact %s of %s does not fit its contract; dropped", fact.contract.name, fact.fields)
                continue
            call_id = fact.call.call_id
            if fact.missed is not None:
                missed.append(fact.missed)
            if fact.ended:
                states.pop(call_id, None)
                ended.add(call_id)
            elif fact.remember and call_id not in ended:
                states[call_id] = remembered(fact.call, fact.facts)
        async with self.runtime.db.session() as session:
            await self.runtime.publish(session, *envelopes)
            await self.repository.save(session, states, ended, datetime.now(UTC))
            if missed:
                await self.repository.add_missed(session, missed)
        self.written_total += len(envelopes)
        for envelope in envelopes:
            CALL_EVENTS_PUBLISHED.labels(envelope.name).inc()
