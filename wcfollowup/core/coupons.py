"""Personal coupons, decided without I/O: the code, what to ask the store for, and whether
what the store made is what we asked for.

A real store lower-cases codes and emails, silently drops a restriction email it dislikes, and
reads ``date_expires`` in its own local time (``date_expires_gmt`` is ignored). So we send local
time, and check the created coupon field by field before telling a customer about it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from wcfollowup.config import CouponConfig

# No 0/O, 1/I/L: customers type these codes from a phone screen.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10  # 31**10 ≈ 8e14 codes: unguessable, still short enough to type


def new_code(prefix: str) -> str:
    """``THANKS-7KQ2MX9PRD``; random from the OS, never derived from the order."""
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{prefix}-{body}".lower()


def expires_local(now: datetime, store_tz: tzinfo, expires_in: timedelta) -> str:
    """The end of the last valid day, in store-local time, as ``date_expires`` wants it."""
    last_day = (now.astimezone(store_tz) + expires_in).date()
    return f"{last_day.isoformat()}T23:59:59"


def coupon_body(
    code: str, config: CouponConfig, email: str, expires: str, order_number: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "discount_type": config.discount_type,
        "amount": str(config.amount),
        "individual_use": False,
        "usage_limit": 1,
        "usage_limit_per_user": 1,
        "email_restrictions": [email],
        "date_expires": expires,
        "exclude_sale_items": config.exclude_sale_items,
        "free_shipping": config.free_shipping,
        "description": f"wcfollowup: personal coupon for order #{order_number}",
    }
    if config.minimum_spend is not None:
        body["minimum_amount"] = str(config.minimum_spend)
    if config.products:
        body["product_ids"] = list(config.products)
    if config.categories:
        body["product_categories"] = list(config.categories)
    return body


def _same_amount(got: object, wanted: object) -> bool:
    try:
        return Decimal(str(got)) == Decimal(str(wanted))
    except InvalidOperation:
        return False


def coupon_problems(created: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """What the store's coupon gets wrong compared with what we asked for; [] when right."""
    problems: list[str] = []
    if str(created.get("code", "")).lower() != str(asked["code"]).lower():
        problems.append(f"code is {created.get('code')!r}, not {asked['code']!r}")
    if created.get("discount_type") != asked["discount_type"]:
        problems.append(f"discount type is {created.get('discount_type')!r}")
    if not _same_amount(created.get("amount"), asked["amount"]):
        problems.append(f"amount is {created.get('amount')!r}, not {asked['amount']!r}")
    wanted_emails = [e.lower() for e in asked["email_restrictions"]]
    got_emails = [str(e).lower() for e in created.get("email_restrictions") or []]
    if got_emails != wanted_emails:
        problems.append(
            f"restricted to {got_emails or 'anyone'} instead of {wanted_emails} "
            "(the store dropped an address it considers invalid)"
        )
    got_expiry = str(created.get("date_expires") or "")
    if got_expiry[:19] != asked["date_expires"]:
        problems.append(f"expires {got_expiry or 'never'}, not {asked['date_expires']}")
    if created.get("usage_limit") not in (1, "1"):
        problems.append(f"usage limit is {created.get('usage_limit')!r}, not 1")
    if "minimum_amount" in asked and not _same_amount(
        created.get("minimum_amount"), asked["minimum_amount"]
    ):
        problems.append(f"minimum spend is {created.get('minimum_amount')!r}")
    if bool(created.get("exclude_sale_items")) != asked["exclude_sale_items"]:
        problems.append("exclude_sale_items differs")
    for key in ("product_ids", "product_categories"):
        if key in asked and sorted(created.get(key) or []) != sorted(asked[key]):
            problems.append(f"{key} is {created.get(key)!r}, not {asked[key]!r}")
    return problems
