"""The push stream's core without sockets: replay buffer bounds and fan-out that never waits."""

from __future__ import annotations

import json

from callcenter_common.auth import Principal, RevocationList
from callcenter_common.events import Audience, Envelope
from gateway.push import CLOSE_TOO_SLOW, GAP_NOTICE, PushHub, ReplayBuffer


def principal(user_id: str, *groups: str) -> Principal:
    return Principal(user_id=user_id, work_number=user_id, groups=frozenset(groups))


def event(n: int, **audience: object) -> Envelope:
    return Envelope(name="screen.popped", source="acd", data={"n": n}, audience=Audience(**audience))  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_slow_socket_is_dropped_without_holding_up_the_others() -> None:
    hub = PushHub(ReplayBuffer(100, 60), RevocationList(), queue_size=3)
    slow, _ = hub.connect(principal("u1"), None)
    fast, _ = hub.connect(principal("u2"), None)
    received = []
    for n in range(6):
        hub.publish(event(n, everyone=True))
        received.append(json.loads(fast.queue.get_nowait())["event"]["data"]["n"])
    assert received == [0, 1, 2, 3, 4, 5]
    assert slow.closed.is_set() and slow.close_code == CLOSE_TOO_SLOW
    assert slow.queue.qsize() == 3  # bounded: nothing was queued once it was full
    assert not fast.closed.is_set()


async def test_disconnected_socket_gets_nothing_and_events_without_audience_are_not_pushed() -> None:
    hub = PushHub(ReplayBuffer(100, 60), RevocationList(), queue_size=10)
    client, _ = hub.connect(principal("u1", "g1"), None)
    assert hub.publish(Envelope(name="call.queued", source="acd")) is None
    hub.disconnect(client)
    hub.publish(event(1, user_ids=("u1",)))
    hub.publish(event(2, group_ids=("g1",)))
    assert client.queue.empty()
    assert hub.clients == frozenset()
    assert len(hub.buffer) == 2


async def test_replay_buffer_keeps_the_last_n_events_and_reports_the_gap() -> None:
    buffer = ReplayBuffer(3, 120, first_seq=1)
    for n in range(1, 6):
        buffer.append(event(n, everyone=True), Audience(everyone=True))
    assert buffer.last_seq == 5
    gap, events = buffer.after(1)
    assert gap and [e.seq for e in events] == [3, 4, 5]
    gap, events = buffer.after(2)  # 3 is the oldest kept: nothing after 2 is missing
    assert not gap and [e.seq for e in events] == [3, 4, 5]
    assert buffer.after(5) == (False, [])
    gap, events = buffer.after(9)  # a seq this process never gave out (another replica, a restart)
    assert gap and events == []


async def test_replay_buffer_forgets_events_older_than_its_window() -> None:
    clock = FakeClock()
    buffer = ReplayBuffer(100, 120, first_seq=1, clock=clock)
    buffer.append(event(1, everyone=True), Audience(everyone=True))
    clock.now += 100
    buffer.append(event(2, everyone=True), Audience(everyone=True))
    clock.now += 30
    gap, events = buffer.after(0)
    assert gap and [e.seq for e in events] == [2]


async def test_connect_with_since_gives_gap_notice_then_only_what_reaches_the_user() -> None:
    hub = PushHub(ReplayBuffer(2, 120, first_seq=1), RevocationList(), queue_size=10)
    hub.publish(event(1, user_ids=("u1",)))
    hub.publish(event(2, user_ids=("u2",)))
    hub.publish(event(3, group_ids=("g1",)))
    _, backlog = hub.connect(principal("u1", "g1"), since=0)  # 1 was dropped: a gap
    assert backlog[0] == GAP_NOTICE
    assert [json.loads(m)["event"]["data"]["n"] for m in backlog[1:]] == [3]
