"""Routing (issue #6): queues, DNIS bindings, number and region rules, blacklist, missed calls.

Revision ID: acd_0003
Revises: acd_0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "acd_0003"
down_revision: str | None = "acd_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("queue_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("strategy", sa.String(20), nullable=False),
        sa.Column("ring_timeout_seconds", sa.Integer, nullable=False),
        sa.Column("max_wait_seconds", sa.Integer, nullable=True),
        sa.Column("overflow_queue_id", sa.String(40), nullable=True),
        sa.Column("overflow_callback", sa.Boolean, nullable=False),
        sa.Column("owner_wait_seconds", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dnis_bindings",
        sa.Column("dnis", sa.String(32), primary_key=True),
        sa.Column("queue_id", sa.String(40), sa.ForeignKey("queues.queue_id"), nullable=False),
    )
    op.create_table(
        "number_rules",
        sa.Column("caller_number", sa.String(32), primary_key=True),
        sa.Column("agent_work_number", sa.String(40), nullable=False),
    )
    op.create_table(
        "region_rules",
        sa.Column("region", sa.String(40), primary_key=True),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("agent_work_numbers", sa.JSON, nullable=False),
    )
    op.create_table(
        "blacklist",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked_calls", sa.Integer, nullable=False),
    )
    op.create_index("ix_blacklist_number", "blacklist", ["number"])
    op.create_table(
        "missed_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("caller_number", sa.String(32), nullable=False),
        sa.Column("dnis", sa.String(32), nullable=False),
        sa.Column("queue", sa.String(40), nullable=True),
        sa.Column("agent_extension", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("waited_seconds", sa.Float, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_missed_calls_agent_extension", "missed_calls", ["agent_extension"])
    op.create_index("ix_missed_calls_at", "missed_calls", ["at"])


def downgrade() -> None:
    op.drop_index("ix_missed_calls_at", table_name="missed_calls")
    op.drop_index("ix_missed_calls_agent_extension", table_name="missed_calls")
    op.drop_table("missed_calls")
    op.drop_index("ix_blacklist_number", table_name="blacklist")
    for table in ("blacklist", "region_rules", "number_rules", "dnis_bindings", "queues"):
        op.drop_table(table)
