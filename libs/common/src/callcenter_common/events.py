"""The event envelope of ARCHITECTURE.md and the base of every event contract."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

EventT = TypeVar("EventT", bound="Event")

# Set by the HTTP middleware and the bus consumer (observability re-exports it).
current_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class Audience(BaseModel):
    """Who the gateway pushes an event to over `/api/stream`: users, groups or everyone."""

    model_config = ConfigDict(frozen=True)

    user_ids: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()
    everyone: bool = False

    def reaches(self, user_id: str, group_ids: frozenset[str] | set[str]) -> bool:
        return self.everyone or user_id in self.user_ids or any(g in group_ids for g in self.group_ids)


class Envelope(BaseModel):
    """What travels on the bus. Fields are only ever added; `version` is the contract's."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
    version: int = Field(default=1, ge=1)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: str
    correlation_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    # Added to the contract: set when the event is also meant for people's screens.
    audience: Audience | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)

    def parse(self, contract: type[EventT]) -> EventT:
        """Read `data` as the given contract (checks the name matches)."""
        if self.name != contract.name:
            raise ValueError(f"event {self.name!r} is not {contract.name!r}")
        return contract.model_validate(self.data)


class Event(BaseModel):
    """Base of a typed event contract: subclasses set `name` and `version`."""

    model_config = ConfigDict(extra="allow")

    name: ClassVar[str]
    version: ClassVar[int] = 1

    def envelope(
        self,
        source: str,
        *,
        correlation_id: str | None = None,
        audience: Audience | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        env = Envelope(
            name=self.name,
            version=self.version,
            source=source,
            # A request's or a consumed event's correlation id carries on unless one is given.
            correlation_id=correlation_id if correlation_id is not None else current_correlation_id.get(),
            data=self.model_dump(mode="json"),
            audience=audience,
        )
        if occurred_at is not None:
            env.occurred_at = occurred_at
        return env

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> Self:
        return envelope.parse(cls)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is one word, `#` is zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])
