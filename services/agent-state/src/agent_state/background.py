"""Work no request starts: ending expired after-call work, forgetting old revocations and inbox ids."""

from __future__ import annotations

import asyncio
import logging
import time

from agent_state.service import AgentStateService, AuthService
from callcenter_common.service import ServiceRuntime

log = logging.getLogger("agent_state.background")

HOUSEKEEPING_SECONDS = 3600.0


class AfterCallWorkTimer:
    """Polls the stored deadlines, so after-call work also ends after a restart (AGENT-5)."""

    def __init__(
        self, runtime: ServiceRuntime, agents: AgentStateService, auth: AuthService, *, poll_seconds: float
    ) -> None:
        self.runtime = runtime
        self.agents = agents
        self.auth = auth
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._last_housekeeping = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="agent-state-after-call-work")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_once(self) -> int:
        """End every expired after-call work now; returns how many."""
        total = 0
        while True:
            async with self.runtime.db.session() as session:
                ended = await self.agents.expire_after_call_work(session, limit=500)
            total += ended
            if ended < 500:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
                if time.monotonic() - self._last_housekeeping > HOUSEKEEPING_SECONDS:
                    self._last_housekeeping = time.monotonic()
                    async with self.runtime.db.session() as session:
                        await self.auth.prune_revocations(session)
                    await self.runtime.prune_inbox()
            except Exception:
                log.exception("after-call work timer failed; trying again")
            await asyncio.sleep(self.poll_seconds)
