"""The tables that make follow-ups durable.

``steps`` is an outbox: a row is written when an order is enrolled, long before anything is
sent, so a crash can never lose a planned follow-up. ``messages`` is the owner-facing log; every
outcome of a step (sent, failed, skipped, cancelled, uncertain) lands there in the same
transaction that changes the step's state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (SQLite has no time zones) and always hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


# WooCommerce ids (orders, coupons) are BIGINT UNSIGNED: 64-bit columns (migration 0005), so
# an order id past 2^31 is stored like any other. SQLite's INTEGER is already 64-bit.
# Ids from 2^63 up fit no signed 64-bit column: ``StateStore`` refuses such an order by itself
# (``UnstorableOrder``) before its batch is written.
WooId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

stores = Table(
    "stores",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", String(500), nullable=False, unique=True),
    # Orders completed before this instant (store time, UTC) were history when we first looked.
    Column("baseline_gmt", UTCDateTime, nullable=False),
    # Highest date_modified_gmt fully processed; the next poll starts a little before it.
    Column("cursor_gmt", UTCDateTime, nullable=False),
    Column("last_poll_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("store_id", Integer, ForeignKey("stores.id"), nullable=False),
    Column("order_id", WooId, nullable=False),
    Column("order_number", String(64), nullable=False),
    Column("sequence", String(100), nullable=False),
    Column("email", String(320), nullable=False, default=""),
    # Who the customer is for caps and "once per customer": lower-cased billing email.
    Column("customer_key", String(320), nullable=False, default=""),
    Column("anchor_at", UTCDateTime, nullable=False),
    # When the parcel arrived, once a delivery signal (or the fallback) says so.
    Column("delivered_at", UTCDateTime),
    Column("enrolled_at", UTCDateTime, nullable=False),
    UniqueConstraint("store_id", "order_id", "sequence", name="uq_enrollment_once"),
    # No index on the customer: see migration 0004 and ``once_customers``.
)

# The customers each "once per customer" sequence has had, per store: what that rule checks.
# Kept apart from ``enrollments`` so that only those sequences pay for a customer index (an
# index in customer order is filled in random order, and a backlog rewrites all of it with
# every batch; see migration 0004). Derived from ``enrollments``, so it can always be rebuilt.
once_customers = Table(
    "once_customers",
    metadata,
    Column("store_id", Integer, ForeignKey("stores.id"), primary_key=True),
    Column("sequence", String(100), primary_key=True),
    Column("customer_key", String(320), primary_key=True),
    sqlite_with_rowid=False,
)

# The sequences ``once_customers`` is complete for. A sequence made "once per customer" later
# is filled in from ``enrollments`` the first time it enrols; one that stops being so is
# dropped here, so that turning the rule on again counts the enrolments made meanwhile.
once_sequences = Table(
    "once_sequences",
    metadata,
    Column("store_id", Integer, ForeignKey("stores.id"), primary_key=True),
    Column("sequence", String(100), primary_key=True),
)

steps = Table(
    "steps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("enrollment_id", Integer, ForeignKey("enrollments.id"), nullable=False),
    Column("store_id", Integer, ForeignKey("stores.id"), nullable=False),
    Column("order_id", WooId, nullable=False),
    Column("sequence", String(100), nullable=False),
    Column("step", String(100), nullable=False),
    Column("kind", String(32), nullable=False),
    # "completed" or "delivered": what the delay counts from.
    Column("anchor", String(16), nullable=False, default="completed"),
    Column("delay_seconds", Integer, nullable=False, default=0),
    # NULL while a delivery-anchored step waits for the parcel to arrive.
    Column("due_at", UTCDateTime),
    # waiting -> pending -> claimed -> sending -> sent | failed | skipped | cancelled | uncertain
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
    # The owner token of the daemon run that claimed the step (``StateStore.owner``): only it
    # may move the step on, so a daemon that lost its lock cannot finish what another now owns.
    Column("claimed_by", String(32)),
    # While ``sending``: a hash of the recipient and the frequency cap's key, so a cap counts
    # the messages in flight as well as those sent (no address is kept in the clear here).
    Column("sending_cap", String(64)),
    UniqueConstraint("enrollment_id", "step", name="uq_step_once"),
    Index("ix_steps_state_due", "state", "due_at"),
    Index("ix_steps_order", "store_id", "order_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("step_id", Integer, ForeignKey("steps.id")),
    Column("store_id", Integer, ForeignKey("stores.id"), nullable=False),
    Column("order_id", WooId, nullable=False),
    Column("order_number", String(64), nullable=False),
    Column("recipient", String(320), nullable=False, default=""),
    Column("sequence", String(100), nullable=False),
    Column("step", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_message_id", String(200)),
    Column("reason", Text, nullable=False, default=""),
    # Frequency caps count sent messages sharing this key (the step's template by default).
    Column("cap_key", String(100)),
    Index("ix_messages_at", "at"),
    Index("ix_messages_order", "store_id", "order_id"),
    Index("ix_messages_cap", "recipient", "cap_key", "status"),
)

unsubscribes = Table(
    "unsubscribes",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("source", String(100), nullable=False, default=""),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", Integer, primary_key=True),
    # One coupon per coupon step: a retry or a restart finds this row and reuses its code.
    Column("step_id", Integer, ForeignKey("steps.id"), nullable=False, unique=True),
    Column("store_id", Integer, ForeignKey("stores.id"), nullable=False),
    Column("order_id", WooId, nullable=False),
    # Lower-case, as the store keeps it; chosen (and committed) before the store is asked.
    Column("code", String(64), nullable=False, unique=True),
    Column("email", String(320), nullable=False),
    Column("discount_type", String(32), nullable=False),
    Column("amount", String(32), nullable=False),
    Column("expires_local", String(32)),
    Column("store_coupon_id", WooId),
    Column("created_at", UTCDateTime),
    # Only the worker holding an unexpired lease may ask the store to create the coupon.
    Column("lease_until", UTCDateTime),
    Column("redeemed_order_id", WooId),
    Column("redeemed_order_number", String(64)),
    Column("redeemed_amount", String(32)),
    Column("redeemed_at", UTCDateTime),
    Column("planned_at", UTCDateTime, nullable=False),
    Index("ix_coupons_order", "store_id", "order_id"),
)

survey_responses = Table(
    "survey_responses",
    metadata,
    Column("id", Integer, primary_key=True),
    # The survey step that sent the links: the first score wins, replays change nothing.
    Column("step_id", Integer, ForeignKey("steps.id"), nullable=False, unique=True),
    Column("store_id", Integer, ForeignKey("stores.id"), nullable=False),
    Column("order_id", WooId, nullable=False),
    Column("email", String(320), nullable=False, default=""),
    Column("score", Integer, nullable=False),
    Column("comment", Text),
    Column("answered_at", UTCDateTime, nullable=False),
    Column("commented_at", UTCDateTime),
    Index("ix_survey_order", "store_id", "order_id"),
)
