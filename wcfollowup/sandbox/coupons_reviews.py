"""Coupons and product reviews: the two things follow-up steps write to, or check in, the store.

Both follow the 6.6 captures (FACTS.md §8–9), quirks included: coupon codes and restricted emails
are lower-cased, an invalid email is silently dropped, ``date_expires`` is site-local and a lone
``date_expires_gmt`` is ignored, duplicates are refused by a plain read-then-write check; review
text comes back wrapped in ``<p>``, and ``verified`` is computed from the reviewer's orders.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from wcfollowup.sandbox import seed
from wcfollowup.sandbox.order_render import gmt_date, local_date, money
from wcfollowup.sandbox.wp_params import parse_wp_date

if TYPE_CHECKING:  # the store holds coupons and reviews, so only its type is needed here
    from wcfollowup.sandbox.store_state import SandboxStore

COUPON_TYPES = ("percent", "fixed_cart", "fixed_product")
REVIEW_STATUSES = ("approved", "hold", "spam", "trash")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class CouponError(ValueError):
    def __init__(self, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass
class Coupon:
    id: int
    code: str
    amount_cents: int
    discount_type: str
    created: int
    description: str = ""
    expires: int | None = None
    individual_use: bool = False
    usage_limit: int | None = None
    usage_limit_per_user: int | None = None
    minimum_cents: int = 0
    maximum_cents: int = 0
    free_shipping: bool = False
    email_restrictions: list[str] = field(default_factory=list)
    product_ids: list[int] = field(default_factory=list)
    product_categories: list[int] = field(default_factory=list)
    exclude_sale_items: bool = False
    meta: list[dict[str, Any]] = field(default_factory=list)
    used_by: list[str] = field(default_factory=list)


@dataclass
class Review:
    id: int
    product_id: int
    reviewer: str
    reviewer_email: str
    review: str
    rating: int
    status: str
    created: int


def _cents(value: object, default: int = 0) -> int:
    if value in (None, ""):
        return default
    try:
        return int(Decimal(str(value)) * 100)
    except InvalidOperation:
        return default


def _local_ts(store: SandboxStore, value: object) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = parse_wp_date(value) or parse_wp_date(f"{value}T00:00:00")
    if parsed is None:
        return None
    wall = parsed.astimezone(store.tz).replace(tzinfo=None) if parsed.tzinfo else parsed
    return int(wall.replace(tzinfo=store.tz).timestamp())


def create_coupon(store: SandboxStore, body: dict[str, Any]) -> Coupon:
    """``POST /coupons``; call with ``store.lock`` held."""
    if "code" not in body:
        raise CouponError(
            "rest_missing_callback_param", "Missing parameter(s): code", params=["code"]
        )
    code = str(body["code"]).strip().lower()
    if not code:
        raise CouponError("woocommerce_rest_empty_coupon_code", "The coupon code cannot be empty.")
    if any(coupon.code == code for coupon in store.coupons.values()):
        raise CouponError(
            "woocommerce_rest_coupon_code_already_exists", "The coupon code already exists"
        )
    kind = str(body.get("discount_type") or "fixed_cart")
    if kind not in COUPON_TYPES:
        raise CouponError("rest_invalid_param", "Invalid parameter(s): discount_type")
    emails = [str(e).strip().lower() for e in body.get("email_restrictions") or []]

    def optional_int(name: str) -> int | None:
        value = body.get(name)
        return int(value) if value not in (None, "") else None

    coupon = Coupon(
        id=store.post_id(),
        code=code,
        amount_cents=_cents(body.get("amount")),
        discount_type=kind,
        created=store.now_ts(),
        description=str(body.get("description") or ""),
        expires=_local_ts(store, body.get("date_expires")),  # date_expires_gmt alone: ignored
        individual_use=bool(body.get("individual_use", False)),
        usage_limit=optional_int("usage_limit"),
        usage_limit_per_user=optional_int("usage_limit_per_user"),
        minimum_cents=_cents(body.get("minimum_amount")),
        maximum_cents=_cents(body.get("maximum_amount")),
        free_shipping=bool(body.get("free_shipping", False)),
        email_restrictions=[e for e in emails if _EMAIL.match(e)],
        product_ids=[int(p) for p in body.get("product_ids") or []],
        product_categories=[int(c) for c in body.get("product_categories") or []],
        exclude_sale_items=bool(body.get("exclude_sale_items", False)),
        meta=[
            {"id": store.meta_id(), "key": str(m.get("key")), "value": m.get("value")}
            for m in body.get("meta_data") or []
            if isinstance(m, dict)
        ],
    )
    store.coupons[coupon.id] = coupon
    return coupon


def render_coupon(
    store: SandboxStore, coupon: Coupon, base_url: str, links: bool = True
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": coupon.id,
        "code": coupon.code,
        "amount": money(coupon.amount_cents),
        "status": "publish",
        "date_created": local_date(coupon.created, store.tz),
        "date_created_gmt": gmt_date(coupon.created),
        "date_modified": local_date(coupon.created, store.tz),
        "date_modified_gmt": gmt_date(coupon.created),
        "discount_type": coupon.discount_type,
        "description": coupon.description,
        "date_expires": local_date(coupon.expires, store.tz),
        "date_expires_gmt": gmt_date(coupon.expires),
        "usage_count": len(coupon.used_by),
        "individual_use": coupon.individual_use,
        "product_ids": coupon.product_ids,
        "excluded_product_ids": [],
        "usage_limit": coupon.usage_limit,
        "usage_limit_per_user": coupon.usage_limit_per_user,
        "limit_usage_to_x_items": None,
        "free_shipping": coupon.free_shipping,
        "product_categories": coupon.product_categories,
        "excluded_product_categories": [],
        "exclude_sale_items": coupon.exclude_sale_items,
        "minimum_amount": money(coupon.minimum_cents),
        "maximum_amount": money(coupon.maximum_cents),
        "email_restrictions": coupon.email_restrictions,
        "used_by": coupon.used_by,
        "meta_data": coupon.meta,
    }
    if links:
        body["_links"] = {
            "self": [{"href": f"{base_url}/wp-json/wc/v3/coupons/{coupon.id}"}],
            "collection": [{"href": f"{base_url}/wp-json/wc/v3/coupons"}],
        }
    return body


def verified_buyer(store: SandboxStore, email: str, product_id: int) -> bool:
    """Called with the lock held. Linear in orders, which is fine at review-request volumes."""
    email = email.lower()
    return any(
        record.customer.email.lower() == email and any(pid == product_id for pid, _ in record.items)
        for record in store.orders.values()
        if record.status in ("completed", "processing")
    )


def create_review(
    store: SandboxStore,
    product_id: int,
    reviewer: str,
    reviewer_email: str,
    review: str,
    rating: int,
    status: str = "approved",
) -> Review:
    """Called with the lock held."""
    if product_id not in seed.PRODUCTS_BY_ID:
        raise KeyError(product_id)
    item = Review(
        store.comment_id(),
        product_id,
        reviewer,
        reviewer_email.strip(),
        review,
        max(0, min(5, rating)),
        status,
        store.now_ts(),
    )
    store.reviews[item.id] = item
    return item


def render_review(
    store: SandboxStore, item: Review, base_url: str, links: bool = True
) -> dict[str, Any]:
    product = seed.PRODUCTS_BY_ID[item.product_id]
    avatar = hashlib.md5(item.reviewer_email.lower().encode(), usedforsecurity=False).hexdigest()
    body: dict[str, Any] = {
        "id": item.id,
        "date_created": local_date(item.created, store.tz),
        "date_created_gmt": gmt_date(item.created),
        "product_id": item.product_id,
        "product_name": product.name,
        "product_permalink": f"{base_url}/product/{product.slug}/",
        "status": item.status,
        "reviewer": item.reviewer,
        "reviewer_email": item.reviewer_email,
        "review": f"<p>{item.review}</p>\n",
        "rating": item.rating,
        "verified": verified_buyer(store, item.reviewer_email, item.product_id),
        "reviewer_avatar_urls": {
            size: f"https://secure.gravatar.com/avatar/{avatar}?s={size}&d=mm&r=g"
            for size in ("24", "48", "96")
        },
    }
    if links:
        api = f"{base_url}/wp-json/wc/v3"
        body["_links"] = {
            "self": [{"href": f"{api}/products/reviews/{item.id}"}],
            "collection": [{"href": f"{api}/products/reviews"}],
            "up": [{"href": f"{api}/products/{item.product_id}"}],
        }
    return body
