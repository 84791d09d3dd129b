"""Token buckets of the per-client rate limit."""

from __future__ import annotations

from gateway.ratelimit import TokenBuckets


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("ip:1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("ip:1") == 0.5  # one token comes back every half second
    assert buckets.take("ip:2") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("ip:1") == 0.0
    assert buckets.take("ip:1") == 0.5
    clock.now += 100
    assert [buckets.take("ip:1") for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]  # never more than the burst


def test_buckets_of_idle_clients_are_forgotten_when_the_table_is_full() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=1.0, burst=2, max_keys=2, clock=clock)
    buckets.take("busy")
    buckets.take("busy")
    buckets.take("idle")
    clock.now += 1.0  # "idle" is full again, "busy" is not
    buckets.take("new")
    assert set(buckets._buckets) == {"busy", "new"}
    assert buckets.take("busy") == 0.0 and buckets.take("busy") > 0  # its state survived the pruning
