"""The variables a template can rely on, built from a full WooCommerce order.

Pure: the same order gives the same context. Money is pre-formatted for the order's currency and
the message's language, so templates never do arithmetic or formatting of their own.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from babel.dates import format_date

from wcfollowup.core.money import LOCALE_FOR_LANGUAGE, format_money
from wcfollowup.core.orders import parse_wc_gmt


def email_context(
    order: dict[str, Any],
    *,
    store_name: str,
    store_url: str,
    store_tz: tzinfo,
    language: str,
) -> dict[str, Any]:
    currency = str(order.get("currency") or "USD")
    billing = order.get("billing") or {}
    created = parse_wc_gmt(order.get("date_created_gmt"))
    locale = LOCALE_FOR_LANGUAGE.get(language, language)
    items = [
        {
            "name": str(item.get("name", "")),
            "quantity": int(item.get("quantity") or 0),
            "total": format_money(item.get("total", "0"), currency, language),
            "sku": str(item.get("sku") or ""),
            "image": str((item.get("image") or {}).get("src") or ""),
        }
        for item in order.get("line_items") or []
    ]
    return {
        "customer": {
            "first_name": str(billing.get("first_name") or "").strip(),
            "last_name": str(billing.get("last_name") or "").strip(),
            "email": str(billing.get("email") or ""),
        },
        "order": {
            "id": int(order["id"]),
            "number": str(order.get("number") or order["id"]),
            "date": format_date(created.astimezone(store_tz), "long", locale=locale)
            if created
            else "",
            "line_items": items,
            "shipping_total": format_money(order.get("shipping_total", "0"), currency, language),
            "total": format_money(order.get("total", "0"), currency, language),
            "currency": currency,
            "payment_method": str(order.get("payment_method_title") or ""),
        },
        "store": {"name": store_name, "url": store_url},
        "language": language,
    }
