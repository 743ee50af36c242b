"""Cancelling what still waits: an order's open steps, or everything for an address that
unsubscribed (``unsubscribes``).

Each cancellation is a fenced move with its log line (``finish_step``), so a step a worker has
already turned ``sending`` is never overwritten by a late cancellation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, insert, select

from wcfollowup.db.connection import StateBase
from wcfollowup.db.message_log import finish_step, step_rows
from wcfollowup.db.privacy import suppression_keys
from wcfollowup.db.schema import enrollments, steps, unsubscribes

# Step states in which the step will still act on its own.
OPEN_STATES = ("waiting", "pending", "claimed")


class Cancellation(StateBase):
    """``StateStore``'s part that cancels open steps and keeps the unsubscribe list."""

    def cancel_open_steps(self, store_id: int, order_id: int, reason: str, now: datetime) -> int:
        """Cancel what is still waiting for an order, logging each cancellation."""
        with self._tx() as conn:
            rows = step_rows(
                conn,
                and_(
                    steps.c.store_id == store_id,
                    steps.c.order_id == order_id,
                    steps.c.state.in_(OPEN_STATES),
                ),
            )
            cancelled = 0
            for row in rows:
                cancelled += finish_step(
                    conn,
                    row,
                    "cancelled",
                    now,
                    recipient=None,
                    message_id=None,
                    reason=reason,
                    fence=steps.c.state.in_(OPEN_STATES),
                )
            return cancelled

    def unsubscribe(self, email: str, source: str, now: datetime) -> int:
        """Record an unsubscribe and cancel everything still waiting for that address."""
        address = email.strip().lower()
        with self._tx() as conn:
            known = conn.execute(
                select(unsubscribes.c.email).where(
                    unsubscribes.c.email.in_(suppression_keys(address))
                )
            ).first()
            if known is None:
                conn.execute(insert(unsubscribes).values(email=address, at=now, source=source))
            rows = step_rows(
                conn,
                and_(enrollments.c.customer_key == address, steps.c.state.in_(OPEN_STATES)),
            )
            cancelled = 0
            for row in rows:
                cancelled += finish_step(
                    conn,
                    row,
                    "cancelled",
                    now,
                    recipient=None,
                    message_id=None,
                    reason="the recipient unsubscribed",
                    fence=steps.c.state.in_(OPEN_STATES),
                )
            return cancelled

    def is_unsubscribed(self, email: str) -> bool:
        with self._tx() as conn:
            # A forgotten customer is kept only as a hash of the address: match either.
            row = conn.execute(
                select(unsubscribes.c.email).where(
                    unsubscribes.c.email.in_(suppression_keys(email))
                )
            ).first()
        return row is not None
