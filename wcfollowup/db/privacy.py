"""Erasure on request (``wcfollowup forget``) and retention: personal data goes, counts stay.

What is personal here: email addresses (enrollments, the message log's ``recipient``, survey
answers, coupons), survey comments, and log ``reason`` texts that may quote an address or a
comment. What stays: order ids and numbers (the store's own references, not a person by
themselves), statuses, times, scores and coupon amounts, so ``stats`` still counts what was
sent, failed, answered and redeemed.

A forgotten customer must also stay unsubscribed, without us keeping the address: the
``unsubscribes`` row holds a one-way hash of it (:func:`address_hash`) instead. The hash is
unsalted on purpose (the check must work for any later order with the same address); it is a
suppression key, never shown. Every query here touches only tables in ``db/schema.py`` and each
public function is one transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from wcfollowup.db.once import refill_once_customers
from wcfollowup.db.schema import (
    coupons,
    enrollments,
    messages,
    once_customers,
    steps,
    survey_responses,
    unsubscribes,
)

if TYPE_CHECKING:
    from wcfollowup.config import Config

HASH_PREFIX = "sha256:"
ERASED_REASON = "personal data erased on request"
FORGET_CANCEL_REASON = "cancelled: the customer asked to be forgotten"
FORGET_SOURCE = "forget (erased on request)"
RETENTION_CANCEL_REASON = (
    "cancelled: it waited longer than the retention period without becoming due, so its "
    "personal data was removed"
)
# Steps that may still act; claimed/sending ones finish, then meet the hashed unsubscribe.
OPEN_STATES = ("waiting", "pending", "claimed")
LIVE_STATES = (*OPEN_STATES, "sending")

_EMAIL = re.compile(r"[^\s@<>()\[\]:;,'\"]+@[^\s@<>()\[\]:;,'\"]+\.[A-Za-z]{2,}")


def normalise(email: str) -> str:
    return email.strip().lower()


def address_hash(email: str) -> str:
    """The suppression key that replaces a forgotten address in ``unsubscribes``."""
    return HASH_PREFIX + hashlib.sha256(normalise(email).encode("utf-8")).hexdigest()


def suppression_keys(email: str) -> tuple[str, str]:
    """The ``unsubscribes.email`` values that mean "do not email this address".

    ``StateStore.is_unsubscribed`` should match ``unsubscribes.c.email.in_(suppression_keys(e))``
    so that a forgotten customer stays unsubscribed.
    """
    return normalise(email), address_hash(email)


def scrub_reason(status: str, reason: str) -> str:
    """A log reason without the personal parts: comments go whole, addresses are masked."""
    if status == "commented":
        return ""
    return _EMAIL.sub("[erased]", reason)


@dataclass(frozen=True, slots=True)
class Erasure:
    """What ``forget`` found (before) or erased (after): counts only, never the data."""

    enrollments: int = 0
    steps_cancelled: int = 0
    messages: int = 0
    survey_answers: int = 0
    survey_comments: int = 0
    coupons: int = 0
    unsubscribed: bool = False

    @property
    def found_anything(self) -> bool:
        return any((self.enrollments, self.messages, self.survey_answers, self.coupons))

    def lines(self) -> list[str]:
        return [
            f"  enrollments (orders followed up): {self.enrollments}",
            f"  follow-ups not sent yet, to cancel: {self.steps_cancelled}",
            f"  message log rows: {self.messages}",
            f"  survey answers: {self.survey_answers} (comments: {self.survey_comments})",
            f"  coupons issued: {self.coupons}",
        ]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Purge:
    """Rows whose personal data retention removed; counts only (that is what is logged)."""

    enrollments: int = 0
    messages: int = 0
    survey_answers: int = 0
    coupons: int = 0
    steps_cancelled: int = 0  # never became due within the retention period

    @property
    def total(self) -> int:
        return (
            self.enrollments
            + self.messages
            + self.survey_answers
            + self.coupons
            + self.steps_cancelled
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# --- forget ------------------------------------------------------------------------------------


def preview_forget(engine: Engine, email: str) -> Erasure:
    """Count what :func:`forget` would erase, changing nothing (for the confirmation)."""
    with engine.connect() as conn:
        return _forget(conn, normalise(email), None)


def forget(engine: Engine, email: str, now: datetime) -> Erasure:
    """Erase one customer's personal data and keep them unsubscribed, in one transaction."""
    with engine.begin() as conn:
        return _forget(conn, normalise(email), now)


