"""The outbox and processed-events tables of the bus.

Revision ID: acd_0001
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from callcenter_common.migrations import create_bus_tables, drop_bus_tables

revision: str = "acd_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_bus_tables()


def downgrade() -> None:
    drop_bus_tables()
