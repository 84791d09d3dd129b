from datetime import datetime

from sqlalchemy import DateTime, String, Text
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
