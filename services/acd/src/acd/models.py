from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from callcenter_common.outbox import BusTables


class Base(DeclarativeBase):
    pass


bus_tables = BusTables(Base.metadata)


class AnnouncedCall(Base):
    """A call the ACD has published facts of and not yet ended: what a restart must not publish again."""

    __tablename__ = "announced_calls"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(Text, nullable=False)  # JSON of acd.notifier.remembered()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class QueueRow(Base):
    """A queue (CORE-2.1): the calls of the numbers bound to it wait for its groups."""

    __tablename__ = "queues"

    queue_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    groups: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    strategy: Mapped[str] = mapped_column(String(20), nullable=False, default="longest_idle")
    ring_timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=20)
    max_wait_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    overflow_queue_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    overflow_callback: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    owner_wait_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class DnisBinding(Base):
    """A called number → its queue."""

    __tablename__ = "dnis_bindings"

    dnis: Mapped[str] = mapped_column(String(32), primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(40), ForeignKey("queues.queue_id"), nullable=False)


class NumberRule(Base):
    """A caller number → the agent who takes its calls (CORE-2.4)."""

    __tablename__ = "number_rules"

    caller_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_work_number: Mapped[str] = mapped_column(String(40), nullable=False)


class RegionRule(Base):
    """A city or province → designated agents and/or groups (CORE-2.3)."""

    __tablename__ = "region_rules"

    region: Mapped[str] = mapped_column(String(40), primary_key=True)
    groups: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    agent_work_numbers: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)


class BlacklistEntry(Base):
    """A number requested for the blacklist (AGENT-14); only `approved` entries block calls."""

    __tablename__ = "blacklist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    reason: Mapped[str] = mapped_column(String(300), nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="pending")
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    blocked_calls: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class MissedCall(Base):
    """A lost call: abandoned or unanswered inbound (AGENT-22), or an offer an agent missed (AGENT-11)."""

    __tablename__ = "missed_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # abandoned / unanswered / agent_missed
    caller_number: Mapped[str] = mapped_column(String(32), nullable=False)
    dnis: Mapped[str] = mapped_column(String(32), nullable=False)
    queue: Mapped[str | None] = mapped_column(String(40), nullable=True)
    agent_extension: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    waited_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
