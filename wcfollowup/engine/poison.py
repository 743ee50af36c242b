"""Which errors are one order's fault, and so skip that order rather than fail the poll.

A poll reads many orders; one that cannot be read, planned or stored (an id beyond 64 bits, a
completion date in year 9999, a value the database refuses) must not stop the others, or every
poll fails on it forever and nothing after it is ever enrolled. Such an order is skipped, with
a log line naming it and a metric.

Errors about the world instead (the store unreachable or refusing our keys, the database
locked, full or gone) are nobody's order's fault: they fail the whole poll, the cursor stays,
and the next poll reads the same orders again. Skipping on those would lose good orders.
"""

from __future__ import annotations

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from wcfollowup.db.state import DatabaseUnavailable
from wcfollowup.woo.errors import OrderNotFound, StoreError, StoreRequestError

# WooCommerce ids are BIGINT UNSIGNED; our columns (and SQLite's integers) are signed 64-bit.
MAX_ORDER_ID = 2**63 - 1


def order_at_fault(exc: BaseException) -> bool:
    """True when ``exc``, raised while handling one order, is that order's own problem."""
    if not isinstance(exc, Exception) or isinstance(exc, DatabaseUnavailable):
        return False
    if isinstance(exc, StoreError):
        # A 4xx for a request built from this order's data (a lookup for its conditions), or
        # the order gone: asking again cannot help. Anything else is the store's trouble.
        return isinstance(exc, StoreRequestError | OrderNotFound)
    if isinstance(exc, SQLAlchemyError):
        # A value the database refuses (out of range, too long, a NUL byte in text, a
        # constraint). Connection trouble, locks, a full disk or a missing table are not.
        return isinstance(exc, DataError | IntegrityError)
    return True  # a Python error on this order's data (OverflowError, ValueError, ...)


def check_order_id(order_id: int) -> None:
    """Refuse an id the database cannot hold, before it reaches a batch of good orders."""
    if not 0 < order_id <= MAX_ORDER_ID:
        raise ValueError(f"order id {order_id} is outside 1..2^63-1")


def describe(exc: BaseException) -> str:
    """The reason for the log line: the error's type and its first line, kept short."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
