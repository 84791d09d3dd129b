"""The event bus: one interface, RabbitMQ (aio-pika) for the platform, in-process for embedded mode.

Delivery is at least once.  A handler that raises is retried, with a growing pause,
up to `max_deliveries` times in all; then the message goes to the queue's dead-letter
queue `<queue>.dlq`.  Idempotency is the consumer's job (see `inbox.py`).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
)
from prometheus_client import Counter
from pydantic import ValidationError

from callcenter_common.events import Envelope, topic_matches
from callcenter_common.observability import correlation_id

log = logging.getLogger("callcenter.bus")

Handler = Callable[[Envelope], Awaitable[None]]

BUS_PUBLISHED = Counter("callcenter_bus_published_total", "Events confirmed by the bus", ["source"])
BUS_CONSUMED = Counter("callcenter_bus_consumed_total", "Events handled", ["queue", "outcome"])

ATTEMPT_HEADER = "x-callcenter-attempt"


class BusUnavailable(ConnectionError):
    """The broker is not reachable now; the outbox keeps the event and tries again."""


@dataclass(slots=True)
class Subscription:
    queue: str
    names: tuple[str, ...]
    handler: Handler
    exclusive: bool = False
    max_deliveries: int = 5


class Bus(abc.ABC):
    def __init__(self, *, max_deliveries: int = 5, retry_backoff_seconds: float = 0.2) -> None:
        self.max_deliveries = max_deliveries
        self.retry_backoff_seconds = retry_backoff_seconds
        self.subscriptions: list[Subscription] = []

    def subscribe(
        self,
        queue: str,
        names: Sequence[str],
        handler: Handler,
        *,
        exclusive: bool = False,
        max_deliveries: int | None = None,
    ) -> Subscription:
        """Bind `queue` to event names (topic patterns); works before or after `start()`."""
        sub = Subscription(queue, tuple(names), handler, exclusive, max_deliveries or self.max_deliveries)
        self.subscriptions.append(sub)
        self._on_subscribe(sub)
        return sub

    async def publish(self, envelope: Envelope) -> None:
        await self.publish_many([envelope])

    @abc.abstractmethod
    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Return once the bus has accepted every event (publisher confirms); else raise."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    def _on_subscribe(self, sub: Subscription) -> None:  # noqa: B027 - optional hook
        pass

    def _backoff(self, attempt: int) -> float:
        return float(min(self.retry_backoff_seconds * 2.0 ** (attempt - 1), 10.0))


async def _handle(sub: Subscription, envelope: Envelope) -> bool:
    """Run the handler; True if it succeeded."""
    token = correlation_id.set(envelope.correlation_id or str(envelope.id))
    try:
        await sub.handler(envelope)
    except Exception:
        log.exception("handler of %s failed on %s %s", sub.queue, envelope.name, envelope.id)
        BUS_CONSUMED.labels(sub.queue, "failed").inc()
        return False
    finally:
        correlation_id.reset(token)
    BUS_CONSUMED.labels(sub.queue, "ok").inc()
    return True


class InMemoryBus(Bus):
    """Topic routing inside one process: the embedded mode's broker."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._queues: dict[str, asyncio.Queue[tuple[Envelope, int]]] = {}
        self._bindings: dict[str, list[Subscription]] = defaultdict(list)
        self._workers: list[asyncio.Task[None]] = []
        self._started = False
        self.dead_letters: dict[str, list[Envelope]] = defaultdict(list)

    @property
    def connected(self) -> bool:
        return self._started

    def _on_subscribe(self, sub: Subscription) -> None:
        if sub.queue not in self._queues:
            self._queues[sub.queue] = asyncio.Queue()
        self._bindings[sub.queue].append(sub)
        if self._started:
            self._workers.append(asyncio.create_task(self._work(sub)))

    async def start(self) -> None:
        self._started = True
        for sub in self.subscriptions:
            self._workers.append(asyncio.create_task(self._work(sub)))

    async def close(self) -> None:
        self._started = False
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        if not self._started:
            raise BusUnavailable("in-memory bus is not started")
        for envelope in envelopes:
            for queue, subs in self._bindings.items():
                if any(topic_matches(p, envelope.name) for s in subs for p in s.names):
                    self._queues[queue].put_nowait((envelope, 1))

    async def _work(self, sub: Subscription) -> None:
        queue = self._queues[sub.queue]
        while True:
            envelope, attempt = await queue.get()
            if await _handle(sub, envelope):
                continue
            if attempt >= sub.max_deliveries:
                self.dead_letters[sub.queue].append(envelope)
                continue
            await asyncio.sleep(self._backoff(attempt))
            queue.put_nowait((envelope, attempt + 1))

    async def drain(self) -> None:
        """Wait until every queue is empty (for the embedded runner and tests)."""
        while any(not q.empty() for q in self._queues.values()):
            await asyncio.sleep(0)


@dataclass(slots=True)
class _Consumer:
    sub: Subscription
    channel: AbstractRobustChannel | None = None
    tag: str | None = None
    queue_name: str = ""
    bound: set[str] = field(default_factory=set)


