"""Turns an ``OrderRecord`` into the exact JSON shape WooCommerce 6.6 returns.

Each top-level field has its own small builder, and ``render_order`` only runs the builders for
the fields a caller asked for. That mirrors WordPress skipping unrequested fields under
``_fields``, and is what keeps a 100-order page with ``_fields=id,status,date_modified_gmt`` cheap.
Money is a string with ``dp`` decimals, ``line_items[].price`` a number, dates have no offset
(local in the store's zone, ``*_gmt`` in UTC), unset dates are ``null`` — all as FACTS.md §2.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from wcfollowup.sandbox import seed

if TYPE_CHECKING:  # store_state renders through this module, so import its types lazily
    from wcfollowup.sandbox.order_records import OrderRecord
    from wcfollowup.sandbox.store_state import SandboxStore


def money(cents: int, dp: int = 2) -> str:
    if dp == 2:
        sign = "-" if cents < 0 else ""
        whole, part = divmod(abs(cents), 100)
        return f"{sign}{whole}.{part:02d}"
    value = (Decimal(cents) / 100).quantize(Decimal(1).scaleb(-dp) if dp > 0 else Decimal(1))
    return f"{value:f}"


def local_date(ts: int | None, tz: ZoneInfo) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%dT%H:%M:%S")


def gmt_date(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class RenderContext:
    store: SandboxStore
    base_url: str
    dp: int = 2


Builder = Callable[["OrderRecord", RenderContext], Any]


def _billing(record: OrderRecord, _: RenderContext) -> dict[str, str]:
    c = record.customer
    return {
        "first_name": c.first_name,
        "last_name": c.last_name,
        "company": c.company,
        "address_1": c.address_1,
        "address_2": "",
        "city": c.city,
        "state": c.state,
        "postcode": c.postcode,
        "country": c.country,
        "email": c.email,
        "phone": c.phone,
    }


def _shipping(record: OrderRecord, _: RenderContext) -> dict[str, str]:
    c = record.customer
    return {
        "first_name": c.first_name,
        "last_name": c.last_name,
        "company": c.company,
        "address_1": c.address_1,
        "address_2": "",
        "city": c.city,
        "state": c.state,
        "postcode": c.postcode,
        "country": c.country,
        "phone": "",
    }


def _meta(record: OrderRecord, _: RenderContext) -> list[dict[str, Any]]:
    return [{"id": m.id, "key": m.key, "value": m.value} for m in record.meta or ()]


def _line_items(record: OrderRecord, ctx: RenderContext) -> list[dict[str, Any]]:
    subtotal = record.subtotal_cents() or 1
    discount = record.discount_cents()
    lines = []
    given = 0
    for position, (product_id, qty) in enumerate(record.items):
        product = seed.PRODUCTS_BY_ID[product_id]
        unit = product.prices[record.currency]
        line_subtotal = unit * qty
        if position == len(record.items) - 1:
            share = discount - given
        else:
            share = discount * line_subtotal // subtotal
            given += share
        item_id = record.item_base + position
        lines.append(
            {
                "id": item_id,
                "name": product.name,
                "product_id": product_id,
                "variation_id": 0,
                "quantity": qty,
                "tax_class": "",
                "subtotal": money(line_subtotal, ctx.dp),
                "subtotal_tax": money(0, ctx.dp),
                "total": money(line_subtotal - share, ctx.dp),
                "total_tax": money(0, ctx.dp),
                "taxes": [],
                "meta_data": [
                    {
                        "id": 100_000_000 + item_id,
                        "key": "_reduced_stock",
                        "value": str(qty),
                        "display_key": "_reduced_stock",
                        "display_value": str(qty),
                    }
                ],
                "sku": product.sku,
                "price": (line_subtotal - share) / qty / 100,
                "image": {
                    "id": product.image_id,
                    "src": f"{ctx.base_url}/wp-content/uploads/2026/10/{product.slug}.jpg",
                },
                "parent_name": None,
            }
        )
    return lines


def _shipping_lines(record: OrderRecord, ctx: RenderContext) -> list[dict[str, Any]]:
    title, _ = seed.SHIPPING.get(record.currency, ("Flat rate", 0))
    return [
        {
            "id": record.item_base + len(record.items),
            "method_title": title,
            "method_id": "flat_rate",
            "instance_id": "",
            "total": money(record.shipping_cents(), ctx.dp),
            "total_tax": money(0, ctx.dp),
            "taxes": [],
            "meta_data": [],
        }
    ]


def _coupon_lines(record: OrderRecord, ctx: RenderContext) -> list[dict[str, Any]]:
    return [
        {
            "id": line.id,
            "code": line.code,
            "discount": money(line.cents, ctx.dp),
            "discount_tax": money(0, ctx.dp),
            "meta_data": [],
        }
        for line in record.coupons or ()
    ]


def _refunds(record: OrderRecord, ctx: RenderContext) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "reason": r.reason, "total": money(-r.cents, ctx.dp)}
        for r in record.refunds or ()
    ]


def _payment_url(record: OrderRecord, ctx: RenderContext) -> str:
    return (
        f"{ctx.base_url}/checkout/order-pay/{record.id}/"
        f"?pay_for_order=true&key={seed.order_key(record.id)}"
    )


def _zero(_: OrderRecord, ctx: RenderContext) -> str:
    return money(0, ctx.dp)


BUILDERS: dict[str, Builder] = {
    "id": lambda r, _: r.id,
    "parent_id": lambda r, _: 0,
    "status": lambda r, _: r.status,
    "currency": lambda r, _: r.currency,
    "version": lambda r, c: c.store.wc_version,
    "prices_include_tax": lambda r, _: False,
    "date_created": lambda r, c: local_date(r.created, c.store.tz),
    "date_modified": lambda r, c: local_date(r.modified, c.store.tz),
    "discount_total": lambda r, c: money(r.discount_cents(), c.dp),
    "discount_tax": _zero,
    "shipping_total": lambda r, c: money(r.shipping_cents(), c.dp),
    "shipping_tax": _zero,
    "cart_tax": _zero,
    "total": lambda r, c: money(r.total_cents(), c.dp),
    "total_tax": _zero,
    "customer_id": lambda r, _: r.customer.id,
    "order_key": lambda r, _: seed.order_key(r.id),
    "billing": _billing,
    "shipping": _shipping,
    "payment_method": lambda r, _: r.customer.payment_method,
    "payment_method_title": lambda r, _: r.customer.payment_method_title,
    "transaction_id": lambda r, _: "",
    "customer_ip_address": lambda r, _: "",
    "customer_user_agent": lambda r, _: "",
    "created_via": lambda r, _: r.created_via,
    "customer_note": lambda r, _: r.note,
    "date_completed": lambda r, c: local_date(r.completed, c.store.tz),
    "date_paid": lambda r, c: local_date(r.paid, c.store.tz),
    "cart_hash": lambda r, _: "",
    "number": lambda r, _: str(r.id),
    "meta_data": _meta,
    "line_items": _line_items,
    "tax_lines": lambda r, _: [],
    "shipping_lines": _shipping_lines,
    "fee_lines": lambda r, _: [],
    "coupon_lines": _coupon_lines,
    "refunds": _refunds,
    "payment_url": _payment_url,
    "is_editable": lambda r, _: r.status in ("pending", "on-hold", "auto-draft"),
    "needs_payment": lambda r, _: r.status in ("pending", "failed") and r.total_cents() > 0,
    "needs_processing": lambda r, _: True,
    "date_created_gmt": lambda r, _: gmt_date(r.created),
    "date_modified_gmt": lambda r, _: gmt_date(r.modified),
    "date_completed_gmt": lambda r, _: gmt_date(r.completed),
    "date_paid_gmt": lambda r, _: gmt_date(r.paid),
    "currency_symbol": lambda r, _: seed.CURRENCY_SYMBOLS.get(r.currency, r.currency),
}


def order_links(record: OrderRecord, base_url: str) -> dict[str, list[dict[str, str]]]:
    api = f"{base_url}/wp-json/wc/v3"
    links = {
        "self": [{"href": f"{api}/orders/{record.id}"}],
        "collection": [{"href": f"{api}/orders"}],
    }
    if record.customer.id:
        links["customer"] = [{"href": f"{api}/customers/{record.customer.id}"}]
    return links


def render_order(
    store: SandboxStore,
    record: OrderRecord,
    base_url: str,
    *,
    dp: int = 2,
    only: Collection[str] | None = None,
) -> dict[str, Any]:
    """Build the order JSON; ``only`` limits it to those top-level fields (without ``_links``)."""
    ctx = RenderContext(store, base_url, dp)
    if only is None:
        body = {name: build(record, ctx) for name, build in BUILDERS.items()}
        body["_links"] = order_links(record, base_url)
        return body
    return {name: build(record, ctx) for name, build in BUILDERS.items() if name in only}
