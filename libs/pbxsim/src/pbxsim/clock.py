"""Time for the simulator: ordered timers over a real or a virtual time source.

Every delay in the call model (ringing, Answer(), prompts, Dial timeouts) goes through a
`Clock`. `RealClock` follows the event loop (embedded mode, benchmarks); `VirtualClock`
only moves when the simulator is told to advance, so tests never sleep. Timers due at the
same instant run in the order they were set, on both clocks, which keeps event order stable.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Timer:
    __slots__ = ("cancelled", "fn", "seq", "when")

    def __init__(self, when: float, seq: int, fn: Callable[[], None]) -> None:
        self.when = when
        self.seq = seq
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


def resolve(future: asyncio.Future[T], value: T) -> None:
    """Set a future's result unless it is already done (cancelled, or resolved by another path)."""
    if not future.done():
        future.set_result(value)


class Clock(ABC):
    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self.on_error: Callable[[BaseException], None] = lambda exc: log.error("timer failed", exc_info=exc)

    @abstractmethod
    def now(self) -> float:
        """Monotonic seconds."""

    @abstractmethod
    def wall(self) -> float:
        """Epoch seconds, for Uniqueids and timestamps."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(self.now() + max(delay, 0.0), next(self._seq), fn)
        heapq.heappush(self._heap, timer)
        self._rearm()
        return timer

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_later(delay, functools.partial(resolve, future, None))
        try:
            await future
        finally:
            timer.cancel()

    def next_due(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].when if self._heap else None

    def _pop_due(self, until: float) -> Timer | None:
        due = self.next_due()
        if due is None or due > until:
            return None
        return heapq.heappop(self._heap)

    def _run(self, timer: Timer) -> None:
        try:
            timer.fn()
        except Exception as exc:
            self.on_error(exc)

    @abstractmethod
    def _rearm(self) -> None:
        """Make sure the earliest timer will run when it falls due."""


class VirtualClock(Clock):
    """Time stands still until `PbxSimulator.advance()` moves it."""

    def __init__(self, start_wall: float | None = None) -> None:
        super().__init__()
        self._now = 0.0
        self._start_wall = time.time() if start_wall is None else start_wall

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._start_wall + self._now

    def _rearm(self) -> None:
        """Nothing to do: virtual timers run when the simulator is advanced."""

    def run_next(self, until: float) -> bool:
        """Run the earliest timer due at or before `until`; False when there is none."""
        timer = self._pop_due(until)
        if timer is None:
            return False
        self._now = max(self._now, timer.when)
        self._run(timer)
        return True

    def move_to(self, when: float) -> None:
        self._now = max(self._now, when)


class RealClock(Clock):
    """Follows the running event loop."""

    def __init__(self) -> None:
        super().__init__()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._closed = False

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    def _rearm(self) -> None:
        due = self.next_due()
        if self._closed or due is None or (self._armed_for is not None and self._armed_for <= due):
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = due
        self._handle = asyncio.get_running_loop().call_at(due, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_for = None
        now = self.now()
        while (timer := self._pop_due(now)) is not None:
            self._run(timer)
        self._rearm()

    def close(self) -> None:
        """Drop every timer; nothing runs any more."""
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed_for = None
        self._heap.clear()
