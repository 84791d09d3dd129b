"""The router on its own (rules + waiting calls + offers) with a fake AMI edge: the rule order,
and a property-style run over many random calls and agents (fixed seeds; hypothesis is not
installed) that checks no double offer, no lost call, no agent left reserved, and that a
freed agent takes the best waiting call it may take."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from routing_support import START, RouterBench, router_bench

from acd.regions import RegionLookup, normalize_number
from acd.router import Offer, WaitingCall
from acd.rules import QueueConfig, RegionTarget

QUEUES = [
    QueueConfig("low", priority=1, groups=("g1", "g2"), max_wait_seconds=120, overflow_queue_id="high"),
    QueueConfig("high", priority=5, groups=("g2",), max_wait_seconds=90, overflow_callback=True, owner_wait_seconds=20),
    QueueConfig("gz", priority=3, groups=("gz",), strategy="fewest_calls"),
    QueueConfig("rr", priority=2, groups=("g1",), strategy="round_robin"),
]
DNIS = {"4001": "low", "4002": "high", "4003": "gz", "4004": "rr"}


def test_core_2_3_numbers_are_normalized_and_located() -> None:
    assert normalize_number("+86 138-0288-0000") == "13802880000"
    assert normalize_number("0086 20 8388 6666") == "02083886666"
    regions = RegionLookup()
    guangzhou = regions.region_of("13802880000")
    assert guangzhou is not None and (guangzhou.province, guangzhou.city) == ("广东", "广州")
    landline = regions.region_of("+862083886666")
    assert landline is not None and landline.city == "广州"
    assert regions.region_of("12345") is None  # `phone` would assert on it


def test_core_2_rules_run_in_order_blacklist_designated_owner_region_queue() -> None:
    bench = router_bench(
        QUEUES,
        DNIS,
        designated={"13900000002": "A2"},
        regions={"广州": RegionTarget(groups=("gz",))},
        blocked={"13900000001": 7},
    )
    bench.owners["13900000003"] = "A3"
    for number, groups in (("A1", ["g1"]), ("A2", ["g1"]), ("A3", ["g1"]), ("A4", ["gz"])):
        bench.agent(number, "idle", groups, START)
    at = START + timedelta(seconds=1)
    bench.call("blocked", "13900000001", "4001", at)
    bench.call("designated", "13900000002", "4001", at)
    bench.call("owner", "13900000003", "4001", at)
    bench.call("region", "13802880000", "4001", at)
    bench.call("queue", "13900000005", "4001", at)
    assert [(c, f.rule) for c, f in bench.facts.routed] == [
        ("blocked", "blacklist"),
        ("designated", "designated_number"),
        ("owner", "owner"),
        ("region", "region"),
        ("queue", "queue"),
    ]
    assert [o.extension for o in bench.ami.offers] == ["A2", "A3", "A4", "A1"]
    assert bench.ami.blocked == ["blocked"] and bench.facts.dequeued["blocked"] == ["blocked"]


def test_core_2_2_owner_logged_out_falls_through_and_owner_busy_waits() -> None:
    bench = router_bench(QUEUES, DNIS)
    bench.owners["13900000003"] = "A3"
    bench.agent("A1", "idle", ["g2"], START)
    bench.call("c1", "13900000003", "4002", START)  # owner unknown to agent-state: logged out
    bench.agent("A3", "talking", ["g2"], START)
    bench.agent("A1", "talking", ["g2"], START)
    bench.call("c2", "13900000003", "4002", START)
    assert [(c, f.rule, f.target) for c, f in bench.facts.routed] == [
        ("c1", "queue", "agent"),
        ("c2", "owner_wait", "agent"),
    ]
    bench.agent("A5", "idle", ["g2"], START + timedelta(seconds=1))
    assert "c2" not in bench.ami.ringing  # A5 may not take a call that waits for its owner
    bench.router.tick(START + timedelta(seconds=21))
    assert bench.ami.ringing["c2"].extension == "A5"
    assert bench.facts.routed[-1][1].rule == "owner_overflow"


def test_core_2_1_max_wait_overflows_to_the_next_queue_then_to_a_call_back() -> None:
    bench = router_bench(QUEUES, DNIS)
    bench.call("c1", "13900000009", "4001", START)
    bench.router.tick(START + timedelta(seconds=121))
    assert bench.router.calls["c1"].queue.queue_id == "high"
    bench.router.tick(START + timedelta(seconds=212))
    assert bench.ami.called_back == ["c1"] and bench.facts.dequeued["c1"] == ["overflowed"]
    assert [f.rule for _, f in bench.facts.routed] == ["queue", "overflow", "overflow"]


def test_core_2_1_strategies_pick_longest_idle_fewest_calls_and_round_robin() -> None:
    bench = router_bench(QUEUES, DNIS)
    t = START
    for n, wn in enumerate(("B1", "B2", "B3")):
        bench.agent(wn, "idle", ["gz", "g1"], t + timedelta(seconds=n))
    picks: dict[str, list[str]] = {}
    for dnis, name in (("4003", "fewest_calls"), ("4004", "round_robin")):
        for i in range(3):
            t += timedelta(seconds=10)
            call_id = f"{name}-{i}"
            bench.call(call_id, f"1390000{i:04d}", dnis, t)
            offer = bench.ami.ringing.pop(call_id)
            picks.setdefault(name, []).append(offer.extension)
            bench.router.offer_answered(call_id, t)
            bench.agent(offer.extension, "idle", ["gz", "g1"], t + timedelta(seconds=1))
    # B1 answered, then B2 (fewest calls, longest idle among equals), then B3.
    assert picks["fewest_calls"] == ["B1", "B2", "B3"]
    assert picks["round_robin"] == ["B1", "B2", "B3"]


class Invariants:
    def __init__(self, bench: RouterBench) -> None:
        self.bench = bench
        self.entered: set[str] = set()

    def check(self) -> None:
        router, agents = self.bench.router, self.bench.agents
        for agent in agents.by_work_number.values():
            if agent.reserved_for is not None:
                waiting = router.calls[agent.reserved_for]
                assert waiting.offered_to is agent, "agent reserved for a call not offered to it"
            if agent.available:  # a free agent never leaves a call it may take waiting
                for waiting in router.calls.values():
                    if waiting.state == "waiting":
                        assert not self._eligible(waiting, agent.work_number, agent.groups), (waiting.call_id, agent)
        offered = {w.call_id for w in router.calls.values() if w.offered_to is not None}
        assert offered == set(self.bench.ami.ringing)
        for w in router.calls.values():
            assert w.offered_to is None or w.offered_to.reserved_for == w.call_id
        for call_id in self.entered:
            reasons = self.bench.facts.dequeued.get(call_id, [])
            assert len(reasons) <= 1
            assert reasons or call_id in router.calls, f"{call_id} lost"

    @staticmethod
    def _eligible(waiting: WaitingCall, work_number: str, groups: frozenset[str]) -> bool:
        wait_for = waiting.wait_for
        if wait_for is not None:
            return bool(wait_for.work_number == work_number)
        return bool(groups & set(waiting.groups))


def offer_checked(bench: RouterBench) -> None:
    """Wrap the fake AMI: at each offer, no waiting call the agent may take comes before the one offered."""
    plain = bench.ami.offer

    def offer(o: Offer) -> None:
        agent = bench.agents.by_work_number[o.extension]
        chosen = bench.router.calls[o.call_id]
        for waiting in bench.router.calls.values():
            if waiting.state == "waiting" and Invariants._eligible(waiting, agent.work_number, agent.groups):
                assert chosen.order < waiting.order, f"{o.call_id} offered before better {waiting.call_id}"
        plain(o)

    bench.ami.offer = offer  # type: ignore[method-assign,assignment]


@pytest.mark.parametrize("seed", range(40))
def test_core_2_random_calls_and_agents_no_double_offer_no_lost_call_no_agent_left_reserved(seed: int) -> None:
    rng = random.Random(seed)
    bench = router_bench(
        QUEUES,
        DNIS,
        designated={"13900000002": "A2"},
        regions={"广州": RegionTarget(groups=("gz",), agent_work_numbers=("A7",))},
        blocked={"13900000001": 1},
    )
    bench.owners.update({"13900000003": "A3", "13900000004": "A4"})
    offer_checked(bench)
    invariants = Invariants(bench)
    groups = [["g1"], ["g2"], ["g1", "g2"], ["gz"], ["gz", "g1"]]
    agent_groups = {f"A{n}": rng.choice(groups) for n in range(12)}
    callers = ["13900000001", "13900000002", "13900000003", "13900000004", "13802880000", "13600000000"]
    now = START
    picked = 0
    for step in range(400):
        now += timedelta(seconds=rng.choice((0, 0.5, 1, 3)))
        roll = rng.random()
        if roll < 0.3:
            call_id = f"c{step}"
            caller = rng.choice(callers) if rng.random() < 0.4 else f"139{rng.randrange(10**8):08d}"
            bench.call(call_id, caller, rng.choice(list(DNIS)), now)
            invariants.entered.add(call_id)
        elif roll < 0.55:
            work_number = rng.choice(list(agent_groups))
            state = rng.choice(("idle", "idle", "talking", "short_break", "logged_out"))
            bench.agent(work_number, state, agent_groups[work_number], now)
        elif roll < 0.8 and bench.ami.ringing:
            call_id = rng.choice(sorted(bench.ami.ringing))
            del bench.ami.ringing[call_id]
            outcome = rng.random()
            if outcome < 0.6:
                bench.router.offer_answered(call_id, now)
            else:
                bench.router.offer_failed(call_id, now, agent_missed=outcome < 0.9)
        elif roll < 0.84 and bench.ami.ringing:
            picker = bench.agents.by_work_number.get(rng.choice(list(agent_groups)))
            if picker is not None and bench.router.pickup(rng.choice(sorted(bench.ami.ringing)), picker, now) is None:
                picked += 1
        elif roll < 0.9 and bench.router.calls:
            bench.router.call_ended(rng.choice(sorted(bench.router.calls)), now)
        else:
            now += timedelta(seconds=rng.choice((10, 30, 100)))
            bench.router.tick(now)
        invariants.check()

    # Drain: every offer gets its result, every caller still there hangs up.
    for call_id in sorted(bench.ami.ringing):
        del bench.ami.ringing[call_id]
        bench.router.offer_answered(call_id, now)
    for call_id in sorted(bench.router.calls):
        bench.router.call_ended(call_id, now)
    for call_id in sorted(bench.ami.ringing):
        del bench.ami.ringing[call_id]
        bench.router.offer_failed(call_id, now, agent_missed=False)
    invariants.check()
    assert not bench.router.calls
    assert all(agent.reserved_for is None for agent in bench.agents.by_work_number.values())
    outcomes = {call_id: bench.facts.dequeued.get(call_id, []) for call_id in invariants.entered}
    assert all(len(reasons) == 1 for reasons in outcomes.values()), outcomes
    assert {r[0] for r in outcomes.values()} <= {"answered", "abandoned", "overflowed", "blocked"}
    assert sum(bench.router.outcomes.values()) == len(invariants.entered)
    assert picked == len(bench.ami.picked)
