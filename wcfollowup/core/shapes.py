"""Forgiving readers for JSON a store sent: the value if it has the expected shape, else empty.

An order is whatever a WooCommerce plugin left in it: ``null`` where an object belongs, a string
where a list belongs, a list where a name belongs. Everything that reads order fields for an
email goes through these, so a broken field becomes an empty value instead of an exception that
would cost the customer their follow-up (or, worse, stop the other orders of a batch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = ["dicts", "integer", "mapping", "text", "tidy_order", "web_url"]

# Order fields that WooCommerce always sends as an object or as a list of objects.
_OBJECT_FIELDS = ("billing", "shipping")
_WEB_SCHEMES = ("http://", "https://")
_LIST_FIELDS = ("line_items", "coupon_lines", "meta_data", "shipping_lines", "fee_lines")


def text(value: object) -> str:
    """A name, code or number as text; an object, a list, ``null`` or a boolean is empty."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | Decimal) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    return ""


def integer(value: object) -> int:
    """An id or a quantity; anything that is not a whole number is 0 ("none")."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return 0
    return 0


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def dicts(value: object) -> list[Mapping[str, Any]]:
    """The objects of a list; a list that is not one (a string, an object, ``null``) is empty."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def web_url(value: object) -> str:
    """Only http(s) links may reach an ``href``: autoescaping does not stop ``javascript:``."""
    link = text(value)
    return link if link.lower().startswith(_WEB_SCHEMES) else ""


def tidy_order(order: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``order`` whose objects and lists have the shape WooCommerce documents.

    For code that reads an order directly (``order["billing"].get(...)``): ``billing`` becomes
    ``{}`` when it is not an object, ``line_items`` keeps only its objects, and so on. Scalars
    are left alone; read them with :func:`text` and :func:`integer`.
    """
    tidy = dict(order)
    for key in _OBJECT_FIELDS:
        if key in tidy:
            tidy[key] = dict(mapping(tidy[key]))
    for key in _LIST_FIELDS:
        if key in tidy:
            tidy[key] = [dict(item) for item in dicts(tidy[key])]
    return tidy
