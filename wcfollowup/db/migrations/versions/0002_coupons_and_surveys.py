"""coupons and survey responses

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("discount_type", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.String(length=32), nullable=False),
        sa.Column("expires_local", sa.String(length=32), nullable=True),
        sa.Column("store_coupon_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("redeemed_order_id", sa.Integer(), nullable=True),
        sa.Column("redeemed_order_number", sa.String(length=64), nullable=True),
        sa.Column("redeemed_amount", sa.String(length=32), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(), nullable=True),
        sa.Column("planned_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["step_id"], ["steps.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("step_id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_coupons_order", "coupons", ["store_id", "order_id"])
    op.create_table(
        "survey_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=False),
        sa.Column("commented_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["step_id"], ["steps.id"]),
        sa.ForeignKeyConstraint(["store_id"], ["stores.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("step_id"),
    )
    op.create_index("ix_survey_order", "survey_responses", ["store_id", "order_id"])


def downgrade() -> None:
    op.drop_index("ix_survey_order", table_name="survey_responses")
    op.drop_table("survey_responses")
    op.drop_index("ix_coupons_order", table_name="coupons")
    op.drop_table("coupons")
