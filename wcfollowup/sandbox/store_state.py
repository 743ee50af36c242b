"""The sandbox store's data and every way it can change, behind one lock.

Orders are compact records kept in a sorted index per status (see ``order_records``), turned
into WooCommerce JSON only when asked (``order_render``) and paged by ``order_query``. This
module owns the lock, the id sequences, the statuses, seeding, and the changes a test or the
demo makes (create, complete, refund, touch, set meta) with their modification times.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from wcfollowup.core.clock import Clock
from wcfollowup.sandbox import seed
from wcfollowup.sandbox.coupons_reviews import Coupon, Review, create_review
from wcfollowup.sandbox.order_records import CouponLine, MetaEntry, OrderRecord, Refund, StatusIndex
from wcfollowup.sandbox.order_render import render_order
from wcfollowup.sandbox.seed import Customer

DEFAULT_STATUSES = (
    "auto-draft",
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "checkout-draft",
)
# "any" in WordPress means every status that is searchable: not trash, not auto-draft.
NOT_IN_ANY = frozenset({"trash", "auto-draft"})
PAID_STATUSES = frozenset({"processing", "completed", "refunded"})


class UnknownOrder(KeyError):
    pass


class UnknownStatus(ValueError):
    pass


def _cents(amount: object) -> int:
    quantized = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return int(quantized * 100)


class SandboxStore:
    """Thread-safe: the HTTP server and the test (or demo) thread both mutate it."""

    def __init__(
        self, clock: Clock, timezone: str = "Asia/Jakarta", legacy_wc: bool = False
    ) -> None:
        self.clock = clock
        self.tz: ZoneInfo = ZoneInfo(timezone)
        self.timezone_name = timezone
        self.legacy_wc = legacy_wc
        self.wc_version: str = seed.WC_LEGACY_VERSION if legacy_wc else seed.WC_VERSION
        self.lock = threading.RLock()
        self.orders: dict[int, OrderRecord] = {}
        self.indexes: dict[str, StatusIndex] = {}
        self.statuses: list[str] = list(DEFAULT_STATUSES)
        self._next_post_id = 100  # orders and refunds share the WordPress post id sequence
        self._next_item_id = 1
        self._next_meta_id = 1
        self._next_comment_id = 40  # reviews share the comment sequence with order notes
        self.coupons: dict[int, Coupon] = {}
        self.reviews: dict[int, Review] = {}
        self._rng = random.Random(20261122)
        self._synthetic: dict[int, Customer] = {}
        self._combos = self._item_combos()
        # Where rendered links point; the Sandbox sets the real URL once its port is known.
        self.base_url = "http://127.0.0.1"
        self.catalog_created = self.now_ts() - 120 * 86400

    # -- time and ids ----------------------------------------------------------------------

    def now_ts(self) -> int:
        return int(self.clock.now().timestamp())

    def post_id(self) -> int:
        value = self._next_post_id
        self._next_post_id += 1
        return value

    def meta_id(self) -> int:
        value = self._next_meta_id
        self._next_meta_id += 1
        return value

    def comment_id(self) -> int:
        value = self._next_comment_id
        self._next_comment_id += 1
        return value

    # -- statuses ----------------------------------------------------------------------------

    def register_status(self, slug: str) -> None:
        """Like a plugin calling ``register_post_status``: makes ``slug`` valid in filters."""
        with self.lock:
            if slug not in self.statuses:
                self.statuses.append(slug)

    def statuses_for_any(self) -> list[str]:
        return [status for status in self.statuses if status not in NOT_IN_ANY]

    def _check_status(self, status: str) -> None:
        if status not in self.statuses and status != "trash":
            raise UnknownStatus(f"unknown order status {status!r}; known: {self.statuses}")

    # -- indexes -----------------------------------------------------------------------------

    def _status_index(self, status: str) -> StatusIndex:
        index = self.indexes.get(status)
        if index is None:
            index = self.indexes[status] = StatusIndex()
        return index

    def _index(self, record: OrderRecord) -> None:
        self._status_index(record.status).add(record)

    def _unindex(self, record: OrderRecord) -> None:
        self.indexes[record.status].discard(record)

    # -- customers and items -----------------------------------------------------------------

    def _item_combos(self) -> list[tuple[tuple[int, int], ...]]:
        rng = random.Random(7)
        ids = [product.id for product in seed.PRODUCTS]
        combos = []
        for _ in range(64):
            chosen = rng.sample(ids, rng.choice((1, 1, 2, 2, 3)))
            combos.append(tuple(sorted((pid, rng.choice((1, 1, 1, 2, 3))) for pid in chosen)))
        return combos

    def synthetic(self, number: int) -> Customer:
        customer = self._synthetic.get(number)
        if customer is None:
            customer = self._synthetic[number] = seed.synthetic_customer(number)
        return customer

    def _resolve_customer(self, key: str | None) -> Customer:
        if key is None:
            return self.synthetic(self._rng.randrange(seed.SYNTHETIC_POOL))
        if key.startswith("shopper") and key[len("shopper") :].isdigit():
            return self.synthetic(int(key[len("shopper") :]))  # a guest with no history yet
        try:
            return seed.CUSTOMERS_BY_KEY[key]
        except KeyError:
            known = list(seed.CUSTOMERS_BY_KEY)
            raise KeyError(f"unknown customer {key!r}; seeded: {known}") from None

    # -- creating orders ---------------------------------------------------------------------

    def _new_record(
        self,
        customer: Customer,
        items: tuple[tuple[int, int], ...],
        status: str,
        currency: str,
        created: int,
    ) -> OrderRecord:
        record = OrderRecord(
            id=self.post_id(),
            status=status,
            customer=customer,
            items=items,
            currency=currency,
            created=created,
            modified=created,
            paid=created if status in PAID_STATUSES else None,
            completed=created if status == "completed" else None,
            item_base=self._next_item_id,
        )
        self._next_item_id += len(items) + 1  # line items plus one shipping line
        return record

    def create_order(
        self,
        customer: str | None = None,
        items: list[tuple[int, int]] | None = None,
        status: str = "processing",
        currency: str | None = None,
        meta: dict[str, object] | None = None,
        coupons: list[str] | None = None,
    ) -> dict[str, Any]:
        """Place an order now; ``coupons`` redeems existing coupon codes (see ``used_by``)."""
        with self.lock:
            self._check_status(status)
            who = self._resolve_customer(customer)
            chosen = tuple(items) if items else self._rng.choice(self._combos)
            for product_id, qty in chosen:
                if product_id not in seed.PRODUCTS_BY_ID or qty < 1:
                    raise ValueError(f"bad line item ({product_id}, {qty})")
            money = currency or who.currency
            if money not in seed.SHIPPING:
                raise ValueError(f"the sandbox sells in {sorted(seed.SHIPPING)}, not {money!r}")
            record = self._new_record(who, tuple(chosen), status, money, self.now_ts())
            record.meta = [MetaEntry(self.meta_id(), "_new_order_email_sent", "true")]
            for key, value in (meta or {}).items():
                record.meta.append(MetaEntry(self.meta_id(), key, value))
            if coupons:
                record.coupons = [self._redeem(code, record) for code in coupons]
            self.orders[record.id] = record
            self._index(record)
            return self.render(record.id)

    def _redeem(self, code: str, record: OrderRecord) -> CouponLine:
        coupon = self.coupon_by_code(code)
        if coupon is None:
            raise ValueError(f"no coupon with code {code!r}")
        base = record.subtotal_cents()
        if coupon.discount_type == "percent":
            cents = base * coupon.amount_cents // 10_000
        else:
            cents = min(coupon.amount_cents, base)
        coupon.used_by.append(record.customer.email)
        return CouponLine(self.meta_id(), coupon.code, cents)

    def coupon_by_code(self, code: str) -> Coupon | None:
        with self.lock:
            wanted = code.strip().lower()
            return next((c for c in self.coupons.values() if c.code == wanted), None)

    def add_review(
        self,
        product_id: int,
        reviewer_email: str,
        rating: int = 5,
        reviewer: str = "Pelanggan",
        review: str = "Bagus sekali!",
        status: str = "approved",
    ) -> int:
        """A review left on the shop's own form (not via the API); returns its id."""
        with self.lock:
            return create_review(
                self, product_id, reviewer, reviewer_email, review, rating, status
            ).id

    def add_orders(self, n: int, status: str = "processing", spread_seconds: int = 0) -> list[int]:
        """Bulk-create ``n`` orders (synthetic guests, shared item combos) in one pass.

        With ``spread_seconds`` the orders are created evenly over the preceding window, oldest
        first, so creation order and id order agree as on a real shop.
        """
        if n <= 0:
            return []
        with self.lock:
            self._check_status(status)
            now = self.now_ts()
            rng = self._rng
            combos = self._combos
            pool = seed.SYNTHETIC_POOL
            paid = status in PAID_STATUSES
            completed = status == "completed"
            first_id = self._next_post_id
            item_id = self._next_item_id
            new: list[OrderRecord] = []
            append = new.append
            for offset in range(n):
                created = now - (spread_seconds * (n - 1 - offset)) // max(n - 1, 1)
                customer = self.synthetic(rng.randrange(pool))
                chosen = combos[rng.randrange(len(combos))]
                append(
                    OrderRecord(
                        first_id + offset,
                        status,
                        customer,
                        chosen,
                        customer.currency,
                        created,
                        created,
                        created if paid else None,
                        created if completed else None,
                        item_id,
                    )
                )
                item_id += len(chosen) + 1
            self._next_post_id = first_id + n
            self._next_item_id = item_id
            for record in new:
                self.orders[record.id] = record
            self._bulk_index(status, new)
            return [record.id for record in new]

    def _bulk_index(self, status: str, records: list[OrderRecord]) -> None:
        self._status_index(status).extend(records)

    # -- seeding -------------------------------------------------------------------------------

    def seed_history(self) -> None:
        """Twenty past orders in every status, timestamped relative to the clock right now."""
        with self.lock:
            now = self.now_ts()
            for index, entry in enumerate(seed.SEED_ORDERS):
                who, items, status, days_ago, modified_hours = entry
                customer = seed.CUSTOMERS_BY_KEY[who]
                created = (now - int(days_ago * 86400)) // 60 * 60
                record = self._new_record(customer, items, status, customer.currency, created)
                record.modified = min(created + int(modified_hours * 3600), now - 60)
                record.created_via = "checkout"
                record.note = "" if index % 3 else "Tolong dibungkus rapi, terima kasih!"
                if status in PAID_STATUSES:
                    record.paid = created + 300
                if status == "completed":
                    record.completed = record.modified
                record.meta = [
                    MetaEntry(self.meta_id(), "_seed_index", str(index)),
                    MetaEntry(self.meta_id(), "_new_order_email_sent", "true"),
                ]
                if status == "refunded":
                    record.refunds = [
                        Refund(self.post_id(), "Barang rusak saat pengiriman", record.total_cents())
                    ]
                if index == seed.PARTIAL_REFUND_SEED:
                    record.refunds = [
                        Refund(
                            self.post_id(),
                            "Partial refund: one bag missing",
                            seed.PRODUCTS_BY_ID[15].prices[record.currency],
                        )
                    ]
                self.orders[record.id] = record
                self._index(record)

    # -- mutations -------------------------------------------------------------------------------

    def _record(self, order_id: int) -> OrderRecord:
        try:
            return self.orders[order_id]
        except KeyError:
            raise UnknownOrder(order_id) from None

    def _mutate(self, order_id: int, status: str | None = None) -> OrderRecord:
        """Move an order to ``status`` (if given) and bump ``date_modified`` to now."""
        record = self._record(order_id)
        if status is not None:
            self._check_status(status)
        now = self.now_ts()
        self._unindex(record)
        if status is not None:
            record.status = status
            if status in PAID_STATUSES and record.paid is None:
                record.paid = now
            if status == "completed":
                record.completed = now
        record.modified = now
        self._index(record)
        return record

    def set_status(self, order_id: int, status: str) -> dict[str, Any]:
        with self.lock:
            self._mutate(order_id, status)
            return self.render(order_id)

    def complete(self, order_id: int) -> dict[str, Any]:
        return self.set_status(order_id, "completed")

    def cancel(self, order_id: int) -> dict[str, Any]:
        return self.set_status(order_id, "cancelled")

    def touch(self, order_id: int) -> dict[str, Any]:
        with self.lock:
            self._mutate(order_id)
            return self.render(order_id)

    def refund(
        self, order_id: int, amount: object | None = None, reason: str = "Refund from the sandbox"
    ) -> dict[str, Any]:
        """Refund ``amount`` (major units) or everything left; a full refund sets ``refunded``."""
        with self.lock:
            record = self._record(order_id)
            remaining = record.total_cents() - record.refunded_cents()
            cents = remaining if amount is None else _cents(amount)
            if cents <= 0 or cents > remaining:
                raise ValueError(
                    f"refund of {cents} cents on order {order_id} with {remaining} cents refundable"
                )
            refunds = record.refunds if record.refunds is not None else []
            refunds.insert(0, Refund(self.post_id(), reason, cents))
            record.refunds = refunds
            self._mutate(order_id, "refunded" if cents == remaining else None)
            return self.render(order_id)

    def set_meta(self, order_id: int, key: str, value: object) -> dict[str, Any]:
        """Add or replace an order meta entry (e.g. shipment tracking); bumps date_modified."""
        with self.lock:
            record = self._record(order_id)
            entries = record.meta if record.meta is not None else []
            for entry in entries:
                if entry.key == key:
                    entry.value = value
                    break
            else:
                entries.append(MetaEntry(self.meta_id(), key, value))
            record.meta = entries
            self._mutate(order_id)
            return self.render(order_id)

    def set_modified(self, order_id: int, when: datetime) -> dict[str, Any]:
        """Write ``date_modified`` directly, as an importer or a plugin may (even in the future)."""
        with self.lock:
            record = self._record(order_id)
            self._unindex(record)
            record.modified = int(when.timestamp())
            self._index(record)
            return self.render(order_id)

    def set_note(self, order_id: int, note: str) -> dict[str, Any]:
        with self.lock:
            self._record(order_id).note = note
            self._mutate(order_id)
            return self.render(order_id)

    # -- reading -----------------------------------------------------------------------------

    def get(self, order_id: int) -> dict[str, Any]:
        with self.lock:
            return self.render(order_id)

    def render(self, order_id: int, base_url: str = "") -> dict[str, Any]:
        with self.lock:
            return render_order(self, self._record(order_id), base_url or self.base_url)

    def orders_ids(self, status: str | None = None) -> list[int]:
        with self.lock:
            if status is None:
                return sorted(self.orders)
            index = self.indexes.get(status)
            return list(index.by_id) if index else []
