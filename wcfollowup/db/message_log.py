"""The owner-facing message log (``messages``): every line is written here, and read back here.

A step's outcome and its log line are one write (``finish_step``), so the log can never say
"sent" for a step that is still pending, or miss a cancellation. The outbox, cancellation and
the small books (coupons, surveys) all log through ``log_line``, with a row from
``step_rows``: a step joined with its enrolment's order number and address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from wcfollowup.common.redact import redact
from wcfollowup.db.connection import StateBase
from wcfollowup.db.schema import enrollments, messages, steps

# The states a step ends in; ``finish_step`` moves it to one and logs it.
FINAL_STATES = ("sent", "failed", "skipped", "cancelled", "uncertain")


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    at: datetime
    order_id: int
    order_number: str
    recipient: str
    sequence: str
    step: str
    status: str
    provider_message_id: str | None
    reason: str

    @classmethod
    def from_row(cls, r: Any) -> MessageRow:
        """From a ``messages`` row read with ``.mappings()``."""
        return cls(
            r["id"],
            r["at"],
            r["order_id"],
            r["order_number"],
            r["recipient"],
            r["sequence"],
            r["step"],
            r["status"],
            r["provider_message_id"],
            r["reason"],
        )


def step_rows(
    conn: Connection, where: Any, limit: int | None = None, skip_locked: bool = False
) -> Sequence[Any]:
    """Steps matching ``where`` with their order number and email, as log lines need them."""
    query = (
        select(
            steps.c.id,
            steps.c.store_id,
            steps.c.order_id,
            steps.c.sequence,
            steps.c.step,
            steps.c.kind,
            steps.c.due_at,
            steps.c.attempts,
            enrollments.c.order_number,
            enrollments.c.email,
        )
        .join(enrollments, enrollments.c.id == steps.c.enrollment_id)
        .where(where)
        .order_by(steps.c.due_at, steps.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    if skip_locked:
        query = query.with_for_update(of=steps, skip_locked=True)
    return conn.execute(query).all()


def finish_step(
    conn: Connection,
    row: Any,
    status: str,
    now: datetime,
    *,
    recipient: str | None,
    message_id: str | None,
    reason: str,
    fence: Any,
    cap_key: str | None = None,
) -> bool:
    """Move the step to ``status`` and log it, if it still matches ``fence``; else False.

    The fence is checked by the UPDATE itself, so a concurrent change (a claim turning into
    ``sending``, another daemon's recovery) can never be overwritten by a stale decision.
    """
    changed = conn.execute(
        update(steps)
        .where(steps.c.id == row.id, fence)
        .values(state=status, sending_cap=None, updated_at=now)
    ).rowcount
    if not changed:
        return False
    log_line(
        conn,
        row,
        status,
        now,
        recipient=recipient,
        message_id=message_id,
        reason=reason,
        cap_key=cap_key,
    )
    return True


def log_line(
    conn: Connection,
    row: Any,
    status: str,
    now: datetime,
    *,
    recipient: str | None = None,
    message_id: str | None = None,
    reason: str = "",
    cap_key: str | None = None,
    order_id: int | None = None,
    order_number: str | None = None,
) -> None:
    """A log line about a step; the order may be another one (a coupon's redemption)."""
    conn.execute(
        insert(messages).values(
            at=now,
            step_id=row.id,
            store_id=row.store_id,
            order_id=order_id if order_id is not None else row.order_id,
            order_number=order_number if order_number is not None else row.order_number,
            recipient=recipient if recipient is not None else row.email,
            sequence=row.sequence,
            step=row.step,
            status=status,
            provider_message_id=message_id,
            reason=redact(reason),  # an error may echo a request: no secret is stored
            cap_key=cap_key,
        )
    )


def count_sent(conn: Connection, recipient: str, cap_key: str, since: datetime | None) -> int:
    """Messages sent to this address under this cap key (since a time, or ever)."""
    query = (
        select(func.count())
        .select_from(messages)
        .where(
            func.lower(messages.c.recipient) == recipient.strip().lower(),
            messages.c.cap_key == cap_key,
            messages.c.status == "sent",
        )
    )
    if since is not None:
        query = query.where(messages.c.at >= since)
    return int(conn.execute(query).scalar() or 0)


class MessageLog(StateBase):
    """``StateStore``'s reads of the log and of the queue's size."""

    def step_row(self, conn: Connection, step_id: int) -> Any | None:
        """A step with its order number and email, as log lines need it."""
        rows = step_rows(conn, steps.c.id == step_id)
        return rows[0] if rows else None

    def messages(
        self,
        *,
        order_id: int | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[MessageRow]:
        query = select(messages).order_by(messages.c.at, messages.c.id)
        if order_id is not None:
            query = query.where(messages.c.order_id == order_id)
        if status is not None:
            query = query.where(messages.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [MessageRow.from_row(r) for r in rows]

    def sent_count(self, recipient: str, cap_key: str, since: datetime | None) -> int:
        """Messages sent to this address under this cap key (since a time, or ever)."""
        with self._tx() as conn:
            return count_sent(conn, recipient, cap_key, since)

    def step_states(self) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(select(steps.c.state, func.count()).group_by(steps.c.state)).all()
        return {state: int(count) for state, count in rows}

    def due_count(self, now: datetime) -> int:
        """Pending steps already due: the dispatch queue's depth."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(steps)
                    .where(steps.c.state == "pending", steps.c.due_at <= now)
                ).scalar()
                or 0
            )
