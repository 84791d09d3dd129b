"""ACD routing: routed calls/s and the latency from an AMI event in to the AMI action out.

    .venv/bin/python bench/acd_routing.py [--agents 1000] [--rates 50,100,200,400,800] [--seconds 2] [--talk 3]

What runs is the ACD's own hot path, in process, without the PBX: the AMI reader (`AmiReader`)
is fed the bytes of each inbound call as Asterisk sends them (Newchannel, VarSet DNIS,
MusicOnHoldStart in `[waiting]`), the live model applies them, `route_if_waiting` hands the
caller to the router, the rules decide (blacklist, number, owner, region via `phone`, queue
strategy over 1,000 agents in 10 groups), and the AMI edge here formats the Originate frame
(trace 01) and writes it to a real socket (a socketpair drained by a thread). Latency is
taken from just before the MusicOnHoldStart bytes enter the reader to just after the
Originate bytes left through `send()`. Not included: the asyncio task hop of the service's
edge (`AmiRoutingActions.offer` spawns a task that calls panoramisk's `send_action`) and the
outbox writer, which runs off the reader's path (facts are queued and dropped here).

Each step offers calls at a fixed rate for `--seconds` of wall time; an answered agent talks
`--talk` seconds (time on a ManualClock that follows the wall clock), then agent-state says
idle again; every caller hangs up `--talk` seconds after arriving (still waiting: abandoned).
When all agents are busy calls queue, and a freed agent takes the best one (that decision
starts from an agent event, and is counted in decisions/s, not in the latency; "at once" is
how many calls were offered straight from their MusicOnHoldStart, the latency's sample).
The last step offers calls as fast as the loop takes them: sustained decisions/s.
"""

from __future__ import annotations

import argparse
import heapq
import random
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from acd.agents import AgentView
from acd.ami import AmiReader
from acd.calls import CallModel
from acd.notifier import FactQueue, RoutingNotifier
from acd.regions import RegionLookup
from acd.router import Offer, Router, WaitingCall
from acd.rules import QueueConfig, RegionTarget, RoutingConfig, RoutingRules
from acd.service import RoutedCallNotifier, route_if_waiting
from callcenter_common.clock import ManualClock

GROUPS = [f"g{n}" for n in range(10)]


class SocketEdge:
    """The router's AMI edge: Originate frames written to a socket, as panoramisk writes them."""

    def __init__(self) -> None:
        self.out, self.sink = socket.socketpair()
        self.out.setblocking(True)
        self.sent_at: dict[str, float] = {}
        self.offers: list[Offer] = []
        self._ids = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while self.sink.recv(1 << 20):
            pass

    def offer(self, offer: Offer) -> None:
        self._ids += 1
        frame = (
            f"Action: Originate\r\nActionID: orig-{self._ids}\r\nChannel: PJSIP/{offer.extension}\r\n"
            f"Application: Bridge\r\nData: {offer.caller_channel}\r\nTimeout: {offer.ring_timeout_ms}\r\n"
            f'CallerID: "{offer.caller_number}" <{offer.caller_number}>\r\nAsync: true\r\n'
            f"Variable: ACD_CALLER={offer.caller_channel}\r\n\r\n"
        )
        self.out.sendall(frame.encode())
        self.sent_at[offer.call_id] = time.perf_counter()
        self.offers.append(offer)

    def block(self, waiting: WaitingCall, blacklist_entry: int | None) -> None: ...

    def call_back(self, waiting: WaitingCall) -> None: ...

    def cancel_offer(self, waiting: WaitingCall) -> None: ...


