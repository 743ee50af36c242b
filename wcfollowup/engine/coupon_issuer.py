"""Create a step's personal coupon in the store exactly once, then hand it to the email.

The order of events is what makes it exactly-once: the code is committed to our database
first; only the lease holder talks to the store; the store is asked whether it already has the
code before anything is created, and a "code already exists" answer means an earlier attempt
(ours) succeeded, so that coupon is reused. The created coupon is checked against what was
asked, because a real store silently changes some fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import structlog

from wcfollowup.config import CouponConfig
from wcfollowup.core.clock import Clock
from wcfollowup.core.coupons import coupon_body, coupon_problems, expires_local, new_code
from wcfollowup.db.coupons import CouponBook, CouponRecord
from wcfollowup.woo.errors import CouponExists, StoreRequestError

if TYPE_CHECKING:
    from wcfollowup.engine.step_ref import StepRef
    from wcfollowup.woo.gateway import WooGateway

log = structlog.get_logger("wcfollowup.coupons")


class CouponBusy(Exception):
    """Another worker is creating this coupon right now; try the step again later."""


class CouponRefused(Exception):
    """The store refused the coupon or made a different one; the step fails with this reason."""


@dataclass(frozen=True, slots=True)
class IssuedCoupon:
    code: str
    discount_type: str
    amount: str
    expires_local: str | None
    minimum_spend: str | None
    store_coupon_id: int | None

    @classmethod
    def sample(cls, config: CouponConfig, store_tz: tzinfo, now: datetime) -> IssuedCoupon:
        """What a preview shows; never created anywhere."""
        return cls(
            code=f"{config.prefix}-PREVIEW00".lower(),
            discount_type=config.discount_type,
            amount=str(config.amount),
            expires_local=expires_local(now, store_tz, config.expires_in),
            minimum_spend=str(config.minimum_spend) if config.minimum_spend else None,
            store_coupon_id=None,
        )


class CouponIssuer:
    def __init__(
        self, gateway: WooGateway, book: CouponBook, store_tz: tzinfo, clock: Clock
    ) -> None:
        self.gateway = gateway
        self.book = book
        self.store_tz = store_tz
        self.clock = clock

    def issue(
        self, ref: StepRef, config: CouponConfig, email: str, order: dict[str, Any]
    ) -> IssuedCoupon:
        now = self.clock.now()
        record = self.book.plan(
            CouponRecord(
                step_id=ref.id,
                order_id=ref.order_id,
                code=new_code(config.prefix),
                email=email,
                discount_type=config.discount_type,
                amount=str(config.amount),
                expires_local=expires_local(now, self.store_tz, config.expires_in),
                store_coupon_id=None,
            ),
            ref.store_id,
            now,
        )
        issued = IssuedCoupon(
            code=record.code,
            discount_type=record.discount_type,
            amount=record.amount,
            expires_local=record.expires_local,
            minimum_spend=str(config.minimum_spend) if config.minimum_spend else None,
            store_coupon_id=record.store_coupon_id,
        )
        if record.store_coupon_id is not None:
            return issued  # created on an earlier attempt; the email is what is left to do
        if not self.book.take_lease(ref.id, now):
            raise CouponBusy(f"coupon {record.code} is being created by another worker")
        asked = coupon_body(
            record.code,
            config,
            record.email,
            record.expires_local or "",
            str(order.get("number") or ref.order_id),
        )
        asked["amount"] = record.amount
        bound = log.bind(order_id=ref.order_id, sequence=ref.sequence, step=ref.step)
        created = self.gateway.find_coupon(record.code)
        if created is not None:
            bound.info("coupon found in the store from an earlier attempt; reusing it")
        else:
            try:
                created = self.gateway.create_coupon(asked)
                bound.info("coupon created in the store", coupon_id=created.get("id"))
            except CouponExists:
                created = self.gateway.find_coupon(record.code)
                if created is None:
                    raise CouponRefused(
                        f"the store says coupon {record.code} exists but does not return it"
                    ) from None
                bound.info("coupon already existed (an earlier attempt made it); reusing it")
            except StoreRequestError as exc:
                raise CouponRefused(f"the store refused the coupon: {exc}") from None
        problems = coupon_problems(created, asked)
        if problems:
            raise CouponRefused(
                f"the store created coupon {record.code} differently from what was asked: "
                + "; ".join(problems)
                + ". It was not sent; fix or delete it in WooCommerce → Marketing → Coupons."
            )
        store_id = int(created.get("id") or 0)
        self.book.mark_created(ref.id, store_id, self.clock.now())
        return IssuedCoupon(
            code=issued.code,
            discount_type=issued.discount_type,
            amount=issued.amount,
            expires_local=issued.expires_local,
            minimum_spend=issued.minimum_spend,
            store_coupon_id=store_id,
        )
