"""Helpers for tests that are not fixtures: `from testkit import auth_header`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, poll: float = 0.01) -> None:
    """Wait for a condition another task or process brings about (never for time to pass)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(poll)