def _forget(conn: Connection, address: str, now: datetime | None) -> Erasure:
    apply = now is not None
    enrolled = [
        int(r[0])
        for r in conn.execute(
            select(enrollments.c.id).where(
                or_(
                    enrollments.c.customer_key == address,
                    func.lower(enrollments.c.email) == address,
                )
            )
        )
    ]
    step_ids = _ids(conn, select(steps.c.id).where(steps.c.enrollment_id.in_(enrolled)))
    open_steps = conn.execute(
        select(
            steps.c.id,
            steps.c.store_id,
            steps.c.order_id,
            steps.c.sequence,
            steps.c.step,
            enrollments.c.order_number,
        )
        .join(enrollments, enrollments.c.id == steps.c.enrollment_id)
        .where(steps.c.enrollment_id.in_(enrolled), steps.c.state.in_(OPEN_STATES))
    ).all()
    mine_messages = or_(
        func.lower(messages.c.recipient) == address, messages.c.step_id.in_(step_ids)
    )
    mine_answers = or_(
        func.lower(survey_responses.c.email) == address, survey_responses.c.step_id.in_(step_ids)
    )
    mine_coupons = or_(func.lower(coupons.c.email) == address, coupons.c.step_id.in_(step_ids))
    message_count = _count(conn, messages, mine_messages)
    answers = _count(conn, survey_responses, mine_answers)
    comments = _count(
        conn, survey_responses, and_(mine_answers, survey_responses.c.comment.is_not(None))
    )
    coupon_count = _count(conn, coupons, mine_coupons)
    if apply:
        assert now is not None
        for row in open_steps:
            conn.execute(
                update(steps).where(steps.c.id == row.id).values(state="cancelled", updated_at=now)
            )
            _log_anonymous_cancel(conn, row, now, FORGET_CANCEL_REASON)
        conn.execute(
            update(messages)
            .where(mine_messages, messages.c.reason != FORGET_CANCEL_REASON)
            .values(recipient="", reason=ERASED_REASON)
        )
        conn.execute(update(survey_responses).where(mine_answers).values(email="", comment=None))
        conn.execute(update(coupons).where(mine_coupons).values(email=""))
        _forget_once_customers(conn, enrolled)
        conn.execute(
            update(enrollments)
            .where(enrollments.c.id.in_(enrolled))
            .values(email="", customer_key="")
        )
        _suppress_by_hash(conn, address, now)
    return Erasure(
        enrollments=len(enrolled),
        steps_cancelled=len(open_steps),
        messages=message_count,
        survey_answers=answers,
        survey_comments=comments,
        coupons=coupon_count,
        unsubscribed=apply,
    )


def _forget_once_customers(conn: Connection, erased: Sequence[int]) -> None:
    """Before one customer's enrolments lose their address: drop it from the "once per
    customer" memory, which is derived from them (the address must not outlive its erasure)."""
    keys = {
        str(r[0])
        for r in conn.execute(
            select(enrollments.c.customer_key).where(
                enrollments.c.id.in_(erased), enrollments.c.customer_key != ""
            )
        )
    }
    if keys:
        conn.execute(delete(once_customers).where(once_customers.c.customer_key.in_(keys)))


