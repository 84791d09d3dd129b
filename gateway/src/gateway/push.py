"""The per-user push stream's core: a replay buffer with sequence numbers and the fan-out to sockets.

Every bus event that carries an `audience` gets the next `seq`, is kept for replay and
is queued for each connected user it reaches.  Queues are bounded: a socket that cannot
keep up is dropped (it reconnects with `since` and loses nothing), never waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from callcenter_common.auth import Principal, RevocationList
from callcenter_common.events import Audience, Envelope

PUSH_CONNECTIONS = Gauge("gateway_push_connections", "Open push stream sockets")
PUSH_EVENTS = Counter("gateway_push_events_total", "Bus events with an audience taken into the push stream")
PUSH_CLOSED = Counter("gateway_push_closed_total", "Push sockets closed by the gateway", ["code"])

GAP_NOTICE = '{"type":"gap"}'
HEARTBEAT = '{"type":"ping"}'

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1013  # "try again later"
CLOSE_GOING_AWAY = 1001


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    seq: int
    message: str  # the JSON text sent to sockets, encoded once
    audience: Audience
    at: float


def push_message(seq: int, envelope: Envelope) -> str:
    return f'{{"seq":{seq},"event":{envelope.model_dump_json()}}}'


class ReplayBuffer:
    """The last `max_events` events of at most `max_age_seconds`, in `seq` order."""

    def __init__(
        self,
        max_events: int,
        max_age_seconds: float,
        *,
        first_seq: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_events = max_events
        self.max_age = max_age_seconds
        self._clock = clock
        # Seqs start at the start time in microseconds, so a seq remembered from an earlier
        # gateway process is older than this buffer and gets a gap notice, not wrong events.
        self.last_seq = (time.time_ns() // 1000 if first_seq is None else first_seq) - 1
        self._events: deque[BufferedEvent] = deque()

    def append(self, envelope: Envelope, audience: Audience) -> BufferedEvent:
        self.last_seq += 1
        now = self._clock()
        event = BufferedEvent(self.last_seq, push_message(self.last_seq, envelope), audience, now)
        self._events.append(event)
        if len(self._events) > self.max_events:
            self._events.popleft()
        self._expire(now)
        return event

    def after(self, seq: int) -> tuple[bool, list[BufferedEvent]]:
        """(whether events after `seq` are missing, the buffered events after `seq`)."""
        self._expire(self._clock())
        oldest = self._events[0].seq if self._events else self.last_seq + 1
        gap = not (oldest - 1 <= seq <= self.last_seq)
        return gap, [e for e in self._events if e.seq > seq]

    def __len__(self) -> int:
        return len(self._events)

    def _expire(self, now: float) -> None:
        horizon = now - self.max_age
        while self._events and self._events[0].at < horizon:
            self._events.popleft()


class PushClient:
    """One socket of one user: what is waiting to be sent, and why the gateway closed it."""

    def __init__(self, principal: Principal, queue_size: int) -> None:
        self.principal = principal
        self.queue_size = queue_size
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""

    def reaches(self, audience: Audience) -> bool:
        return audience.reaches(self.principal.user_id, self.principal.groups)

    def offer(self, message: str) -> None:
        if self.closed.is_set():
            return
        if self.queue.qsize() >= self.queue_size:
            self.close(CLOSE_TOO_SLOW, "too slow; reconnect with since")
            return
        self.queue.put_nowait(message)

    def close(self, code: int, reason: str) -> None:
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()
            PUSH_CLOSED.labels(str(code)).inc()


class PushHub:
    """Connected clients indexed by user and group; events fanned out without awaiting anyone."""

    def __init__(self, buffer: ReplayBuffer, revocations: RevocationList, *, queue_size: int) -> None:
        self.buffer = buffer
        self.revocations = revocations
        self.queue_size = queue_size
        self._clients: set[PushClient] = set()
        self._by_user: dict[str, set[PushClient]] = defaultdict(set)
        self._by_group: dict[str, set[PushClient]] = defaultdict(set)

    @property
    def clients(self) -> frozenset[PushClient]:
        return frozenset(self._clients)

    def connect(self, principal: Principal, since: int | None) -> tuple[PushClient, list[str]]:
        """Register a socket; returns it with what it must be sent first (gap notice, replay).

        Synchronous on purpose: no event can slip between the replay and the live queue.
        """
        client = PushClient(principal, self.queue_size)
        backlog: list[str] = []
        if since is not None:
            gap, events = self.buffer.after(since)
            if gap:
                backlog.append(GAP_NOTICE)
            backlog.extend(e.message for e in events if client.reaches(e.audience))
        self._clients.add(client)
        self._by_user[principal.user_id].add(client)
        for group in principal.groups:
            self._by_group[group].add(client)
        PUSH_CONNECTIONS.inc()
        return client, backlog

    def disconnect(self, client: PushClient) -> None:
        if client not in self._clients:
            return
        self._clients.discard(client)
        _discard(self._by_user, client.principal.user_id, client)
        for group in client.principal.groups:
            _discard(self._by_group, group, client)
        PUSH_CONNECTIONS.dec()

    def publish(self, envelope: Envelope) -> BufferedEvent | None:
        """Take a bus event: buffered and queued for the sockets it reaches if it has an audience."""
        audience = envelope.audience
        if audience is None:
            return None
        PUSH_EVENTS.inc()
        event = self.buffer.append(envelope, audience)
        for client in self._reached(audience):
            client.offer(event.message)
        return event

    def close_revoked(self) -> None:
        for client in [c for c in self._clients if self.revocations.is_revoked(c.principal)]:
            client.close(CLOSE_UNAUTHORIZED, "auth.token_revoked")

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "gateway shutting down") -> None:
        for client in list(self._clients):
            client.close(code, reason)

    def _reached(self, audience: Audience) -> set[PushClient]:
        if audience.everyone:
            return set(self._clients)
        reached: set[PushClient] = set()
        for user_id in audience.user_ids:
            reached.update(self._by_user.get(user_id, ()))
        for group in audience.group_ids:
            reached.update(self._by_group.get(group, ()))
        return reached


def _discard(index: dict[str, set[PushClient]], key: str, client: PushClient) -> None:
    clients = index.get(key)
    if clients is not None:
        clients.discard(client)
        if not clients:
            del index[key]
