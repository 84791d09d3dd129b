from sqlalchemy.orm import DeclarativeBase

from callcenter_common.outbox import BusTables


class Base(DeclarativeBase):
    pass


bus_tables = BusTables(Base.metadata)
