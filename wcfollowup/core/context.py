"""The variables a template can rely on, built from a full WooCommerce order.

Pure: the same order gives the same context. Money and dates are pre-formatted for the order's
currency and the message's language, so templates never do arithmetic or formatting of their own.

Forgiving: an order is whatever JSON the store returned, possibly broken by a plugin, so a missing
or malformed field becomes an empty value, never an exception that would lose the step. Names
are passed through untouched (HTML, emoji, right-to-left text); escaping is the template's job.

Every mapping in the context is a :class:`Section` that knows its own dotted name, so a typo in
a template reads "'order' has no attribute 'totl'" instead of "'dict object' has no ...".
The variables are documented, one by one, in ``docs/templates.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any, Final

from babel.core import UnknownLocaleError
from babel.dates import format_date
from markupsafe import Markup

from wcfollowup.core.delivery import parse_moment
from wcfollowup.core.money import LOCALE_FOR_LANGUAGE, format_money, to_decimal
from wcfollowup.core.shapes import dicts, integer, mapping, text, web_url

__all__ = [
    "DEFAULT_TRACKING_META_KEY",
    "MAX_LISTED_ITEMS",
    "MAX_REVIEW_PRODUCTS",
    "Section",
    "email_context",
    "format_local_date",
    "safe_money",
]

DEFAULT_TRACKING_META_KEY: Final = "_wc_shipment_tracking_items"
# Lines listed in an email; ``order.items_not_listed`` counts the rest. Gmail clips an HTML part
# over 102 KB ("[Message clipped]"), hiding the footer with its unsubscribe link: 300 lines of a
# wholesale order take about 110 KB, 50 take about 20 KB. The totals still cover every line.
MAX_LISTED_ITEMS: Final = 50
MAX_REVIEW_PRODUCTS: Final = 10
# A SendGrid substitution tag such as <%asm_group_unsubscribe_raw_url%>.
_SENDGRID_TAG: Final = re.compile(r"<%[a-z_]+%>")


class Section(dict[str, Any]):
    """A plain dict that remembers where it sits in the context, for readable template errors."""

    __slots__ = ("label",)

    def __init__(self, label: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.label = label


def email_context(
    order: Mapping[str, Any],
    *,
    store_name: str,
    store_url: str,
    store_tz: tzinfo,
    language: str,
    returns_url: str | None = None,
    products: Mapping[int, Mapping[str, Any]] | None = None,
    tracking_meta_key: str = DEFAULT_TRACKING_META_KEY,
    extras: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a template may use for ``order``; ``extras`` are merged in at the top level.

    ``products`` (product id -> WooCommerce product JSON) supplies permalinks and images, which
    an order does not carry; without it links are empty and templates leave them out.
    """
    currency = text(order.get("currency")).upper() or "USD"
    billing = mapping(order.get("billing"))

    def money(amount: object) -> str:
        return safe_money(amount, currency, language)

    every_item = _line_items(order, products or {}, money)
    items = every_item[:MAX_LISTED_ITEMS]
    subtotal = sum(map(_line_subtotal, dicts(order.get("line_items"))), Decimal(0))
    tax = to_decimal(order.get("total_tax"))
    tax = tax if tax.is_finite() else Decimal(0)
    created = parse_moment(order.get("date_created_gmt"), UTC) or parse_moment(
        order.get("date_created"), store_tz
    )
    context: dict[str, Any] = {
        "customer": {
            "first_name": text(billing.get("first_name")),
            "last_name": text(billing.get("last_name")),
            "email": text(billing.get("email")),
        },
        "order": {
            "id": integer(order.get("id")),
            "number": text(order.get("number")) or text(order.get("id")),
            "date": format_local_date(created, store_tz, language) if created else "",
            "items": items,
            "line_items": items,
            "item_count": len(every_item),
            "items_not_listed": len(every_item) - len(items),
            "subtotal": money(subtotal),
            "tax_total": money(tax) if tax else "",
            "shipping_total": money(order.get("shipping_total", "0")),
            "discount_total": money(order.get("discount_total", "0")),
            "total": money(order.get("total", "0")),
            "currency": currency,
            "payment_method": text(order.get("payment_method_title")),
            "coupons": [
                code
                for code in (text(line.get("code")) for line in dicts(order.get("coupon_lines")))
                if code
            ],
            "tracking": _tracking(order, tracking_meta_key, store_tz, language),
        },
        "store": {"name": store_name, "url": store_url, "returns_url": returns_url or ""},
        "language": language,
        "unsubscribe_url": "",
        "review": {"products": _reviewable(every_item)},
    }
    context.update(extras or {})
    context["review"] = _fill_review(context.get("review"), every_item)
    context["unsubscribe_url"] = _substitution_tag(context.get("unsubscribe_url"))
    return {key: _labelled(value, key) for key, value in context.items()}


def safe_money(amount: object, currency: str, language: str) -> str:
    """``format_money`` that never raises: a strange currency or amount still reads sensibly."""
    value = to_decimal(amount)
    if not value.is_finite():
        value = Decimal(0)
    code = (currency or "USD").strip().upper()
    try:
        return format_money(value, code, language)
    except (ValueError, LookupError, ArithmeticError, TypeError, UnknownLocaleError):
        return f"{value} {code}"


