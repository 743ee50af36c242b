"""The outbox's dispatch side: claiming due steps, the move to ``sending``, hand-backs,
outcomes, and recovery after a crash.

Claims are fenced. Each ``StateStore`` (one per daemon run) has a random owner token; a claim
writes it into ``steps.claimed_by``, and every later write of the step by the dispatcher
(``mark_sending``, ``release``, ``finish``) names it in its ``WHERE`` and says whether it
matched. A daemon whose lock was lost while it worked can therefore not send, hand back or
finish a step that a new daemon's recovery has taken away from it: it learns so and lets go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, text, update

from wcfollowup.db.connection import StateBase
from wcfollowup.db.message_log import count_sent, finish_step, step_rows
from wcfollowup.db.schema import coupons, steps

# The states in which a step belongs to the daemon run that claimed it.
HELD_STATES = ("claimed", "sending")

# The advisory lock class that serialises frequency-cap decisions on PostgreSQL.
CAP_LOCK_CLASS = 0x77636663  # "wcfc"


@dataclass(frozen=True, slots=True)
class CapHold:
    """A message's recipient and cap key, with its step's frequency cap (``max`` sent since
    ``since``) if it has one, to decide at the moment the step turns ``sending``.

    Every customer message counts against the caps of others sharing its key, capped or not,
    so every one is marked in flight with its key (``max`` None: nothing to decide).
    """

    recipient: str
    key: str
    max: int | None = None
    since: datetime | None = None

    def holder(self) -> str:
        """What an in-flight step keeps in ``steps.sending_cap``: a hash, not the address."""
        raw = f"{self.recipient.strip().lower()}\n{self.key}".encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Clearance:
    """``mark_sending``'s answer: ``ours`` is False when the step is no longer this daemon's
    (taken over, or cancelled); ``capped`` counts the messages sent or in flight when the cap
    is already full (then the step stays claimed, for the caller to skip)."""

    ours: bool
    capped: int | None = None

    @property
    def go(self) -> bool:
        return self.ours and self.capped is None


@dataclass(frozen=True, slots=True)
class ClaimedStep:
    id: int
    store_id: int
    order_id: int
    order_number: str
    sequence: str
    step: str
    kind: str
    due_at: datetime
    attempts: int
    email: str = ""


class Outbox(StateBase):
    """``StateStore``'s part that the dispatcher works through."""

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedStep]:
        """Mark due pending steps ``claimed`` by this run: ours to act on, nothing sent yet.

        First makes sure this daemon still holds its lock (``LockLost`` otherwise): a daemon
        that lost it must not take on anything new.
        """
        self._lock.verify()
        with self._tx() as conn:
            rows = step_rows(
                conn,
                and_(steps.c.state == "pending", steps.c.due_at <= now),
                limit=limit,
                skip_locked=self.dialect == "postgresql",
            )
            if rows:
                ids = [r.id for r in rows]
                claimed = conn.execute(
                    update(steps)
                    .where(steps.c.id.in_(ids), steps.c.state == "pending")
                    .values(
                        state="claimed",
                        claimed_by=self.owner,
                        attempts=steps.c.attempts + 1,
                        updated_at=now,
                    )
                ).rowcount
                if claimed != len(rows):  # something else moved one meanwhile (SQLite)
                    ours = set(
                        conn.execute(
                            select(steps.c.id).where(steps.c.id.in_(ids), self._held(("claimed",)))
                        ).scalars()
                    )
                    rows = [r for r in rows if r.id in ours]
        return [
            ClaimedStep(
                r.id,
                r.store_id,
                r.order_id,
                r.order_number,
                r.sequence,
                r.step,
                r.kind,
                r.due_at,
                r.attempts + 1,
                r.email,
            )
            for r in rows
        ]

    def next_due(self) -> datetime | None:
        """When the earliest pending step falls due (None when nothing is scheduled)."""
        with self._tx() as conn:
            value = conn.execute(
                select(func.min(steps.c.due_at)).where(steps.c.state == "pending")
            ).scalar()
        return value if isinstance(value, datetime) else None

    def _held(self, states: Sequence[str] = HELD_STATES) -> Any:
        """The fence: the step is in one of ``states`` and claimed by this run."""
        return and_(steps.c.claimed_by == self.owner, steps.c.state.in_(states))

    def mark_sending(self, step_id: int, now: datetime, *, cap: CapHold | None = None) -> Clearance:
        """The last write before the provider call: from here a crash means ``uncertain``.

        Only a step this run still holds as ``claimed`` moves on. With a frequency ``cap``, the
        count of messages sent *and in flight* (``sending``) to the recipient under the cap's
        key is taken in the same transaction, and these moves take turns (a thread lock; on
        PostgreSQL also a transaction advisory lock per recipient and key), so two workers
        sending to one customer at once cannot both find the cap free.
        """
        if cap is None:
            with self._tx() as conn:
                return Clearance(self._to_sending(conn, step_id, now, None))
        holder = cap.holder()
        with self._cap_turn, self._tx() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:cls, :key)"),
                    {"cls": CAP_LOCK_CLASS, "key": int(holder[:7], 16)},
                )
            if cap.max is None:
                return Clearance(self._to_sending(conn, step_id, now, holder))
            in_flight = conn.execute(
                select(func.count())
                .select_from(steps)
                .where(
                    steps.c.state == "sending",
                    steps.c.sending_cap == holder,
                    steps.c.id != step_id,
                )
            ).scalar()
            used = int(in_flight or 0) + count_sent(conn, cap.recipient, cap.key, cap.since)
            if used >= cap.max:
                ours = conn.execute(
                    select(steps.c.id).where(steps.c.id == step_id, self._held(("claimed",)))
                ).first()
                return Clearance(ours is not None, used)
            return Clearance(self._to_sending(conn, step_id, now, holder))

    def _to_sending(
        self, conn: Connection, step_id: int, now: datetime, holder: str | None
    ) -> bool:
        changed = conn.execute(
            update(steps)
            .where(steps.c.id == step_id, self._held(("claimed",)))
            .values(state="sending", sending_cap=holder, updated_at=now)
        ).rowcount
        return bool(changed)

    def release(self, step_id: int, now: datetime, due_at: datetime | None = None) -> bool:
        """Hand a step this run holds back (e.g. the store was unreachable); nothing was sent.

        False when it is no longer ours: then it is left as it is.
        """
        values: dict[str, Any] = {
            "state": "pending",
            "claimed_by": None,
            "sending_cap": None,
            "updated_at": now,
        }
        if due_at is not None:
            values["due_at"] = due_at
        with self._tx() as conn:
            changed = conn.execute(
                update(steps).where(steps.c.id == step_id, self._held()).values(**values)
            ).rowcount
        return bool(changed)

    def release_if_claimed(self, step_id: int, now: datetime, due_at: datetime) -> bool:
        """Hand back a step only if nothing was sent yet (still ``claimed``, by this run)."""
        with self._tx() as conn:
            changed = conn.execute(
                update(steps)
                .where(steps.c.id == step_id, self._held(("claimed",)))
                .values(state="pending", claimed_by=None, due_at=due_at, updated_at=now)
            ).rowcount
        return bool(changed)

    def finish(
        self,
        step: ClaimedStep,
        status: str,
        now: datetime,
        *,
        recipient: str | None,
        message_id: str | None = None,
        reason: str = "",
        cap_key: str | None = None,
        held: Sequence[str] = HELD_STATES,
    ) -> bool:
        """Record a step's outcome and its log line in one transaction.

        Only while this run holds the step (in one of the ``held`` states): False, and nothing
        written, when it was cancelled or taken over by another daemon's recovery meanwhile.
        """
        with self._tx() as conn:
            rows = step_rows(conn, steps.c.id == step.id)
            return bool(rows) and finish_step(
                conn,
                rows[0],
                status,
                now,
                recipient=recipient,
                message_id=message_id,
                reason=reason,
                cap_key=cap_key,
                fence=self._held(held),
            )

    def recover_interrupted(self, now: datetime) -> tuple[int, int]:
        """After a crash: claimed steps go back to pending; sending ones become ``uncertain``.

        Only claims of other daemon runs are touched, and their owners are gone: this run holds
        the database's lock, so every other run has lost it (it died, or its PostgreSQL session
        ended), and such a run can no longer move those steps on itself (its writes are fenced
        by ``claimed_by``, and it claims nothing once ``verify`` fails).

        A step left in ``sending`` may or may not have reached the provider. Sending it again
        could mail the customer twice, so it is logged for the owner instead. Coupon leases die
        with the daemon that took them: this one holds the database's lock, so nobody else is
        creating a coupon, and a dead holder's lease would only delay the retry by minutes (the
        code is already planned, so the store is asked for it before anything is created).
        """
        self._lock.verify()  # a daemon that lost its lock must not take the new owner's claims
        others = or_(steps.c.claimed_by.is_(None), steps.c.claimed_by != self.owner)
        with self._tx() as conn:
            conn.execute(
                update(coupons).where(coupons.c.lease_until.is_not(None)).values(lease_until=None)
            )
            released = conn.execute(
                update(steps)
                .where(steps.c.state == "claimed", others)
                .values(state="pending", claimed_by=None, updated_at=now)
            ).rowcount
            rows = step_rows(conn, and_(steps.c.state == "sending", others))
            uncertain = 0
            for row in rows:
                uncertain += finish_step(
                    conn,
                    row,
                    "uncertain",
                    now,
                    recipient=None,
                    message_id=None,
                    reason="the daemon stopped while this message was being sent; it may or may "
                    "not have gone out, so it will not be sent again automatically",
                    fence=steps.c.state == "sending",
                )
        return int(released), uncertain
