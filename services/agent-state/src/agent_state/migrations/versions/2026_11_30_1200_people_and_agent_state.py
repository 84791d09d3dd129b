"""People, roles, groups, sessions, agent state and timeline, announcements, address book, shifts.

Revision ID: agent_state_0002
Revises: agent_state_0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "agent_state_0002"
down_revision: str | None = "agent_state_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("department", sa.String(20), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
    )
    op.create_table(
        "role_permissions",
        sa.Column("role", sa.String(40), sa.ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("permission", sa.String(100), primary_key=True),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("work_number", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("department", sa.String(20), nullable=False),
        sa.Column("role", sa.String(40), sa.ForeignKey("roles.name"), nullable=False),
        sa.Column("extension", sa.String(20), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTC_DATETIME, nullable=True),
        sa.Column("password_changed_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "agent_groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("team_lead_id", sa.String(36), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("manager_id", sa.String(36), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("after_call_work_seconds", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_agent_groups_team_lead_id", "agent_groups", ["team_lead_id"])
    op.create_index("ix_agent_groups_manager_id", "agent_groups", ["manager_id"])
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(36), sa.ForeignKey("agent_groups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("signed_in", sa.Boolean(), nullable=False),
        sa.Column("added_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_group_members_user_id", "group_members", ["user_id"])
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("extension", sa.String(20), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("end_reason", sa.String(40), nullable=False),
    )
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(32), sa.ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("used_at", UTC_DATETIME, nullable=True),
    )
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])
    op.create_table(
        "revocations",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=True),
        sa.Column("not_before", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
    )
    op.create_index("ix_revocations_expires_at", "revocations", ["expires_at"])
    op.create_table(
        "agent_status",
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("since", UTC_DATETIME, nullable=False),
        sa.Column("changed_by", sa.String(36), nullable=True),
        sa.Column("extension", sa.String(20), nullable=True, unique=True),
        sa.Column("session_id", sa.String(32), nullable=True),
        sa.Column("call_id", sa.String(100), nullable=True),
        sa.Column("call_muted", sa.Boolean(), nullable=False),
        sa.Column("call_event_at", UTC_DATETIME, nullable=True),
        sa.Column("after_call_work_until", UTC_DATETIME, nullable=True),
        sa.Column("next_state", sa.String(20), nullable=True),
        sa.Column("next_reason", sa.String(100), nullable=False),
    )
    op.create_index("ix_agent_status_after_call_work_until", "agent_status", ["after_call_work_until"])
    op.create_table(
        "state_intervals",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("changed_by", sa.String(36), nullable=True),
        sa.Column("call_id", sa.String(100), nullable=True),
    )
    op.create_index("ix_state_intervals_user_started", "state_intervals", ["user_id", "started_at"])
    op.create_index("ix_state_intervals_started_at", "state_intervals", ["started_at"])
    op.create_table(
        "supervisor_actions",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("actor_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("target_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("previous_state", sa.String(20), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_supervisor_actions_target_at", "supervisor_actions", ["target_id", "at"])
    op.create_table(
        "announcements",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("author_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("audience", sa.String(10), nullable=False),
        sa.Column("target_user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
        sa.Column(
            "target_group_id", sa.String(36), sa.ForeignKey("agent_groups.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_announcements_author_id", "announcements", ["author_id"])
    op.create_index("ix_announcements_target_user_id", "announcements", ["target_user_id"])
    op.create_index("ix_announcements_target_group_id", "announcements", ["target_group_id"])
    op.create_index("ix_announcements_created_at", "announcements", ["created_at"])
    op.create_table(
        "announcement_reads",
        sa.Column(
            "announcement_id",
            sa.String(36),
            sa.ForeignKey("announcements.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("read_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(40), nullable=False),
        sa.Column("mobile", sa.String(40), nullable=False),
        sa.Column("organization", sa.String(200), nullable=False),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_contacts_owner_id", "contacts", ["owner_id"])
    op.create_table(
        "shifts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("starts_at", sa.Time(), nullable=False),
        sa.Column("ends_at", sa.Time(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "roster_entries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("shift_id", sa.String(36), sa.ForeignKey("shifts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("user_id", "day", "shift_id", name="uq_roster_entries_user_day_shift"),
    )
    op.create_index("ix_roster_entries_day", "roster_entries", ["day"])


def downgrade() -> None:
    for table in (
        "roster_entries",
        "shifts",
        "contacts",
        "announcement_reads",
        "announcements",
        "supervisor_actions",
        "state_intervals",
        "agent_status",
        "revocations",
        "refresh_tokens",
        "auth_sessions",
        "group_members",
        "agent_groups",
        "users",
        "role_permissions",
        "roles",
    ):
        op.drop_table(table)
