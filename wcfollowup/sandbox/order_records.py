"""One sandbox order as a small slotted record, and the sorted keys each status finds it by.

Orders are kept as records of ids, epoch seconds and references to shared customers and products,
and turned into WooCommerce JSON only when asked (``order_render``), so 100,000 orders cost tens
of megabytes instead of a gigabyte of nested dicts. A ``StatusIndex`` keeps three sorted key
lists per status (by creation, by modification, by id), which ``order_query`` bisects. Kept apart
from ``store_state``, which owns the store's lock and every way its data can change.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Any

from wcfollowup.sandbox import seed
from wcfollowup.sandbox.seed import Customer

ID_BITS = 32
ID_MASK = (1 << ID_BITS) - 1


@dataclass(slots=True)
class Refund:
    id: int
    reason: str
    cents: int


@dataclass(slots=True)
class MetaEntry:
    id: int
    key: str
    value: Any


@dataclass(slots=True)
class CouponLine:
    id: int
    code: str
    cents: int


@dataclass(slots=True)
class OrderRecord:
    """One order, as compact as the API contract allows; totals are computed, not stored."""

    id: int
    status: str
    customer: Customer
    items: tuple[tuple[int, int], ...]
    currency: str
    created: int
    modified: int
    paid: int | None
    completed: int | None
    item_base: int
    note: str = ""
    refunds: list[Refund] | None = None
    meta: list[MetaEntry] | None = None
    coupons: list[CouponLine] | None = None
    created_via: str = "checkout"

    def subtotal_cents(self) -> int:
        return sum(seed.PRODUCTS_BY_ID[pid].prices[self.currency] * qty for pid, qty in self.items)

    def shipping_cents(self) -> int:
        return seed.SHIPPING.get(self.currency, ("Flat rate", 0))[1]

    def discount_cents(self) -> int:
        return sum(line.cents for line in self.coupons or ())

    def total_cents(self) -> int:
        return self.subtotal_cents() - self.discount_cents() + self.shipping_cents()

    def refunded_cents(self) -> int:
        return sum(refund.cents for refund in self.refunds or ())


@dataclass(slots=True)
class StatusIndex:
    """Sorted integer keys for one status: ``ts << 32 | id`` for dates, plain ids for ``id``."""

    by_created: list[int] = field(default_factory=list)
    by_modified: list[int] = field(default_factory=list)
    by_id: list[int] = field(default_factory=list)

    def add(self, record: OrderRecord) -> None:
        insort(self.by_created, index_key(record.created, record.id))
        insort(self.by_modified, index_key(record.modified, record.id))
        insort(self.by_id, record.id)

    def discard(self, record: OrderRecord) -> None:
        _remove(self.by_created, index_key(record.created, record.id))
        _remove(self.by_modified, index_key(record.modified, record.id))
        _remove(self.by_id, record.id)

    def extend(self, records: list[OrderRecord]) -> None:
        """Many records at once: appended, and sorted only when they do not come in order."""
        for keys, values in (
            (self.by_created, [index_key(r.created, r.id) for r in records]),
            (self.by_modified, [index_key(r.modified, r.id) for r in records]),
            (self.by_id, [r.id for r in records]),
        ):
            in_order = keys and values and keys[-1] <= values[0]
            keys.extend(values)
            if keys and not in_order:
                keys.sort()


def index_key(ts: int, order_id: int) -> int:
    return (ts << ID_BITS) | order_id


def _remove(keys: list[int], value: int) -> None:
    index = bisect_left(keys, value)
    if index < len(keys) and keys[index] == value:
        del keys[index]
