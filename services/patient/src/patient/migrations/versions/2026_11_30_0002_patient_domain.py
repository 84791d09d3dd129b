"""The patient domain: patients, family, records, ownership, levels, points, cards, funds (WO-3.x).

Revision ID: patient_0002
Revises: patient_0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "patient_0002"
down_revision: str | None = "patient_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("work_number", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("work_number"),
    )
    op.create_table(
        "card_types",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("benefits", sa.JSON(), nullable=False),
        sa.Column("therapy_price_percent", sa.Integer(), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "conditions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "name", name="uq_conditions_kind_name"),
    )
    op.create_table(
        "first_contacts",
        sa.Column("mobile", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("work_number", sa.String(length=40), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mobile"),
    )
    op.create_table(
        "level_schemes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "reward_products",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("points_cost", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=True),
        sa.Column("min_yearly_visits", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint("stock IS NULL OR stock >= 0", name="ck_reward_products_stock"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "agent_groups",
        sa.Column("work_number", sa.String(length=40), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["work_number"], ["agents.work_number"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("work_number", "group_id"),
    )
    op.create_index("ix_agent_groups_group_id", "agent_groups", ["group_id"], unique=False)
    op.create_table(
        "member_levels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scheme_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("treatment_price_percent", sa.Integer(), nullable=False),
        sa.Column("min_order_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("min_order_count", sa.Integer(), nullable=True),
        sa.Column("benefits", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scheme_id"],
            ["level_schemes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scheme_id", "code", name="uq_member_levels_scheme_code"),
        sa.UniqueConstraint("scheme_id", "rank", name="uq_member_levels_scheme_rank"),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mobile", sa.String(length=20), nullable=False),
        sa.Column("patient_number", sa.String(length=40), nullable=True),
        sa.Column("store_code", sa.String(length=10), nullable=True),
        sa.Column("clinic_card_number", sa.String(length=30), nullable=True),
        sa.Column("source_channel", sa.String(length=20), nullable=False),
        sa.Column("source_detail", sa.String(length=200), nullable=True),
        sa.Column("referrer_mobile", sa.String(length=20), nullable=True),
        sa.Column("referrer_name", sa.String(length=100), nullable=True),
        sa.Column("referrer_patient_id", sa.BigInteger(), nullable=True),
        sa.Column("importance_text", sa.String(length=50), nullable=True),
        sa.Column("importance_colour", sa.String(length=7), nullable=True),
        sa.Column("level_scheme_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("level_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("cumulative_order_amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_order_count", sa.Integer(), nullable=False),
        sa.Column("points_balance", sa.BigInteger(), nullable=False),
        sa.Column("owner_user_id", sa.String(length=64), nullable=True),
        sa.Column("owner_work_number", sa.String(length=40), nullable=True),
        sa.Column("owner_assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("nickname", sa.String(length=100), nullable=True),
        sa.Column("gender", sa.String(length=10), nullable=False),
        sa.Column("backup_mobile", sa.String(length=20), nullable=True),
        sa.Column("id_number_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("id_number_masked", sa.String(length=24), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("population_group", sa.String(length=10), nullable=True),
        sa.Column("occupation", sa.String(length=100), nullable=True),
        sa.Column("income_level", sa.String(length=50), nullable=True),
        sa.Column("qq", sa.String(length=20), nullable=True),
        sa.Column("wechat_id", sa.String(length=64), nullable=True),
        sa.Column("other_phone", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("usual_address", sa.String(length=300), nullable=True),
        sa.Column("home_address", sa.String(length=300), nullable=True),
        sa.Column("office_address", sa.String(length=300), nullable=True),
        sa.Column("province", sa.String(length=50), nullable=True),
        sa.Column("city", sa.String(length=50), nullable=True),
        sa.Column("preferences", sa.Text(), nullable=True),
        sa.Column("medical_insurance", sa.String(length=200), nullable=True),
        sa.CheckConstraint("points_balance >= 0", name="ck_patients_points_not_negative"),
        sa.ForeignKeyConstraint(
            ["level_id"],
            ["member_levels.id"],
        ),
        sa.ForeignKeyConstraint(
            ["level_scheme_id"],
            ["level_schemes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mobile"),
        sa.UniqueConstraint("patient_number"),
    )
    op.create_index("ix_patients_name", "patients", ["name"], unique=False)
    op.create_index("ix_patients_owner_work_number", "patients", ["owner_work_number", "id"], unique=False)
    op.create_table(
        "family_members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("relation", sa.String(length=20), nullable=False),
        sa.Column("mobile", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("nickname", sa.String(length=100), nullable=True),
        sa.Column("gender", sa.String(length=10), nullable=False),
        sa.Column("backup_mobile", sa.String(length=20), nullable=True),
        sa.Column("id_number_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("id_number_masked", sa.String(length=24), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("population_group", sa.String(length=10), nullable=True),
        sa.Column("occupation", sa.String(length=100), nullable=True),
        sa.Column("income_level", sa.String(length=50), nullable=True),
        sa.Column("qq", sa.String(length=20), nullable=True),
        sa.Column("wechat_id", sa.String(length=64), nullable=True),
        sa.Column("other_phone", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("usual_address", sa.String(length=300), nullable=True),
        sa.Column("home_address", sa.String(length=300), nullable=True),
        sa.Column("office_address", sa.String(length=300), nullable=True),
        sa.Column("province", sa.String(length=50), nullable=True),
        sa.Column("city", sa.String(length=50), nullable=True),
        sa.Column("preferences", sa.Text(), nullable=True),
        sa.Column("medical_insurance", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_family_members_patient_id", "family_members", ["patient_id", "id"], unique=False)
    op.create_table(
        "fund_accounts",
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance_fen >= 0", name="ck_fund_accounts_balance_not_negative"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    op.create_table(
        "fund_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("delta_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        sa.Column("refund_id", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_fund_ledger_patient", "fund_ledger", ["patient_id", "id"], unique=False)
    op.create_table(
        "fund_payments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("failure_reason", sa.String(length=40), nullable=True),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=True),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("refunded_fen <= amount_fen", name="ck_fund_payments_refund_within_amount"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_fund_payments_patient", "fund_payments", ["patient_id", "id"], unique=False)
    op.create_table(
        "member_cards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_type_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("card_number", sa.String(length=40), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_type_id"],
            ["card_types.id"],
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("card_number"),
    )
    op.create_index("ix_member_cards_patient", "member_cards", ["patient_id", "id"], unique=False)
    op.create_table(
        "order_completions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("points_earned", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
    )
    op.create_index("ix_order_completions_completed_at", "order_completions", ["completed_at"], unique=False)
    op.create_index("ix_order_completions_patient", "order_completions", ["patient_id", "completed_at"], unique=False)
    op.create_table(
        "ownership_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_user_id", sa.String(length=64), nullable=True),
        sa.Column("from_work_number", sa.String(length=40), nullable=True),
        sa.Column("to_user_id", sa.String(length=64), nullable=False),
        sa.Column("to_work_number", sa.String(length=40), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ownership_changes_patient", "ownership_changes", ["patient_id", "id"], unique=False)
    op.create_table(
        "patient_access_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("work_number", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_patient_access_log_patient", "patient_access_log", ["patient_id", "id"], unique=False)
    op.create_table(
        "patient_conditions",
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("condition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["condition_id"],
            ["conditions.id"],
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("patient_id", "condition_id"),
    )
    op.create_table(
        "points_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("redemption_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_points_ledger_patient", "points_ledger", ["patient_id", "id"], unique=False)
    op.create_table(
        "redemptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("points_spent", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["reward_products.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_redemptions_patient", "redemptions", ["patient_id", "id"], unique=False)
    op.create_table(
        "family_member_conditions",
        sa.Column("family_member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("condition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["condition_id"],
            ["conditions.id"],
        ),
        sa.ForeignKeyConstraint(["family_member_id"], ["family_members.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("family_member_id", "condition_id"),
    )
    op.create_table(
        "fund_refunds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["fund_payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_fund_refunds_payment", "fund_refunds", ["payment_id", "id"], unique=False)
    op.create_table(
        "medical_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("family_member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("visit_date", sa.Date(), nullable=False),
        sa.Column("person_name", sa.String(length=100), nullable=False),
        sa.Column("symptoms", sa.Text(), nullable=False),
        sa.Column("diagnosis", sa.Text(), nullable=False),
        sa.Column("treatment_plan", sa.Text(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("treatment_schedule", sa.Text(), nullable=False),
        sa.Column("next_visit_on", sa.Date(), nullable=True),
        sa.Column("visit_kind", sa.String(length=10), nullable=False),
        sa.Column("doctor_name", sa.String(length=100), nullable=True),
        sa.Column("clinic_name", sa.String(length=100), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["family_member_id"], ["family_members.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_medical_records_patient_visit", "medical_records", ["patient_id", "visit_date", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_medical_records_patient_visit", table_name="medical_records")
    op.drop_table("medical_records")
    op.drop_index("ix_fund_refunds_payment", table_name="fund_refunds")
    op.drop_table("fund_refunds")
    op.drop_table("family_member_conditions")
    op.drop_index("ix_redemptions_patient", table_name="redemptions")
    op.drop_table("redemptions")
    op.drop_index("ix_points_ledger_patient", table_name="points_ledger")
    op.drop_table("points_ledger")
    op.drop_table("patient_conditions")
    op.drop_index("ix_patient_access_log_patient", table_name="patient_access_log")
    op.drop_table("patient_access_log")
    op.drop_index("ix_ownership_changes_patient", table_name="ownership_changes")
    op.drop_table("ownership_changes")
    op.drop_index("ix_order_completions_patient", table_name="order_completions")
    op.drop_index("ix_order_completions_completed_at", table_name="order_completions")
    op.drop_table("order_completions")
    op.drop_index("ix_member_cards_patient", table_name="member_cards")
    op.drop_table("member_cards")
    op.drop_index("ix_fund_payments_patient", table_name="fund_payments")
    op.drop_table("fund_payments")
    op.drop_index("ix_fund_ledger_patient", table_name="fund_ledger")
    op.drop_table("fund_ledger")
    op.drop_table("fund_accounts")
    op.drop_index("ix_family_members_patient_id", table_name="family_members")
    op.drop_table("family_members")
    op.drop_index("ix_patients_owner_work_number", table_name="patients")
    op.drop_index("ix_patients_name", table_name="patients")
    op.drop_table("patients")
    op.drop_table("member_levels")
    op.drop_index("ix_agent_groups_group_id", table_name="agent_groups")
    op.drop_table("agent_groups")
    op.drop_table("reward_products")
    op.drop_table("level_schemes")
    op.drop_table("first_contacts")
    op.drop_table("conditions")
    op.drop_table("card_types")
    op.drop_table("agents")