class RabbitBus(Bus):
    """Durable topic exchange, a durable queue (+ `.dlq`) per consumer, persistent messages, confirms."""

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "callcenter.events",
        queue_type: str = "quorum",
        prefetch: int = 64,
        connect_timeout: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.exchange_name = exchange
        self.queue_type = queue_type
        self.prefetch = prefetch
        self.connect_timeout = connect_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._consumers: list[_Consumer] = []
        self._connector: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False

    @property
    def connected(self) -> bool:
        return (
            self._ready.is_set()
            and self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def start(self) -> None:
        """Connect in the background: a service starts even while the broker is down."""
        self._closing = False
        if self._connector is None:
            self._connector = asyncio.create_task(self._connect_forever())

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def _connect_forever(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self._connect()
                return
            except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
                log.warning("broker not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                log.exception("connecting to the broker failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _connect(self) -> None:
        connection = await aio_pika.connect_robust(
            self.url, timeout=self.connect_timeout, reconnect_interval=1.0, fail_fast=True
        )
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
            self._connection, self._channel, self._exchange = connection, channel, exchange
            for consumer in self._consumers:
                await self._start_consumer(consumer)
        except BaseException:
            self._connection = self._channel = self._exchange = None
            await connection.close()
            raise
        self._ready.set()
        log.info("connected to the broker, exchange %s", self.exchange_name)

    def _on_subscribe(self, sub: Subscription) -> None:
        consumer = _Consumer(sub)
        self._consumers.append(consumer)
        if self._ready.is_set():
            asyncio.get_running_loop().create_task(self._start_consumer(consumer))

    async def _start_consumer(self, consumer: _Consumer) -> None:
        assert self._connection is not None
        sub = consumer.sub
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        if sub.exclusive:
            # One per process (e.g. each gateway replica pushes to its own sockets).
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        else:
            dlq_name = f"{sub.queue}.dlq"
            await channel.declare_queue(dlq_name, durable=True, arguments={"x-queue-type": self.queue_type})
            arguments: dict[str, Any] = {
                "x-queue-type": self.queue_type,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dlq_name,
            }
            if self.queue_type == "quorum":
                arguments["x-delivery-limit"] = max(sub.max_deliveries - 1, 0)
            queue = await channel.declare_queue(sub.queue, durable=True, arguments=arguments)
        for name in sub.names:
            await queue.bind(exchange, routing_key=name)
        consumer.channel, consumer.queue_name = channel, queue.name

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._on_message(consumer, message)

        consumer.tag = await queue.consume(on_message)

    async def _on_message(self, consumer: _Consumer, message: AbstractIncomingMessage) -> None:
        sub = consumer.sub
        try:
            envelope = Envelope.from_bytes(message.body)
        except ValidationError:
            log.error("unreadable message on %s dead-lettered: %r", sub.queue, message.body[:200])
            BUS_CONSUMED.labels(sub.queue, "unreadable").inc()
            await message.reject(requeue=False)
            return
        if await _handle(sub, envelope):
            await message.ack()
            return
        attempt = self._attempt(message)
        if attempt >= sub.max_deliveries or sub.exclusive:
            await message.reject(requeue=False)
            return
        await asyncio.sleep(self._backoff(attempt))
        if self.queue_type == "quorum":
            # The broker counts deliveries (x-delivery-count) and dead-letters past the limit,
            # also when the consumer process dies mid-message.
            await message.nack(requeue=True)
        else:
            await self._republish(consumer, message, attempt + 1)

    @staticmethod
    def _attempt(message: AbstractIncomingMessage) -> int:
        """Which delivery this is, 1 for the first."""
        headers = message.headers or {}
        if "x-delivery-count" in headers:  # quorum queue: deliveries before this one
            return int(str(headers["x-delivery-count"])) + 1
        return int(str(headers.get(ATTEMPT_HEADER, 1)))

    async def _republish(self, consumer: _Consumer, message: AbstractIncomingMessage, attempt: int) -> None:
        assert consumer.channel is not None
        copy = aio_pika.Message(
            message.body,
            headers={**(message.headers or {}), ATTEMPT_HEADER: attempt},
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
        )
        await consumer.channel.default_exchange.publish(copy, routing_key=consumer.queue_name)
        await message.ack()

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        if not self.connected or self._exchange is None:
            raise BusUnavailable("not connected to the broker")
        exchange = self._exchange
        try:
            # Confirms are only fast with many publishes in flight (THIRD-PARTY.md).
            await asyncio.gather(*(exchange.publish(_message(e), routing_key=e.name) for e in envelopes))
        except (aio_pika.exceptions.AMQPException, aiormq.exceptions.AMQPError, OSError, RuntimeError) as exc:
            raise BusUnavailable(str(exc)) from exc
        for envelope in envelopes:
            BUS_PUBLISHED.labels(envelope.source).inc()

    async def close(self) -> None:
        self._closing = True
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
            self._connector = None
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._exchange = None
        self._ready.clear()


def _message(envelope: Envelope) -> aio_pika.Message:
    return aio_pika.Message(
        envelope.to_bytes(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.id),
        correlation_id=envelope.correlation_id,
        type=envelope.name,
        timestamp=envelope.occurred_at,
        app_id=envelope.source,
    )


def bus_from_settings(settings: Any) -> Bus:
    """A `Bus` per `PlatformSettings`."""
    common = {
        "max_deliveries": settings.consumer_max_deliveries,
        "retry_backoff_seconds": settings.consumer_retry_backoff_seconds,
    }
    if settings.bus == "memory":
        return InMemoryBus(**common)
    return RabbitBus(
        settings.amqp_url,
        exchange=settings.exchange,
        queue_type=settings.queue_type,
        prefetch=settings.consumer_prefetch,
        **common,
    )
