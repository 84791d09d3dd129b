"""The agent state machine of AGENT-5: which change a request or a call event makes.

Pure rules, no I/O: `service.py` loads the current state, asks here, and stores the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    IDLE = "idle"
    BUSY = "busy"
    SHORT_BREAK = "short_break"
    AFTER_CALL_WORK = "after_call_work"
    RINGING = "ringing"
    TALKING = "talking"
    ON_HOLD = "on_hold"


IN_CALL = frozenset({AgentState.RINGING, AgentState.TALKING, AgentState.ON_HOLD})
AGENT_CHOSEN = frozenset({AgentState.IDLE, AgentState.BUSY, AgentState.SHORT_BREAK, AgentState.AFTER_CALL_WORK})
# Only these can come after a call; idle is what happens when nothing was chosen.
NOT_READY = frozenset({AgentState.BUSY, AgentState.SHORT_BREAK})


class CallFact(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    HELD = "held"
    RESUMED = "resumed"
    MISSED = "missed"  # this agent's leg rang and ended unanswered
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Move:
    """Go to `state` now."""

    state: AgentState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AfterCall:
    """Stay in the call; when it is over go to `state` instead of idle (None: back to idle)."""

    state: AgentState | None
    reason: str = ""


class IllegalTransition(Exception):
    def __init__(self, current: AgentState, requested: AgentState, why: str) -> None:
        super().__init__(why)
        self.current = current
        self.requested = requested
        self.why = why


def on_agent_request(
    current: AgentState, reason_now: str, requested: AgentState, reason: str
) -> Move | AfterCall | None:
    """An agent's own choice. None: nothing to change."""
    if requested not in AGENT_CHOSEN:
        raise IllegalTransition(current, requested, f"an agent cannot choose {requested}")
    if current is AgentState.LOGGED_OUT:
        raise IllegalTransition(current, requested, "log in on an extension first")
    if current in IN_CALL:
        if requested is AgentState.AFTER_CALL_WORK:
            raise IllegalTransition(current, requested, "after-call work starts when the call ends")
        if requested is AgentState.IDLE:
            return AfterCall(None)
        return AfterCall(requested, reason)
    if requested is current and reason == reason_now:
        return None
    return Move(requested, reason)


def on_forced(current: AgentState, requested: AgentState) -> Move:
    """A supervisor's force busy (idle agents, AGENT-20) or force idle (busy / on break, AGENT-21)."""
    if requested is AgentState.BUSY and current is AgentState.IDLE:
        return Move(AgentState.BUSY, "forced")
    if requested is AgentState.IDLE and current in NOT_READY:
        return Move(AgentState.IDLE)
    wanted = "idle" if requested is AgentState.BUSY else "busy or on a short break"
    raise IllegalTransition(current, requested, f"the agent must be {wanted}")


def on_call(
    fact: CallFact, current: AgentState, current_call: str | None, call_id: str, *, answered: bool = False
) -> AgentState | None:
    """A call fact from the ACD about this agent's extension. None: it changes nothing.

    `after_call_work` returned for a call's end means "the call is over": the caller applies
    the configured after-call work, or skips it when that is zero seconds.
    """
    if current is AgentState.LOGGED_OUT:
        return None
    same_call = current_call == call_id
    if fact is CallFact.RINGING:
        if current in (AgentState.TALKING, AgentState.ON_HOLD) and not same_call:
            return None  # a second call offered while talking does not take the agent out of the first
        if current is AgentState.RINGING and same_call:
            return None
        return AgentState.RINGING
    if fact is CallFact.ANSWERED:
        # Already in this call, or in another one that stays the agent's call until it ends.
        if current in (AgentState.TALKING, AgentState.ON_HOLD):
            return None
        return AgentState.TALKING
    if fact is CallFact.HELD:
        return AgentState.ON_HOLD if current is AgentState.TALKING and same_call else None
    if fact is CallFact.RESUMED:
        return AgentState.TALKING if current is AgentState.ON_HOLD and same_call else None
    if fact is CallFact.MISSED:
        return AgentState.IDLE if current is AgentState.RINGING and same_call else None
    # ENDED
    if current not in IN_CALL or not same_call:
        return None
    if current is AgentState.RINGING and not answered:
        return AgentState.IDLE  # rang, never answered here: no paperwork to do
    return AgentState.AFTER_CALL_WORK