def frames(n: int, caller: str, dnis: str) -> tuple[bytes, bytes, bytes]:
    """The trunk call's arrival, then its music on hold, then its hang-up (as in trace 01)."""
    uid, name = f"1796000000.{n}", f"PJSIP/trunk-{n:08x}"
    snapshot = (
        f"Channel: {name}\r\nChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: {caller}\r\n"
        f"CallerIDName: {caller}\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\n"
        f"Language: en\r\nAccountCode: \r\nContext: waiting\r\nExten: s\r\nPriority: 1\r\n"
        f"Uniqueid: {uid}\r\nLinkedid: {uid}\r\n"
    )
    arrival = (
        f"Event: Newchannel\r\nPrivilege: call,all\r\n{snapshot.replace('ChannelState: 6', 'ChannelState: 4')}\r\n"
        f"Event: VarSet\r\nPrivilege: dialplan,all\r\n{snapshot}Variable: DNIS\r\nValue: {dnis}\r\n\r\n"
    )
    moh = f"Event: MusicOnHoldStart\r\nPrivilege: call,all\r\n{snapshot}Class: default\r\n\r\n"
    hangup = f"Event: Hangup\r\nPrivilege: call,all\r\n{snapshot}Cause: 16\r\nCause-txt: Normal Clearing\r\n\r\n"
    return arrival.encode(), moh.encode(), hangup.encode()


