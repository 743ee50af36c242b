"""the customer index keyed on the customer alone

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 08:40:00

Every enrolment adds an entry to the customer index, in random order (customers do not buy
in alphabetical order), and that was the costliest part of storing a backlog. Keyed on the
customer alone its entries are half as long; a customer has few enrolments, so the lookups by
customer (once per customer, unsubscribe, erase) filter the rest from those few rows.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_enrollments_customer", table_name="enrollments")
    op.create_index("ix_enrollments_customer_key", "enrollments", ["customer_key"])


def downgrade() -> None:
    op.drop_index("ix_enrollments_customer_key", table_name="enrollments")
    op.create_index(
        "ix_enrollments_customer", "enrollments", ["store_id", "sequence", "customer_key"]
    )
