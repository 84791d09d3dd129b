"""Fixtures of the ACD tests: the PBX simulator over real TCP, the ACD's settings on the test
PostgreSQL and RabbitMQ, and a call.* consumer on the broker. Helpers are in `acd_support.py`."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from acd.config import AcdSettings
from callcenter_common.bus import RabbitBus
from callcenter_common.settings import PlatformSettings
from pbxsim import Answer, EndpointConfig, NoAnswer, PbxSimulator, SimConfig

# `tests/` is on the path for testkit; this directory is added for acd_support (a name no package uses).
sys.path.insert(0, str(Path(__file__).parent))

from acd_support import OPS_SECRET, SECRET, CallEventLog


@pytest.fixture
async def sim() -> AsyncIterator[PbxSimulator]:
    config = SimConfig(
        port=0,
        users={"acd": SECRET, "ops": OPS_SECRET},
        failed_login_delay=0,
        answer_seconds=0.01,
        endpoints={
            "1001": EndpointConfig(behaviour=Answer(after=0.05)),
            "1002": EndpointConfig(behaviour=Answer(after=0.05)),
            "1003": EndpointConfig(behaviour=NoAnswer()),
        },
    )
    async with PbxSimulator(config) as simulator:
        yield simulator


@pytest.fixture
def acd_settings(pg_url: str, platform_settings: PlatformSettings, sim: PbxSimulator) -> AcdSettings:
    assert sim.ami_port is not None
    return AcdSettings(
        database_url=pg_url,
        platform=platform_settings,
        ami_port=sim.ami_port,
        ami_username="acd",
        ami_secret=SECRET,
        ami_reconnect_initial_seconds=0.02,
        ami_reconnect_max_seconds=0.2,
        resync_interval_seconds=0,
        outbox_poll_seconds=0.2,
    )


@pytest.fixture
async def call_events(
    platform_settings: PlatformSettings, cleanup_bus: Callable[[RabbitBus], None]
) -> AsyncIterator[tuple[CallEventLog, RabbitBus]]:
    """A consumer of call.* on the broker, independent of the ACD (it outlives ACD restarts)."""
    log = CallEventLog()
    bus = RabbitBus(platform_settings.amqp_url, exchange=platform_settings.exchange)
    bus.subscribe("test-acd-listener", ["call.*", "test.barrier"], log.handle, exclusive=True)
    cleanup_bus(bus)
    await bus.start()
    await bus.wait_connected(10)
    yield log, bus
    await bus.close()
