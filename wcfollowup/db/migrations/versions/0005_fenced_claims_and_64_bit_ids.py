"""fenced claims (steps.claimed_by, steps.sending_cap); WooCommerce ids in 64-bit columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 10:45:00

``steps.claimed_by`` holds the owner token of the daemon run that claimed a step; every later
write of that step names it, so a daemon that lost its lock cannot finish a step another daemon
now owns. ``steps.sending_cap`` lets a frequency cap count the messages in flight.

WooCommerce ids are BIGINT UNSIGNED. On PostgreSQL the order and coupon id columns were int4,
and an order id from 2^31 failed every poll; they become int8 here (a one-time rewrite of those
tables, under an exclusive lock, at the first start of this version). SQLite's INTEGER is
already 64-bit, so only the new columns are added there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WOO_ID_COLUMNS = (
    ("enrollments", "order_id", False),
    ("steps", "order_id", False),
    ("messages", "order_id", False),
    ("coupons", "order_id", False),
    ("coupons", "store_coupon_id", True),
    ("coupons", "redeemed_order_id", True),
    ("survey_responses", "order_id", False),
)


def upgrade() -> None:
    op.add_column("steps", sa.Column("claimed_by", sa.String(length=32), nullable=True))
    op.add_column("steps", sa.Column("sending_cap", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for table, column, nullable in WOO_ID_COLUMNS:
            op.alter_column(
                table,
                column,
                type_=sa.BigInteger(),
                existing_type=sa.Integer(),
                existing_nullable=nullable,
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column, nullable in WOO_ID_COLUMNS:
            op.alter_column(
                table,
                column,
                type_=sa.Integer(),
                existing_type=sa.BigInteger(),
                existing_nullable=nullable,
            )
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("sending_cap")
        batch.drop_column("claimed_by")
