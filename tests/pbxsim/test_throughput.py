"""Event emission speed: benchmarks push at least 20,000 AMI events/s through the simulator."""

from __future__ import annotations

import asyncio
import time

from pbxsim import InboundContext, PbxSimulator

REQUIRED_EVENTS_PER_SECOND = 20_000


async def test_twenty_thousand_events_per_second_over_loopback(make_sim, sim_config):
    sim_config.contexts["from-trunk"] = InboundContext(answer=False)  # no timers: calls churn at once
    sim_config.agi_url = None
    sim: PbxSimulator = await make_sim()
    assert sim.ami_port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
    try:
        await reader.readline()
        writer.write(b"Action: Login\r\nUsername: probe\r\nSecret: probe123\r\n\r\n")
        await reader.readuntil(b"Status: Fully Booted\r\n\r\n")

        async def count_until_pong() -> int:
            frames, tail = 0, b""
            while True:
                chunk = await reader.read(1 << 20)
                assert chunk, "connection closed"
                data = tail + chunk
                frames += data.count(b"\r\n\r\n")
                if b"ActionID: end\r\nPing: Pong" in data:
                    return frames
                tail = data[-64:]

        counter = asyncio.ensure_future(count_until_pong())
        started = time.perf_counter()
        for i in range(3000):
            call = await sim.inbound_call(f"138{i:08d}")
            call.hangup()
            if i % 100 == 0:
                await asyncio.sleep(0)  # let the writes go out while calls keep coming
        writer.write(b"Action: Ping\r\nActionID: end\r\n\r\n")
        frames = await asyncio.wait_for(counter, 30)
        elapsed = time.perf_counter() - started
    finally:
        writer.close()
    assert frames > 25_000
    assert frames / elapsed >= REQUIRED_EVENTS_PER_SECOND, f"{frames / elapsed:,.0f} events/s"
