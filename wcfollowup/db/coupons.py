"""The coupons wcfollowup creates in the store, and which later orders used them.

A coupon's code is chosen and committed here *before* the store is asked to create it. That is
what makes creation idempotent: a retry, a restart or a second worker finds the same code and
reuses the store's coupon instead of making another (the store itself does not stop two
concurrent creates of one code). A short lease lets only one worker talk to the store at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from wcfollowup.db.message_log import log_line
from wcfollowup.db.schema import coupons
from wcfollowup.db.state import StateStore

LEASE = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class CouponRecord:
    step_id: int
    order_id: int
    code: str
    email: str
    discount_type: str
    amount: str
    expires_local: str | None
    store_coupon_id: int | None


@dataclass(frozen=True, slots=True)
class Redemption:
    """A completed order that used a coupon code."""

    code: str
    order_id: int
    order_number: str
    amount: str  # formatted for the log, e.g. "Rp 250.000"


class CouponBook:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def plan(self, record: CouponRecord, store_id: int, now: datetime) -> CouponRecord:
        """Remember the coupon a step will create; the first plan for a step wins."""
        try:
            with self.state.tx() as conn:
                conn.execute(
                    insert(coupons).values(
                        step_id=record.step_id,
                        store_id=store_id,
                        order_id=record.order_id,
                        code=record.code,
                        email=record.email,
                        discount_type=record.discount_type,
                        amount=record.amount,
                        expires_local=record.expires_local,
                        planned_at=now,
                    )
                )
        except IntegrityError:
            pass  # planned before (a retry): reuse that code
        found = self.for_step(record.step_id)
        if found is None:  # the code collided with another step's: astronomically unlikely
            raise RuntimeError("could not plan the coupon; a new code is drawn on the next try")
        return found

    def for_step(self, step_id: int) -> CouponRecord | None:
        with self.state.tx() as conn:
            row = conn.execute(select(coupons).where(coupons.c.step_id == step_id)).first()
        if row is None:
            return None
        return CouponRecord(
            step_id=row.step_id,
            order_id=row.order_id,
            code=row.code,
            email=row.email,
            discount_type=row.discount_type,
            amount=row.amount,
            expires_local=row.expires_local,
            store_coupon_id=row.store_coupon_id,
        )

    def take_lease(self, step_id: int, now: datetime) -> bool:
        """Only the holder of the lease may ask the store to create this coupon."""
        with self.state.tx() as conn:
            changed = conn.execute(
                update(coupons)
                .where(
                    coupons.c.step_id == step_id,
                    or_(coupons.c.lease_until.is_(None), coupons.c.lease_until <= now),
                )
                .values(lease_until=now + LEASE)
            ).rowcount
        return bool(changed)

    def mark_created(self, step_id: int, store_coupon_id: int, now: datetime) -> None:
        with self.state.tx() as conn:
            conn.execute(
                update(coupons)
                .where(coupons.c.step_id == step_id)
                .values(store_coupon_id=store_coupon_id, created_at=now, lease_until=None)
            )

    def known_codes(self, codes: Sequence[str]) -> set[str]:
        """Which of these codes are ours and not yet redeemed: one cheap query per page."""
        wanted = sorted({code.lower() for code in codes})
        if not wanted:
            return set()
        with self.state.tx() as conn:
            rows = conn.execute(
                select(coupons.c.code).where(
                    coupons.c.code.in_(wanted), coupons.c.redeemed_order_id.is_(None)
                )
            ).all()
        return {row.code for row in rows}

    def redeem(self, redemptions: Sequence[Redemption], now: datetime) -> int:
        """Record each first use of one of our coupons, with a line in the message log."""
        recorded = 0
        with self.state.tx() as conn:
            for used in redemptions:
                row = conn.execute(
                    select(coupons.c.step_id).where(
                        and_(
                            coupons.c.code == used.code.lower(),
                            coupons.c.redeemed_order_id.is_(None),
                        )
                    )
                ).first()
                if row is None:
                    continue
                conn.execute(
                    update(coupons)
                    .where(coupons.c.step_id == row.step_id)
                    .values(
                        redeemed_order_id=used.order_id,
                        redeemed_order_number=used.order_number,
                        redeemed_amount=used.amount,
                        redeemed_at=now,
                    )
                )
                step = self.state.step_row(conn, row.step_id)
                if step is not None:
                    log_line(
                        conn,
                        step,
                        "redeemed",
                        now,
                        reason=f"coupon {used.code.lower()} (sent for order "
                        f"#{step.order_number}) used on order #{used.order_number}: "
                        f"{used.amount}",
                        order_id=used.order_id,
                        order_number=used.order_number,
                    )
                recorded += 1
        return recorded
