"""The "once per customer" memory (``once_customers``), derived from the enrolments.

Both the enrolment path and the privacy tools rebuild it the same way: from the enrolments that
still name a customer.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from wcfollowup.db.schema import enrollments, once_customers


def refill_once_customers(conn: Connection, store_id: int, sequence: str) -> None:
    """Make ``sequence``'s memory of customers exactly those its enrolments name."""
    conn.execute(
        delete(once_customers).where(
            once_customers.c.store_id == store_id, once_customers.c.sequence == sequence
        )
    )
    conn.execute(
        insert(once_customers).from_select(
            ["store_id", "sequence", "customer_key"],
            select(enrollments.c.store_id, enrollments.c.sequence, enrollments.c.customer_key)
            .where(
                enrollments.c.store_id == store_id,
                enrollments.c.sequence == sequence,
                enrollments.c.customer_key != "",
            )
            .distinct(),
        )
    )
