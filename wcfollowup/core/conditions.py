"""Evaluate a sequence's or step's conditions against an order. Pure; never raises.

The order is WooCommerce JSON as the store returned it (possibly trimmed with ``_fields``, or
mangled by a plugin). **A test on a field that is missing or malformed is false** — so a
``not:`` around it is true. That errs on the side of not sending for positive conditions
(``total_at_least`` with no readable total does not enrol) and is documented in
config.example.yaml for ``not``/``skip_if``.

Facts the order does not carry — how many orders the customer placed before, and the
categories of each product — come in :class:`OrderFacts`; :func:`needs_history` and
:func:`needs_categories` tell the engine whether to fetch them at all, and
:func:`required_fields` which ``_fields`` the poll must request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from wcfollowup.config.conditions import Condition, ProductMatch, TextMatch, walk

__all__ = [
    "Condition",
    "OrderFacts",
    "evaluate",
    "explain",
    "needs_categories",
    "needs_history",
    "required_fields",
]


@dataclass(frozen=True)
class OrderFacts:
    """An order plus the facts about it that need extra look-ups."""

    order: Mapping[str, Any]
    prior_orders: int | None = None
    """Orders by the same customer before this one; None when unknown (then customer: is false)."""
    product_categories: Mapping[int, frozenset[str]] = field(default_factory=dict)
    """Product id -> its category slugs and ids as strings."""
    survey_score: int | None = None


# --- evaluation -------------------------------------------------------------------------------


def evaluate(condition: Condition, facts: OrderFacts) -> bool:
    """True when every test on ``condition`` holds for the order."""
    return not _failures(condition, facts, stop_at_first=True)


def explain(condition: Condition, facts: OrderFacts) -> str:
    """A short reason why ``condition`` is false, for skip log lines (``""`` when it is true)."""
    failures = _failures(condition, facts, stop_at_first=True)
    return failures[0] if failures else ""


def _failures(condition: Condition, facts: OrderFacts, *, stop_at_first: bool) -> list[str]:
    found: list[str] = []
    for name in condition.tests():
        try:
            reason = _TESTS[name](condition, facts)
        except Exception as error:  # never let a broken order stop the engine
            reason = f"{name} could not be checked ({type(error).__name__})"
        if reason is not None:
            found.append(reason)
            if stop_at_first:
                break
    return found


# Each test returns None when it holds, else the reason it does not.


def _all(condition: Condition, facts: OrderFacts) -> str | None:
    for child in condition.all_of or ():
        reason = explain(child, facts)
        if reason:
            return reason
    return None


def _any(condition: Condition, facts: OrderFacts) -> str | None:
    children = condition.any_of or ()
    reasons: list[str] = []
    for child in children:
        reason = explain(child, facts)
        if not reason:
            return None
        reasons.append(reason)
    if not reasons:
        return "'any' has no conditions"
    return "none of these holds: " + "; ".join(reasons)


def _not(condition: Condition, facts: OrderFacts) -> str | None:
    inner = condition.not_
    if inner is None or explain(inner, facts):
        return None
    return f"the order matches the excluded condition ({describe(inner)})"


def _total(facts: OrderFacts) -> Decimal | None:
    raw = facts.order.get("total")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        return None
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _money(amount: Decimal, facts: OrderFacts) -> str:
    currency = facts.order.get("currency")
    code = currency.strip().upper() if isinstance(currency, str) and currency.strip() else ""
    if len(code) == 3 and code.isalpha():
        from wcfollowup.core.money import format_money

        try:
            return format_money(amount, code, _MONEY_LANGUAGE.get(code, "en"))
        except Exception:
            pass
    return f"{amount} {code}".strip()


_MONEY_LANGUAGE: Final = {"IDR": "id", "MYR": "ms", "SGD": "en"}


def _total_at_least(condition: Condition, facts: OrderFacts) -> str | None:
    limit = condition.total_at_least
    total = _total(facts)
    if total is None:
        return "the order has no readable total"
    if limit is not None and total < limit:
        return f"order total {_money(total, facts)} is below {_plain(limit)}"
    return None


def _total_at_most(condition: Condition, facts: OrderFacts) -> str | None:
    limit = condition.total_at_most
    total = _total(facts)
    if total is None:
        return "the order has no readable total"
    if limit is not None and total > limit:
        return f"order total {_money(total, facts)} is above {_plain(limit)}"
    return None


def _plain(amount: Decimal) -> str:
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _line_items(facts: OrderFacts) -> list[Mapping[str, Any]]:
    items = facts.order.get("line_items")
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, Mapping)]


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _product_ids(facts: OrderFacts) -> set[int]:
    ids: set[int] = set()
    for item in _line_items(facts):
        for key in ("product_id", "variation_id"):
            found = _int(item.get(key))
            if found:
                ids.add(found)
    return ids


def _match(match: ProductMatch | TextMatch | None, present: Iterable[Any], what: str) -> str | None:
    if match is None:
        return None
    have = set(present)
    if match.any_of is not None and not have & match.any_of:
        return f"the order has none of the {what} {_list(match.any_of)}"
    if match.all_of is not None and not match.all_of <= have:
        return f"the order lacks the {what} {_list(match.all_of - have)}"
    return None


def _list(values: Iterable[object]) -> str:
    return ", ".join(str(value) for value in sorted(values, key=str))


def _products(condition: Condition, facts: OrderFacts) -> str | None:
    return _match(condition.products, _product_ids(facts), "products")


def _skus(condition: Condition, facts: OrderFacts) -> str | None:
    skus = {
        item["sku"].strip().lower()
        for item in _line_items(facts)
        if isinstance(item.get("sku"), str) and item["sku"].strip()
    }
    return _match(condition.skus, skus, "SKUs")


def _categories(condition: Condition, facts: OrderFacts) -> str | None:
    found: set[str] = set()
    categories = facts.product_categories if isinstance(facts.product_categories, Mapping) else {}
    for product in _product_ids(facts):
        for category in categories.get(product, ()):
            found.add(str(category).strip().lower())
    for item in _line_items(facts):  # a plugin may embed categories in the line item
        embedded = item.get("categories")
        if isinstance(embedded, list):
            for category in embedded:
                if isinstance(category, Mapping):
                    found.update(
                        str(category[key]).lower() for key in ("id", "slug") if key in category
                    )
    return _match(condition.categories, found, "categories")


def _customer(condition: Condition, facts: OrderFacts) -> str | None:
    prior = facts.prior_orders
    if isinstance(prior, bool) or not isinstance(prior, int) or prior < 0:
        return "the customer's order history is unknown"
    if condition.customer == "first" and prior > 0:
        return f"the customer ordered before ({prior} earlier orders)"
    if condition.customer == "repeat" and prior == 0:
        return "this is the customer's first order"
    return None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _country(condition: Condition, facts: OrderFacts) -> str | None:
    billing = facts.order.get("billing")
    country = _text(billing.get("country")).upper() if isinstance(billing, Mapping) else ""
    wanted = condition.country or frozenset()
    if country not in wanted:
        shown = country or "no billing country"
        return f"billing country {shown} is not {_either(wanted)}"
    return None


def _either(values: Iterable[str]) -> str:
    ordered = sorted(values)
    return ordered[0] if len(ordered) == 1 else "one of " + ", ".join(ordered)


def _payment_method(condition: Condition, facts: OrderFacts) -> str | None:
    method = _text(facts.order.get("payment_method")).lower()
    wanted = condition.payment_method or frozenset()
    if method not in wanted:
        return f"payment method {method or '(none)'} is not {_either(wanted)}"
    return None


def _coupons(facts: OrderFacts) -> set[str]:
    lines = facts.order.get("coupon_lines")
    if not isinstance(lines, list):
        return set()
    return {
        line["code"].strip().lower()
        for line in lines
        if isinstance(line, Mapping) and isinstance(line.get("code"), str) and line["code"].strip()
    }


def _coupon_used(condition: Condition, facts: OrderFacts) -> str | None:
    rule = condition.coupon_used
    used = _coupons(facts)
    if rule is True and not used:
        return "no coupon was used"
    if rule is False and used:
        return f"coupon {_list(used)} was used"
    if isinstance(rule, frozenset) and not used & rule:
        return f"none of the coupons {_list(rule)} was used"
    return None


def _meta_text(value: object) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)


def _meta(condition: Condition, facts: OrderFacts) -> str | None:
    entries = facts.order.get("meta_data")
    values: dict[str, list[str]] = {}
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, Mapping) and isinstance(entry.get("key"), str):
                text = _meta_text(entry.get("value"))
                if text is not None:
                    values.setdefault(entry["key"], []).append(text.strip())
    for key, wanted in (condition.meta or {}).items():
        have = values.get(key, [])
        if wanted is None:
            if not any(have):
                return f"order meta {key} is not set"
        elif wanted.strip() not in have:
            shown = repr(have[0]) if have else "not set"
            return f"order meta {key} is {shown}, not {wanted!r}"
    return None


def _survey(condition: Condition, facts: OrderFacts) -> str | None:
    score = facts.survey_score
    if isinstance(score, bool) or not isinstance(score, int):
        return "no survey answer yet"
    least, most = condition.survey_score_at_least, condition.survey_score_at_most
    if least is not None and score < least:
        return f"survey score {score} is below {least}"
    if most is not None and score > most:
        return f"survey score {score} is above {most}"
    return None


_TESTS: Final = {
    "all": _all,
    "any": _any,
    "not": _not,
    "total_at_least": _total_at_least,
    "total_at_most": _total_at_most,
    "products": _products,
    "skus": _skus,
    "categories": _categories,
    "customer": _customer,
    "country": _country,
    "payment_method": _payment_method,
    "coupon_used": _coupon_used,
    "meta": _meta,
    "survey_score_at_least": _survey,
    "survey_score_at_most": _survey,
}


# --- describing and planning ------------------------------------------------------------------


def describe(condition: Condition) -> str:
    """A compact one-line rendering of a condition, for messages."""
    parts: list[str] = []
    for name in condition.tests():
        value = getattr(condition, _FIELD.get(name, name))
        if name in ("all", "any"):
            parts.append(f"{name}(" + "; ".join(describe(child) for child in value) + ")")
        elif name == "not":
            parts.append(f"not({describe(value)})")
        elif isinstance(value, ProductMatch | TextMatch):
            mode = "all" if value.any_of is None else "any"
            chosen = value.any_of if value.any_of is not None else value.all_of or frozenset()
            parts.append(f"{name} {mode} of {_list(chosen)}")
        elif isinstance(value, frozenset):
            parts.append(f"{name} {_either(value)}")
        elif isinstance(value, Decimal):
            parts.append(f"{name} {_plain(value)}")
        elif isinstance(value, dict):
            parts.append(f"{name} " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            parts.append(f"{name} {str(value).lower() if isinstance(value, bool) else value}")
    return ", ".join(parts)


_FIELD: Final = {"all": "all_of", "any": "any_of", "not": "not_"}

_FIELDS_FOR: Final[dict[str, frozenset[str]]] = {
    "total_at_least": frozenset({"total", "currency"}),
    "total_at_most": frozenset({"total", "currency"}),
    "products": frozenset({"line_items"}),
    "skus": frozenset({"line_items"}),
    "categories": frozenset({"line_items"}),
    "customer": frozenset({"customer_id", "billing.email"}),
    "country": frozenset({"billing.country"}),
    "payment_method": frozenset({"payment_method"}),
    "coupon_used": frozenset({"coupon_lines"}),
    "meta": frozenset({"meta_data"}),
}


def required_fields(condition: Condition | None) -> frozenset[str]:
    """The WooCommerce ``_fields`` the evaluator reads for this condition tree."""
    if condition is None:
        return frozenset()
    found: set[str] = set()
    for node in walk(condition):
        for name in node.tests():
            found |= _FIELDS_FOR.get(name, frozenset())
    return frozenset(found)


def needs_history(condition: Condition | None) -> bool:
    """Whether ``customer: first|repeat`` appears: the engine must count prior orders."""
    return condition is not None and any(node.customer is not None for node in walk(condition))


def needs_categories(condition: Condition | None) -> bool:
    """Whether ``categories:`` appears: the engine must look up product categories."""
    return condition is not None and any(node.categories is not None for node in walk(condition))


def needs_survey(condition: Condition | None) -> bool:
    """Whether a survey score is tested: the engine must look up the order's answer."""
    return condition is not None and any(
        node.survey_score_at_least is not None or node.survey_score_at_most is not None
        for node in walk(condition)
    )
