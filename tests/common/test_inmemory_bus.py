"""The in-process bus of the embedded mode keeps the RabbitMQ bus's semantics (issue #2)."""

from __future__ import annotations

import asyncio

import pytest

from callcenter_common.bus import BusUnavailable, InMemoryBus
from callcenter_common.events import Envelope, topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("call.*", "call.answered", True),
        ("call.*", "call.answered.late", False),
        ("call.#", "call.answered.late", True),
        ("#", "patient.owner_changed", True),
        ("*.answered", "call.answered", True),
        ("call.answered", "call.ended", False),
        ("call.#.late", "call.late", True),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


async def test_routes_by_topic_to_every_bound_queue() -> None:
    bus = InMemoryBus()
    calls: list[str] = []
    everything: list[str] = []

    async def on_call(e: Envelope) -> None:
        calls.append(e.name)

    async def on_any(e: Envelope) -> None:
        everything.append(e.name)

    bus.subscribe("a.calls", ["call.*"], on_call)
    bus.subscribe("b.all", ["#"], on_any)
    await bus.start()
    await bus.publish_many(
        [Envelope(name="call.answered", source="t"), Envelope(name="patient.registered", source="t")]
    )
    await bus.drain()
    await asyncio.sleep(0)
    assert calls == ["call.answered"]
    assert everything == ["call.answered", "patient.registered"]
    await bus.close()


async def test_failing_handler_is_retried_then_dead_lettered() -> None:
    bus = InMemoryBus(max_deliveries=3, retry_backoff_seconds=0)
    attempts = 0
    failed_all = asyncio.Event()

    async def fails(_: Envelope) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            failed_all.set()
        raise RuntimeError("no")

    bus.subscribe("a.poison", ["x.y"], fails)
    await bus.start()
    await bus.publish(Envelope(name="x.y", source="t"))
    await asyncio.wait_for(failed_all.wait(), 5)
    await bus.drain()
    async with asyncio.timeout(5):
        while not bus.dead_letters["a.poison"]:
            await asyncio.sleep(0)
    assert attempts == 3
    await bus.close()


async def test_publish_before_start_is_refused() -> None:
    with pytest.raises(BusUnavailable):
        await InMemoryBus().publish(Envelope(name="x.y", source="t"))