def format_local_date(moment: datetime | date, store_tz: tzinfo, language: str) -> str:
    """A long date in the store's time zone, written the way the reader's language writes it."""
    day = moment.astimezone(store_tz).date() if isinstance(moment, datetime) else moment
    try:
        return format_date(day, "long", locale=LOCALE_FOR_LANGUAGE.get(language, language))
    except (ValueError, LookupError, UnknownLocaleError):
        return day.isoformat()


# --- pieces --------------------------------------------------------------------------------------


def _line_items(
    order: Mapping[str, Any],
    products: Mapping[int, Mapping[str, Any]],
    money: Callable[[object], str],
) -> list[dict[str, Any]]:
    items = []
    for item in dicts(order.get("line_items")):
        quantity = integer(item.get("quantity"))
        product_id = integer(item.get("product_id"))
        product = mapping(products.get(product_id))
        url = web_url(product.get("permalink"))
        image = _first_image(product) or web_url(mapping(item.get("image")).get("src"))
        subtotal = _line_subtotal(item)
        price = subtotal / quantity if quantity else to_decimal(item.get("price"))
        items.append(
            {
                "name": text(item.get("name")) or text(product.get("name")),
                "quantity": quantity,
                "price": money(price),
                "subtotal": money(subtotal),
                "total": money(item.get("total", "0")),
                "sku": text(item.get("sku")),
                "product_id": product_id,
                "url": url,
                "image": image,
                "review_url": f"{url}#reviews" if url else "",
            }
        )
    return items


def _line_subtotal(item: Mapping[str, Any]) -> Decimal:
    """The line before order-level discounts (what the shelf price said), as WooCommerce shows."""
    raw = item.get("subtotal")
    value = to_decimal(item.get("total") if raw in (None, "") else raw)
    return value if value.is_finite() else Decimal(0)


def _reviewable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The default ``review.products``: each distinct product of the order, in order.

    The engine passes its own list (without already-reviewed products); this keeps a template
    that asks for reviews usable from any step, and in ``preview``.
    """
    seen: set[int] = set()
    found = []
    for item in items:
        pid = item["product_id"]
        if pid and pid not in seen:
            seen.add(pid)
            found.append(
                {key: item[key] for key in ("name", "url", "review_url", "image")}
                | {"product_id": pid}
            )
    return found


def _fill_review(review: object, items: list[dict[str, Any]]) -> object:
    """Blanks in the engine's review list (a product the store did not describe) are filled
    from the order's own line for that product, so a customer never sees a nameless row.

    Only the first :data:`MAX_REVIEW_PRODUCTS` are asked about (``review.not_listed`` counts
    the rest): nobody reviews thirty products from one email, and each row costs a link.
    """
    if not isinstance(review, Mapping) or not isinstance(review.get("products"), list):
        return review
    by_product = {item["product_id"]: item for item in items if item["product_id"]}
    filled = []
    for product in review["products"]:
        line = by_product.get(product.get("product_id")) if isinstance(product, Mapping) else None
        if line is not None and isinstance(product, Mapping):
            product = {**product} | {
                key: line[key]
                for key in ("name", "url", "review_url", "image")
                if not product.get(key)
            }
        filled.append(product)
    shown = filled[:MAX_REVIEW_PRODUCTS]
    return {**review, "products": shown, "not_listed": len(filled) - len(shown)}


def _tracking(
    order: Mapping[str, Any], meta_key: str, store_tz: tzinfo, language: str
) -> list[dict[str, str]]:
    """Shipment-tracking items from order meta (the WooCommerce Shipment Tracking layout)."""
    found = []
    for entry in dicts(order.get("meta_data")):
        if entry.get("key") != meta_key:
            continue
        value = entry.get("value")
        if isinstance(value, str):  # some plugins store the list JSON-encoded
            try:
                value = json.loads(value)
            except ValueError:
                continue
        for item in [value] if isinstance(value, Mapping) else dicts(value):
            number = text(item.get("tracking_number"))
            if not number:
                continue
            shipped = parse_moment(item.get("date_shipped"), store_tz)
            found.append(
                {
                    "provider": text(item.get("formatted_tracking_provider"))
                    or text(item.get("custom_tracking_provider"))
                    or _provider_name(text(item.get("tracking_provider"))),
                    "number": number,
                    "url": web_url(item.get("custom_tracking_link"))
                    or web_url(item.get("formatted_tracking_link"))
                    or web_url(item.get("tracking_link")),
                    "date_shipped": format_local_date(shipped, store_tz, language)
                    if shipped
                    else "",
                }
            )
    return found


# --- forgiving readers ---------------------------------------------------------------------------


def _provider_name(slug: str) -> str:
    """The plugin stores a slug (``jne``, ``pos-indonesia``); show it the way a customer would."""
    words = slug.replace("_", " ").replace("-", " ").split()
    return " ".join(word.upper() if len(word) <= 3 else word.capitalize() for word in words)


def _substitution_tag(value: object) -> object:
    """SendGrid's own unsubscribe tag must reach SendGrid as written, not HTML-escaped."""
    if isinstance(value, str) and _SENDGRID_TAG.fullmatch(value):
        return Markup(value)
    return value


def _labelled(value: Any, label: str) -> Any:
    if isinstance(value, Mapping):
        return Section(label, {k: _labelled(v, f"{label}.{k}") for k, v in value.items()})
    if isinstance(value, list | tuple):
        return [_labelled(v, f"{label}[{i}]") for i, v in enumerate(value)]
    return value


def _first_image(product: Mapping[str, Any]) -> str:
    images = dicts(product.get("images"))
    return web_url(images[0].get("src")) if images else ""