class Bench:
    def __init__(self, agents: int, talk_seconds: float, seed: int = 6) -> None:
        self.rng = random.Random(seed)
        self.clock = ManualClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
        self.facts = FactQueue(10**9)
        self.agents = AgentView()
        notifier = RoutedCallNotifier(self.facts, self.agents.identity_of)
        self.edge = SocketEdge()
        queues = [
            QueueConfig(f"q{n}", priority=n % 3, groups=(GROUPS[n], GROUPS[(n + 1) % 10]), ring_timeout_seconds=20)
            for n in range(10)
        ]
        config = RoutingConfig(
            queues={q.queue_id: q for q in queues},
            dnis={f"40080{n:05d}": f"q{n}" for n in range(10)},
            designated={f"1390000{n:04d}": f"A{n}" for n in range(100)},
            regions={"广州": RegionTarget(groups=("g0",)), "上海": RegionTarget(groups=("g1", "g2"))},
            blocked={f"1370000{n:04d}": n for n in range(100)},
        )
        owners = {f"1380000{n:04d}": f"A{n * 7 % agents}" for n in range(5000)}
        self.router = Router(
            config,
            self.agents,
            RoutingRules(self.agents, RegionLookup(), owners),
            self.edge,
            RoutingNotifier(self.facts),
        )
        notifier.router = self.router
        self.model = CallModel(notifier, clock=self.clock)
        self.reader = AmiReader(
            wanted=self.model.handled_events,
            tracks_variable=self.model.tracks_variable,
            apply=self._apply,
            on_reply=lambda _text: None,
            is_pending=lambda _action_id: False,
        )
        self.talk = timedelta(seconds=talk_seconds)
        self.epoch, self.wall_start = self.clock.now(), time.perf_counter()
        self.busy_until: list[tuple[datetime, int, str]] = []  # agents talking, by the end of their call
        self.ends: list[tuple[datetime, int, bytes]] = []  # callers' hang-ups
        self.n = 0
        for n in range(agents):
            groups = [GROUPS[n % 10], GROUPS[(n * 3 + 1) % 10]]
            self.agents.apply_state(
                user_id=f"u{n}",
                work_number=f"A{n}",
                extension=str(10_000 + n),
                state="idle",
                groups=groups,
                changed_at=self.clock.now() - timedelta(seconds=agents - n),
            )
        self.groups_of = {a.work_number: sorted(a.groups) for a in self.agents.by_work_number.values()}
        self.router.agent_changed(self.clock.now())
        self.router.rules.regions.region_of("13800138000")

    def _apply(self, name: str, event: dict[str, str]) -> bool:
        handled = self.model.apply(name, event)
        if name == "MusicOnHoldStart":
            route_if_waiting(self.model, self.router, self.model.channels.get(event["Uniqueid"]), self.clock.now())
        return handled

    def caller(self) -> str:
        roll = self.rng.random()
        if roll < 0.02:
            return f"1370000{self.rng.randrange(100):04d}"  # blacklisted
        if roll < 0.05:
            return f"1390000{self.rng.randrange(100):04d}"  # designated
        if roll < 0.25:
            return f"1380000{self.rng.randrange(5000):04d}"  # has an owner
        return f"1{self.rng.choice('3578')}{self.rng.randrange(10**9):09d}"

    def one_call(self, latencies: list[float]) -> None:
        self.n += 1
        arrival, moh, hangup = frames(self.n, self.caller(), f"40080{self.rng.randrange(10):05d}")
        self.reader.feed(arrival)
        before = len(self.edge.offers)
        started = time.perf_counter()
        self.reader.feed(moh)
        if len(self.edge.offers) > before and self.edge.offers[-1].call_id == f"1796000000.{self.n}":
            latencies.append(self.edge.sent_at[self.edge.offers[-1].call_id] - started)
        heapq.heappush(self.ends, (self.clock.now() + self.talk, self.n, hangup))

    def settle(self) -> None:
        """Offers answered at once; talks end and agents are idle again as time passes."""
        now = self.clock.now()
        for offer in self.edge.offers:
            waiting = self.router.calls.get(offer.call_id)
            if waiting is not None and waiting.offered_to is not None:
                agent = waiting.offered_to
                self.router.offer_answered(offer.call_id, now)
                heapq.heappush(self.busy_until, (now + self.talk, self.n, agent.work_number))
        self.edge.offers.clear()
        while self.ends and self.ends[0][0] <= now:
            self.reader.feed(heapq.heappop(self.ends)[2])
        while self.busy_until and self.busy_until[0][0] <= now:
            _, _, work_number = heapq.heappop(self.busy_until)
            agent = self.agents.by_work_number[work_number]
            self.agents.apply_state(
                user_id=agent.user_id,
                work_number=work_number,
                extension=agent.extension,
                state="idle",
                groups=self.groups_of[work_number],
                changed_at=now,
            )
        self.router.agent_changed(now)
        self.router.tick(now)
        self.facts.take(len(self.facts))

    def step(self, rate: float | None, seconds: float) -> tuple[int, float, list[float]]:
        latencies: list[float] = []
        decisions_before = sum(self.router.outcomes.values()) + len(self.router.calls)
        start = time.perf_counter()
        offered = 0
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate) + 1 if rate else offered + 50
            while offered < due:
                self.one_call(latencies)
                offered += 1
            self.clock.set(self.epoch + timedelta(seconds=time.perf_counter() - self.wall_start))
            self.settle()
            if rate:
                time.sleep(max(0.0, (offered / rate) - (time.perf_counter() - start)))
        wall = time.perf_counter() - start
        routed = sum(self.router.outcomes.values()) + len(self.router.calls) - decisions_before
        return offered, routed / wall, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) >= 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--rates", default="50,100,200,400,800")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--talk", type=float, default=0.5)
    args = parser.parse_args()
    bench = Bench(args.agents, args.talk)
    print(f"{args.agents} agents in {len(GROUPS)} groups, 10 queues; talk {args.talk} s; {sys.version.split()[0]}")
    print(
        f"{'offered/s':>10} {'calls':>7} {'decisions/s':>12} {'at once':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for rate in [float(r) for r in args.rates.split(",")] + [0.0]:
        offered, per_second, latencies = bench.step(rate or None, args.seconds)
        label = f"{rate:>10.0f}" if rate else f"{'max':>10}"
        print(
            f"{label} {offered:>7} {per_second:>12.0f} {len(latencies):>8} {pct(latencies, 50):>8.3f} "
            f"{pct(latencies, 99):>8.3f} {max(latencies, default=float('nan')) * 1000:>8.3f}"
        )
    stuck = [
        a for a in bench.agents.by_work_number.values() if a.reserved_for and a.reserved_for not in bench.router.calls
    ]
    print(f"outcomes {dict(bench.router.outcomes)}; waiting {len(bench.router.calls)}; reserved, no call: {len(stuck)}")


if __name__ == "__main__":
    main()