def _refill_once_customers(conn: Connection, erased: Sequence[int]) -> None:
    """After a purge blanked ``erased`` enrolments: rebuild the "once per customer" memory of
    each sequence it touched from the enrolments that still name a customer."""
    touched: set[tuple[int, str]] = set()
    for chunk in _chunks(sorted(erased)):
        touched.update(
            (int(r[0]), str(r[1]))
            for r in conn.execute(
                select(enrollments.c.store_id, enrollments.c.sequence)
                .where(enrollments.c.id.in_(chunk))
                .distinct()
            )
        )
    remembered = {
        (int(r[0]), str(r[1]))
        for r in conn.execute(
            select(once_customers.c.store_id, once_customers.c.sequence).distinct()
        )
    }
    for store_id, sequence in sorted(touched & remembered):
        refill_once_customers(conn, store_id, sequence)


def _chunks(values: Sequence[Any], size: int = 5000) -> list[Sequence[Any]]:
    """Short enough lists for an ``IN``: SQLite takes at most 32,766 parameters."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def _suppress_by_hash(conn: Connection, address: str, now: datetime) -> None:
    """Replace the plain address in ``unsubscribes`` (if any) by its hash; add one if absent."""
    hashed = address_hash(address)
    conn.execute(delete(unsubscribes).where(func.lower(unsubscribes.c.email) == address))
    known = conn.execute(select(unsubscribes.c.email).where(unsubscribes.c.email == hashed)).first()
    if known is None:
        conn.execute(insert(unsubscribes).values(email=hashed, at=now, source=FORGET_SOURCE))


# --- retention -----------------------------------------------------------------------------------


def purge_older_than(engine: Engine, cutoff: datetime, now: datetime) -> Purge:
    """Remove personal data from follow-ups older than ``cutoff``; one transaction.

    What an owner who sets ``retention: 730d`` expects: two years after an order was enrolled,
    nothing personal about it is left unless it still has something to do *now*. So an
    enrollment enrolled before the cutoff is purged when none of its steps is

    - due, claimed or being sent (``pending`` with a due time that has come, ``claimed``,
      ``sending``): it is about to go out, and is purged once it has;
    - changed since the cutoff (sent, answered, skipped, rescheduled recently).

    Everything else counts as old: finished steps, and steps that have been waiting longer than
    the retention period without ever becoming due (a delivery that never came for a step
    after ``{delivered: 3d}`` without ``assume_after``, or a step scheduled further out than
    the retention). Such waiting steps are cancelled, with a line in the message log, before
    their enrollment loses its address: no email ever goes to an erased address, and ``stats``
    counts them as cancelled.

    The enrollment's log rows, survey answer and coupon go with it. Unsubscribes stay: they are
    what keeps the customer from being emailed again.
    """
    with engine.begin() as conn:
        recent = select(steps.c.enrollment_id).where(
            or_(
                steps.c.state.in_(("claimed", "sending")),
                and_(steps.c.state == "pending", steps.c.due_at <= now),
                steps.c.updated_at >= cutoff,
            )
        )
        expired = select(enrollments.c.id).where(
            enrollments.c.enrolled_at < cutoff, enrollments.c.id.not_in(recent)
        )
        old = _ids(
            conn,
            expired.where(or_(enrollments.c.email != "", enrollments.c.customer_key != "")),
        )
        old_steps = select(steps.c.id).where(steps.c.enrollment_id.in_(expired))
        enrolled = sum(
            conn.execute(
                update(enrollments)
                .where(enrollments.c.id.in_(chunk))
                .values(email="", customer_key="")
            ).rowcount
            for chunk in _chunks(old)
        )
        if old:
            _refill_once_customers(conn, old)
        logged = _scrub_messages(
            conn,
            and_(
                messages.c.at < cutoff,
                or_(messages.c.step_id.is_(None), messages.c.step_id.in_(old_steps)),
            ),
        )
        answered = conn.execute(
            update(survey_responses)
            .where(
                survey_responses.c.answered_at < cutoff,
                survey_responses.c.step_id.in_(old_steps),
                or_(survey_responses.c.email != "", survey_responses.c.comment.is_not(None)),
            )
            .values(email="", comment=None)
        ).rowcount
        issued = conn.execute(
            update(coupons)
            .where(
                coupons.c.planned_at < cutoff,
                coupons.c.step_id.in_(old_steps),
                coupons.c.email != "",
            )
            .values(email="")
        ).rowcount
        # Last: cancelling touches the steps, and ``expired`` is read from them.
        cancelled = _cancel_never_due(conn, expired, now)
    return Purge(
        enrollments=int(enrolled),
        messages=logged,
        survey_answers=int(answered),
        coupons=int(issued),
        steps_cancelled=cancelled,
    )


def _cancel_never_due(conn: Connection, expired: Any, now: datetime) -> int:
    """Cancel the still-open steps of expired enrollments (they never became due), each with
    a log line that names no one."""
    waiting = conn.execute(
        select(
            steps.c.id,
            steps.c.store_id,
            steps.c.order_id,
            steps.c.sequence,
            steps.c.step,
            enrollments.c.order_number,
        )
        .join(enrollments, enrollments.c.id == steps.c.enrollment_id)
        .where(steps.c.enrollment_id.in_(expired), steps.c.state.in_(("waiting", "pending")))
    ).all()
    for row in waiting:
        changed = conn.execute(
            update(steps)
            .where(steps.c.id == row.id, steps.c.state.in_(("waiting", "pending")))
            .values(state="cancelled", updated_at=now)
        ).rowcount
        if changed:
            _log_anonymous_cancel(conn, row, now, RETENTION_CANCEL_REASON)
    return len(waiting)


def _scrub_messages(conn: Connection, where: Any) -> int:
    """Blank recipients and scrub reasons row by row (the scrub is Python, not SQL)."""
    rows = conn.execute(
        select(messages.c.id, messages.c.status, messages.c.recipient, messages.c.reason).where(
            where
        )
    ).all()
    changed = 0
    for row in rows:
        reason = scrub_reason(row.status, row.reason or "")
        if row.recipient == "" and reason == (row.reason or ""):
            continue
        conn.execute(
            update(messages).where(messages.c.id == row.id).values(recipient="", reason=reason)
        )
        changed += 1
    return changed


def steps_beyond_retention(config: Config) -> list[str]:
    """Steps that come later than ``privacy.retention``, for ``wcfollowup check``: retention
    would cancel them (see :func:`purge_older_than`) before they are ever due."""
    retention = config.privacy.retention
    if retention is None:
        return []
    return [
        f"step '{step.name}' of sequence '{sequence.name}' comes {_days(step.after)} after "
        f"{'delivery' if step.anchor == 'delivered' else 'completion'}, later than "
        f"privacy.retention ({_days(retention)}): the daily retention job would cancel it "
        "before it is due; make it sooner or keep personal data longer"
        for sequence in config.sequences
        for step in sequence.steps
        if step.after > retention
    ]


def _days(delay: timedelta) -> str:
    return f"{delay.days}d" if delay.days else f"{int(delay.total_seconds() // 3600)}h"


# --- helpers -------------------------------------------------------------------------------------


def _ids(conn: Connection, query: Any) -> list[int]:
    return [int(r[0]) for r in conn.execute(query)]


def _count(conn: Connection, table: Any, where: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar() or 0)


def describe_purge(purge: Purge) -> str:
    parts: Sequence[str] = [f"{count} {name}" for name, count in purge.as_dict().items() if count]
    return ", ".join(parts) if parts else "nothing"


def _log_anonymous_cancel(conn: Connection, row: Any, now: datetime, reason: str) -> None:
    """The log line of a step cancelled for privacy: no recipient, so it names nobody."""
    conn.execute(
        insert(messages).values(
            at=now,
            step_id=row.id,
            store_id=row.store_id,
            order_id=row.order_id,
            order_number=row.order_number,
            recipient="",
            sequence=row.sequence,
            step=row.step,
            status="cancelled",
            reason=reason,
        )
    )
